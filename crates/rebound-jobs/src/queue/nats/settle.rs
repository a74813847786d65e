//! Settling a delivery (ack, Nak with a delay, dead-letter then Term),
//! rescue and counts.

use async_nats::jetstream::AckKind;

use super::{unavailable, NatsQueue};
use crate::job::{Lease, QueueCounts, Settlement};
use crate::queue::broker::{Envelope, Outcome};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl NatsQueue {
    pub(super) async fn finish(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let ready = self.ready().await?;
        // Fenced by time: after the ack wait the server has redelivered.
        let fence_by = Some(now);
        self.inner
            .in_flight
            .settle(
                lease,
                fence_by,
                settlement,
                now,
                |d, outcome, rec| async move {
                    match (outcome, rec) {
                        (Outcome::Ack, _) | (_, None) => {
                            self.ack(&d.reply, AckKind::Ack).await?;
                            if d.recorded {
                                ready.records.delete(d.sequence).await;
                            }
                        }
                        (Outcome::Dead, Some(rec)) => {
                            self.publish(self.dead_letter_stream(), &rec, None).await?;
                            self.ack(&d.reply, AckKind::Term).await?;
                            if d.recorded {
                                ready.records.delete(d.sequence).await;
                            }
                        }
                        (Outcome::Due | Outcome::Later(_), Some(rec)) => {
                            let mut env = Envelope::of(&rec);
                            env.seen = d.delivered;
                            ready.records.put(d.sequence, env.encode()).await?;
                            let delay = match outcome {
                                Outcome::Later(at) => Some(at.saturating_since(now)),
                                _ => None,
                            };
                            self.ack(&d.reply, AckKind::Nak(delay.filter(|d| !d.is_zero())))
                                .await?;
                        }
                    }
                    Ok(())
                },
            )
            .await
    }

    pub(super) async fn forget_expired(
        &self,
        now: Timestamp,
        max: usize,
    ) -> Result<usize, QueueError> {
        // The server redelivers after the ack wait by itself; here, this
        // process forgets the deliveries whose lease ended, and
        // dead-letters what the consumer's max_deliver stopped.
        let forgotten = self.inner.in_flight.expired(now, max).len();
        Ok(forgotten + self.drain_advisories(now, max).await?)
    }

    pub(super) async fn count(
        &self,
        queue: &str,
        _now: Timestamp,
    ) -> Result<QueueCounts, QueueError> {
        self.check(queue)?;
        let ready = self.ready().await?;
        let mut consumer = ready.consumer.clone();
        let info = consumer.info().await.map_err(unavailable)?;
        let (due, running) = (info.num_pending, info.num_ack_pending as u64);
        Ok(QueueCounts {
            due,
            scheduled: 0,
            running,
            dead: self.dead_depth(None).await?,
        })
    }
}
