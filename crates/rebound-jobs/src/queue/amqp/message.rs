//! Messages: headers, job ids and envelopes, and the retry queue a delay
//! waits in.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;

use super::{MAX_STEPS_LOG2, STEP_MS};
use crate::job::JobId;
use crate::queue::broker::{Envelope, ENVELOPE_HEADER};
use crate::queue::QueueError;
use crate::time::Timestamp;

pub(super) fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<Vec<u8>> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.as_bytes().to_vec()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes().to_vec()),
        _ => None,
    }
}

pub(super) fn header_count(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    match headers?.inner().get(name)? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::Timestamp(n) => Some(*n),
        _ => None,
    }
}

/// FNV-1a: a stable id for a message that brings none.
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The envelope a message carries, or a fresh one for a message from
/// another producer.
pub(super) fn envelope_of(
    queue: &str,
    props: &BasicProperties,
    body: &[u8],
    now: Timestamp,
) -> Result<Envelope, QueueError> {
    let headers = props.headers().as_ref();
    let message_id = props.message_id().as_ref().map(|m| m.as_str().to_owned());
    let id = match &message_id {
        Some(m) => m
            .parse::<u64>()
            .map(JobId)
            .unwrap_or(JobId(fnv(m.as_bytes()))),
        None => JobId(fnv(body)),
    };
    if let Some(e) = header_str(headers, ENVELOPE_HEADER) {
        return Envelope::decode(&e, id);
    }
    let published = props
        .timestamp()
        .map(|s| Timestamp::from_millis(s.saturating_mul(1000)))
        .unwrap_or(now);
    Ok(Envelope::fresh(id, queue, published))
}

/// The retry queue for what remains of a delay: the largest power of two
/// of 100 ms not longer than it (at least 100 ms).
pub(super) fn retry_step(remaining: Duration) -> u64 {
    let steps = (crate::time::duration_millis(remaining) / STEP_MS).max(1);
    let log2 = (63 - steps.leading_zeros()).min(MAX_STEPS_LOG2);
    STEP_MS << log2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_split_into_powers_of_two_of_100_ms() {
        assert_eq!(retry_step(Duration::from_millis(10)), 100);
        assert_eq!(retry_step(Duration::from_millis(250)), 200);
        assert_eq!(retry_step(Duration::from_secs(3)), 1600);
        assert_eq!(retry_step(Duration::from_secs(30 * 86_400)), 100 << 24);
    }
}
