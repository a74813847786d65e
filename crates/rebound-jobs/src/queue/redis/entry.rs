//! Stream entries: what a claimed entry carries, its job id, and Redis's
//! errors.

use redis::RedisError;

use super::BACKEND;
use crate::job::JobId;
use crate::queue::broker::{Envelope, ENVELOPE_HEADER};
use crate::queue::QueueError;
use crate::time::Timestamp;

/// What a delivery in flight needs to be settled: the entry and the
/// delivery count it was claimed with.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) entry: String,
    pub(super) count: u32,
    pub(super) consumer: String,
}

pub(super) fn map_err(e: RedisError) -> QueueError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        QueueError::Unavailable {
            backend: BACKEND,
            source: Box::new(e),
        }
    } else {
        QueueError::Backend {
            backend: BACKEND,
            source: Box::new(e),
        }
    }
}

pub(super) fn bad_reply(what: &str) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        source: format!("unexpected reply from Redis: {what}").into(),
    }
}

/// The job id of an entry written without an envelope: its entry id
/// `ms-seq` as `ms × 65536 + seq`.
pub(super) fn id_of_entry(entry: &str) -> Result<JobId, QueueError> {
    let (ms, seq) = entry
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| bad_reply(&format!("stream entry id {entry:?}")))?;
    Ok(JobId(
        ms.saturating_mul(65_536).saturating_add(seq & 0xFFFF),
    ))
}

/// A stream entry's message: its envelope (or a fresh one) and payload.
pub(super) fn message(
    stream: &str,
    entry: &str,
    fields: &[Vec<u8>],
) -> Result<(Envelope, Vec<u8>), QueueError> {
    let mut payload = None;
    let mut envelope = None;
    let mut others = serde_json::Map::new();
    for pair in fields.chunks(2) {
        let [k, v] = pair else {
            return Err(bad_reply("odd number of stream fields"));
        };
        match k.as_slice() {
            b"payload" => payload = Some(v.clone()),
            k if k == ENVELOPE_HEADER.as_bytes() => envelope = Some(v.clone()),
            k => {
                others.insert(
                    String::from_utf8_lossy(k).into_owned(),
                    serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
                );
            }
        }
    }
    let fallback = id_of_entry(entry)?;
    let envelope = match envelope {
        Some(e) => Envelope::decode(&e, fallback)?,
        None => {
            let ms = entry.split('-').next().and_then(|m| m.parse().ok());
            Envelope::fresh(
                fallback,
                stream,
                Timestamp::from_millis(ms.unwrap_or_default()),
            )
        }
    };
    let payload = payload.unwrap_or_else(|| {
        serde_json::to_vec(&serde_json::Value::Object(others)).expect("JSON object")
    });
    Ok((envelope, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_entries_are_jobs() {
        let fields = vec![b"invoice".to_vec(), b"42".to_vec()];
        let (env, payload) = message("orders", "1700000000000-3", &fields).unwrap();
        assert_eq!(payload, br#"{"invoice":"42"}"#);
        assert_eq!(env.id, JobId(1_700_000_000_000 * 65_536 + 3));
        assert_eq!(
            env.state.enqueued_at,
            Timestamp::from_millis(1_700_000_000_000)
        );
        assert_eq!(env.queue, "orders");
        let fields = vec![b"payload".to_vec(), b"raw".to_vec()];
        assert_eq!(message("orders", "1-0", &fields).unwrap().1, b"raw");
    }
}
