//! Messages on the wire: envelopes from headers, acks and confirmed
//! publishes.

use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;

use super::{unavailable, NatsQueue, DUE_HEADER, OP_TIMEOUT};
use crate::job::{JobId, JobRecord};
use crate::queue::broker::{Envelope, ENVELOPE_HEADER};
use crate::queue::QueueError;
use crate::time::Timestamp;

/// The envelope a message carries in its headers, or a fresh one.
pub(super) fn envelope_of(
    headers: Option<&HeaderMap>,
    sequence: u64,
    stream: &str,
    published: Timestamp,
) -> Result<Envelope, QueueError> {
    let id = JobId(sequence);
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    if let Some(e) = header(ENVELOPE_HEADER) {
        return Envelope::decode(e.as_bytes(), id);
    }
    let due = header(DUE_HEADER)
        .and_then(|d| d.parse::<u64>().ok())
        .map(Timestamp::from_millis)
        .unwrap_or(published);
    Ok(Envelope::fresh(id, stream, due))
}

/// A server time (nanoseconds since the epoch) as a timestamp.
pub(super) fn system_time(unix_nanos: i128) -> Timestamp {
    Timestamp::from_millis(u64::try_from(unix_nanos / 1_000_000).unwrap_or(0))
}

impl NatsQueue {
    /// Sends an ack of `kind` to `reply` and waits for the server's answer.
    pub(super) async fn ack(
        &self,
        reply: &async_nats::Subject,
        kind: AckKind,
    ) -> Result<(), QueueError> {
        let client = self.inner.js.client();
        tokio::time::timeout(OP_TIMEOUT, client.request(reply.clone(), kind.into()))
            .await
            .map_err(|_| unavailable("no answer from the NATS server to an ack in 5 s"))?
            .map_err(unavailable)?;
        Ok(())
    }

    /// Publishes `rec` (payload and envelope) to `subject`, acknowledged
    /// by its stream; returns the sequence.
    pub(super) async fn publish(
        &self,
        subject: String,
        rec: &JobRecord,
        extra: Option<(&str, String)>,
    ) -> Result<u64, QueueError> {
        let mut headers = HeaderMap::new();
        headers.insert(ENVELOPE_HEADER, Envelope::of(rec).encode().as_str());
        if let Some((k, v)) = extra {
            headers.insert(k, v.as_str());
        }
        self.publish_raw(subject, headers, rec.payload.clone())
            .await
    }

    pub(super) async fn publish_raw(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<u64, QueueError> {
        let ack = self
            .inner
            .js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(unavailable)?;
        acked(ack).await
    }
}

/// Waits for the stream's acknowledgement of a publish; returns the
/// message's sequence.
pub(super) async fn acked(ack: jetstream::context::PublishAckFuture) -> Result<u64, QueueError> {
    let ack = tokio::time::timeout(OP_TIMEOUT, ack)
        .await
        .map_err(|_| unavailable("no publish ack from JetStream in 5 s"))?
        .map_err(unavailable)?;
    Ok(ack.sequence)
}
