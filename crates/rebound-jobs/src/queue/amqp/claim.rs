//! Enqueue, claim and lease renewal.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicNackOptions};

use super::message::{envelope_of, fnv, header_count};
use super::publish::confirmed;
use super::AmqpQueue;
use crate::job::{ClaimedJob, JobId, JobStatus, Lease, NewJob};
use crate::queue::broker::{self, Envelope};
use crate::queue::{apply, ClaimRequest, QueueError};
use crate::time::Timestamp;

impl AmqpQueue {
    pub(super) async fn add(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<JobId>, QueueError> {
        for job in &jobs {
            self.check(&job.queue)?;
        }
        // Published one after another, confirmed together: the broker
        // confirms in order, and the call returns once every job is
        // confirmed (or says which queue refused one).
        let mut ids = Vec::with_capacity(jobs.len());
        let mut confirms = Vec::with_capacity(jobs.len());
        for job in jobs {
            // Ids by time and producer (see `ids`).
            let id = self.inner.ids.next(now.as_millis());
            let rec = apply::new_record(id, job, now);
            let queue = self.due_queue(&rec, now).await?;
            confirms.push((self.send(&queue, &rec).await?, queue));
            ids.push(id);
        }
        for (confirm, queue) in confirms {
            confirmed(confirm, &queue).await?;
        }
        Ok(ids)
    }

    pub(super) async fn take_due(
        &self,
        req: ClaimRequest<'_>,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        self.check(req.queue)?;
        let conn = self.conn().await?;
        self.consume(&conn).await?;
        let mut got = Vec::new();
        {
            let mut rx = self
                .inner
                .deliveries
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while got.len() < req.max {
                match rx.try_recv() {
                    Ok(d) => got.push(d),
                    Err(_) => break,
                }
            }
        }
        let mut jobs = Vec::new();
        for d in got {
            let env = match envelope_of(&self.inner.queue, &d.properties, &d.data, req.now) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(queue = %self.inner.queue, "dead-lettering a message whose envelope cannot be read: {e}");
                    let mut rec = Envelope::fresh(JobId(fnv(&d.data)), &self.inner.queue, req.now)
                        .record(d.data.clone(), JobStatus::Dead);
                    rec.reason = Some(crate::DeadLetterReason::Permanent);
                    rec.dead_at = Some(req.now);
                    if self.publish(&self.dead_letter_queue(), &rec).await.is_ok() {
                        let _ = d.acker.ack(BasicAckOptions::default()).await;
                    }
                    continue;
                }
            };
            if env.run_at > req.now {
                // Came back from a retry queue before its time: wait in the
                // next one.
                let rec = env.record(d.data.clone(), JobStatus::Available);
                match self.publish_due(&rec, req.now).await {
                    Ok(()) => {
                        let _ = d.acker.ack(BasicAckOptions::default()).await;
                    }
                    Err(_) => {
                        let _ = d
                            .acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            })
                            .await;
                    }
                }
                continue;
            }
            let delivered = header_count(d.properties.headers().as_ref(), "x-delivery-count")
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX - 1) + 1);
            jobs.push(
                self.inner
                    .in_flight
                    .claim(&env, d.data, delivered, &req, d.acker),
            );
        }
        Ok(jobs)
    }

    pub(super) async fn extend(
        &self,
        lease: &Lease,
        now: Timestamp,
        lease_for: Duration,
    ) -> Result<Timestamp, QueueError> {
        let until = now.saturating_add(lease_for);
        let alive = {
            let conn = self.inner.conn.lock().await;
            conn.as_ref()
                .is_some_and(|c| c.connection.status().connected())
        };
        if !alive {
            // The channel that holds the delivery is gone: RabbitMQ has
            // returned the message to the queue.
            let _ = self.inner.in_flight.take(lease, None);
            return Err(broker::lost(lease));
        }
        self.inner
            .in_flight
            .with(lease, None, |h| h.expires_at = until)?;
        Ok(until)
    }
}
