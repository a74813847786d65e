//! Settling a delivery (publish, then ack), rescue and counts.

use lapin::options::{BasicAckOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::{unavailable, AmqpQueue, OP_TIMEOUT};
use crate::job::{Lease, QueueCounts, Settlement};
use crate::queue::broker::{self, Outcome};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl AmqpQueue {
    pub(super) async fn finish(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        self.inner
            .in_flight
            .settle(
                lease,
                None,
                settlement,
                now,
                |acker, outcome, rec| async move {
                    if let Some(rec) = rec {
                        if outcome == Outcome::Dead {
                            self.publish(&self.dead_letter_queue(), &rec).await?;
                        } else {
                            self.publish_due(&rec, now).await?;
                        }
                    }
                    // Bounded: an ack on the channel of a connection that was
                    // cut can stay unanswered; the message is back in the queue
                    // either way.
                    match tokio::time::timeout(OP_TIMEOUT, acker.ack(BasicAckOptions::default()))
                        .await
                    {
                        Ok(Ok(_)) => Ok(()),
                        // The channel closed: the message is back in the queue.
                        Ok(Err(_)) | Err(_) => Err(broker::lost(lease)),
                    }
                },
            )
            .await
    }

    pub(super) async fn forget_expired(
        &self,
        now: Timestamp,
        max: usize,
    ) -> Result<usize, QueueError> {
        // Deliveries whose lease ran out in this process go back to the
        // queue (RabbitMQ counts the return in x-delivery-count).
        let expired = self.inner.in_flight.expired(now, max);
        let n = expired.len();
        for h in expired {
            // Bounded, as in settle: the channel may be a cut connection's.
            let nack = h.handle.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            });
            let _ = tokio::time::timeout(OP_TIMEOUT, nack).await;
        }
        Ok(n)
    }

    pub(super) async fn count(
        &self,
        queue: &str,
        _now: Timestamp,
    ) -> Result<QueueCounts, QueueError> {
        self.check(queue)?;
        let conn = self.conn().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let count = |name: String| {
            let ch = conn.publish.clone();
            async move {
                ch.queue_declare(name.as_str().into(), passive, FieldTable::default())
                    .await
                    .map(|q| u64::from(q.message_count()))
                    .map_err(unavailable)
            }
        };
        let due = count(self.inner.queue.clone()).await?;
        let dead = count(self.dead_letter_queue()).await?;
        let steps: Vec<u64> = self
            .inner
            .retry_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        let mut scheduled = 0;
        for ms in steps {
            scheduled += count(format!("{}.retry.{ms}", self.inner.queue)).await?;
        }
        // Deliveries that reached this process but were not claimed yet
        // are due; claimed ones run here.
        let buffered = self
            .inner
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
        Ok(QueueCounts {
            due: due + buffered,
            scheduled,
            running: self.inner.in_flight.len() as u64,
            dead,
        })
    }
}
