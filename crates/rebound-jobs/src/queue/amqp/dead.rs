//! The dead-letter queue: browsing, lookups, listing, redrive and purge.

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Channel;

use super::message::envelope_of;
use super::{unavailable, AmqpQueue};
use crate::dlq::DeadLetterFilter;
use crate::job::{JobId, JobRecord, JobStatus};
use crate::queue::broker::{self};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl AmqpQueue {
    /// Takes every message of the dead-letter queue on a channel of its
    /// own, and returns them with the channel (closing it returns the
    /// unacked ones to the queue, in order).
    pub(super) async fn browse(
        &self,
    ) -> Result<(Channel, Vec<(lapin::message::Delivery, JobRecord)>), QueueError> {
        let conn = self.conn().await?;
        let ch = conn
            .connection
            .create_channel()
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let now = crate::time::wall(&self.clock);
        while let Some(m) = ch
            .basic_get(
                self.dead_letter_queue().as_str().into(),
                BasicGetOptions::default(),
            )
            .await
            .map_err(unavailable)?
        {
            let d = m.delivery;
            let env = envelope_of(&self.inner.queue, &d.properties, &d.data, now)?;
            let rec = env.record(d.data.clone(), JobStatus::Dead);
            out.push((d, rec));
        }
        Ok((ch, out))
    }

    pub(super) async fn find_job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        if let Some(r) = self.inner.in_flight.record(id) {
            return Ok(Some(r));
        }
        let (ch, all) = self.browse().await?;
        let found = broker::find(all, id);
        let _ = ch.close(200, "done".into()).await;
        Ok(found)
    }

    pub(super) async fn list_dead(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let (ch, all) = self.browse().await?;
        let _ = ch.close(200, "done".into()).await;
        Ok(filter.page(all.into_iter().map(|(_, r)| r), after, limit))
    }

    pub(super) async fn move_back(
        &self,
        ids: &[JobId],
        now: Timestamp,
    ) -> Result<usize, QueueError> {
        let (ch, all) = self.browse().await?;
        let moved = broker::redrive(all, ids, now, |d, rec| async move {
            self.publish(&self.inner.queue, &rec).await?;
            Ok(d.acker.ack(BasicAckOptions::default()).await.is_ok())
        })
        .await;
        let _ = ch.close(200, "done".into()).await;
        moved
    }

    pub(super) async fn delete_dead(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let (ch, all) = self.browse().await?;
        let mut purged = 0;
        for (d, _) in broker::listed(all, ids) {
            if d.acker.ack(BasicAckOptions::default()).await.is_ok() {
                purged += 1;
            }
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(purged)
    }

    pub(super) async fn dead_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        if queue.is_some_and(|q| q != self.inner.queue) {
            return Ok(0);
        }
        let conn = self.conn().await?;
        conn.publish
            .queue_declare(
                self.dead_letter_queue().as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| u64::from(q.message_count()))
            .map_err(unavailable)
    }
}
