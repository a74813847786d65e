//! The records of jobs that failed or were handed back, beside their
//! messages.

use async_nats::jetstream::{self, stream};

use super::{unavailable, OP_TIMEOUT};
use crate::queue::QueueError;

/// The records of jobs that failed or were handed back, by stream
/// sequence: a stream keeping the last message per subject
/// `<stream>_REBOUND.<sequence>` (what a JetStream key-value bucket is).
pub(super) struct Records {
    pub(super) js: jetstream::Context,
    pub(super) stream: stream::Stream,
    pub(super) prefix: String,
}

impl Records {
    fn subject(&self, sequence: u64) -> String {
        format!("{}.{sequence}", self.prefix)
    }

    pub(super) async fn get(&self, sequence: u64) -> Result<Option<Vec<u8>>, QueueError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.subject(sequence))
            .await
        {
            Ok(m) => Ok(Some(m.payload.to_vec())),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    pub(super) async fn put(&self, sequence: u64, envelope: String) -> Result<(), QueueError> {
        let ack = self
            .js
            .publish(self.subject(sequence), envelope.into())
            .await
            .map_err(unavailable)?;
        tokio::time::timeout(OP_TIMEOUT, ack)
            .await
            .map_err(|_| unavailable("no publish ack from JetStream in 5 s"))?
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn delete(&self, sequence: u64) {
        if let Err(e) = self.stream.purge().filter(self.subject(sequence)).await {
            tracing::debug!("cannot delete the record of message {sequence}: {e}");
        }
    }
}
