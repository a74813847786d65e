//! The max-deliveries advisories: dead-lettering what the consumer's
//! `max_deliver` stopped.

use std::time::Duration;

use futures_util::StreamExt;

use super::wire::{envelope_of, system_time};
use super::{unavailable, NatsQueue, FETCH_STALL};
use crate::job::{JobId, JobStatus};
use crate::policy::DeadLetterReason;
use crate::queue::broker::{self, Envelope};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl NatsQueue {
    /// Dead-letters the messages named by max-deliveries advisories.
    pub(super) async fn drain_advisories(
        &self,
        now: Timestamp,
        max: usize,
    ) -> Result<usize, QueueError> {
        #[derive(serde::Deserialize)]
        struct Advisory {
            stream_seq: u64,
            deliveries: u32,
        }
        let ready = self.ready().await?;
        let mut batch = ready
            .advisories
            .fetch()
            .max_messages(max.max(1))
            .messages()
            .await
            .map_err(unavailable)?;
        let mut done = 0;
        while let Ok(Some(msg)) = tokio::time::timeout(FETCH_STALL, batch.next()).await {
            let msg = msg.map_err(unavailable)?;
            let Ok(adv) = serde_json::from_slice::<Advisory>(&msg.payload) else {
                tracing::warn!(stream = %self.inner.stream, "ignoring an unreadable max-deliveries advisory");
                msg.ack().await.map_err(unavailable)?;
                continue;
            };
            let main = self
                .inner
                .js
                .get_stream(&self.inner.stream)
                .await
                .map_err(unavailable)?;
            match main.get_raw_message(adv.stream_seq).await {
                Ok(m) => {
                    let stored = ready.records.get(adv.stream_seq).await?;
                    let env = match stored {
                        Some(b) => Envelope::decode(&b, JobId(adv.stream_seq))?,
                        None => envelope_of(
                            Some(&m.headers),
                            adv.stream_seq,
                            &self.inner.stream,
                            system_time(m.time.unix_timestamp_nanos()),
                        )?,
                    };
                    let (_, mut rec) = broker::claim(
                        &env,
                        m.payload.to_vec(),
                        adv.deliveries + 1,
                        now,
                        Duration::ZERO,
                        "",
                    );
                    // The broker's last delivery was not a claim of ours:
                    // drop the record claim() opened for it.
                    rec.history.pop();
                    rec.state.deliveries = rec.state.deliveries.saturating_sub(1);
                    let reason = if rec.state.failures > 0 {
                        DeadLetterReason::Exhausted
                    } else {
                        DeadLetterReason::Poison
                    };
                    if let Some(last) = rec.history.last_mut() {
                        last.error.get_or_insert_with(|| format!(
                            "the consumer's max_deliver limit ({} deliveries) stopped the message before the delivery policy decided",
                            adv.deliveries
                        ));
                    }
                    rec.status = JobStatus::Dead;
                    rec.reason = Some(reason);
                    rec.dead_at = Some(now);
                    self.publish(self.dead_letter_stream(), &rec, None).await?;
                    ready.records.delete(adv.stream_seq).await;
                    crate::metrics::JobMetrics::new(&self.inner.stream).dead_lettered(reason);
                    tracing::warn!(stream = %self.inner.stream, job_id = adv.stream_seq, reason = reason.as_str(), "dead-lettered after the consumer's max_deliver limit");
                    done += 1;
                }
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(unavailable(e)),
            }
            msg.ack().await.map_err(unavailable)?;
        }
        Ok(done)
    }
}
