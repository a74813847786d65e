//! The dead-letter stream: lookups, listing, redrive and purge.

use super::wire::{envelope_of, system_time};
use super::{unavailable, NatsQueue};
use crate::dlq::DeadLetterFilter;
use crate::job::{JobId, JobRecord, JobStatus};
use crate::queue::broker::{self};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl NatsQueue {
    /// Every message of the dead-letter stream: (sequence, record).
    pub(super) async fn dead_entries(&self) -> Result<Vec<(u64, JobRecord)>, QueueError> {
        let ready = self.ready().await?;
        let mut dead = ready.dead.clone();
        let state = dead.info().await.map_err(unavailable)?.state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            let msg = match dead.get_raw_message(seq).await {
                Ok(m) => m,
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
                {
                    continue
                }
                Err(e) => return Err(unavailable(e)),
            };
            let env = envelope_of(
                Some(&msg.headers),
                seq,
                &self.inner.stream,
                system_time(msg.time.unix_timestamp_nanos()),
            )?;
            out.push((seq, env.record(msg.payload.to_vec(), JobStatus::Dead)));
        }
        Ok(out)
    }

    pub(super) async fn find_job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        if let Some(r) = self.inner.in_flight.record(id) {
            return Ok(Some(r));
        }
        Ok(broker::find(self.dead_entries().await?, id))
    }

    pub(super) async fn list_dead(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let dead = self.dead_entries().await?;
        Ok(filter.page(dead.into_iter().map(|(_, r)| r), after, limit))
    }

    pub(super) async fn move_back(
        &self,
        ids: &[JobId],
        now: Timestamp,
    ) -> Result<usize, QueueError> {
        let ready = self.ready().await?;
        let dead = self.dead_entries().await?;
        broker::redrive(dead, ids, now, |seq, rec| async move {
            self.publish(ready.subject.clone(), &rec, None).await?;
            ready.dead.delete_message(seq).await.map_err(unavailable)
        })
        .await
    }

    pub(super) async fn delete_dead(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let ready = self.ready().await?;
        let mut purged = 0;
        for (seq, _) in broker::listed(self.dead_entries().await?, ids) {
            if ready.dead.delete_message(seq).await.map_err(unavailable)? {
                purged += 1;
            }
        }
        Ok(purged)
    }

    pub(super) async fn dead_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        if queue.is_some_and(|q| q != self.inner.stream) {
            return Ok(0);
        }
        let ready = self.ready().await?;
        let mut dead = ready.dead.clone();
        Ok(dead.info().await.map_err(unavailable)?.state.messages)
    }
}
