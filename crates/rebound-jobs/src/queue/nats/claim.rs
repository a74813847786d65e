//! Enqueue, claim and lease renewal (in-progress acks).

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::HeaderMap;
use futures_util::StreamExt;

use super::wire::{acked, envelope_of, system_time};
use super::{backend_err, unavailable, Delivery, NatsQueue, DUE_HEADER, FETCH_STALL};
use crate::job::{ClaimedJob, JobId, Lease, NewJob};
use crate::queue::broker::Envelope;
use crate::queue::{ClaimRequest, QueueError};
use crate::time::Timestamp;

impl NatsQueue {
    pub(super) async fn add(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<JobId>, QueueError> {
        for job in &jobs {
            self.check(&job.queue)?;
        }
        let ready = self.ready().await?;
        // Published one after another, acknowledged together: the stream
        // numbers them in the order they arrive.
        let mut acks = Vec::with_capacity(jobs.len());
        for job in jobs {
            let due = job.due_at(now);
            let mut headers = HeaderMap::new();
            if due > now {
                headers.insert(DUE_HEADER, due.as_millis().to_string().as_str());
            }
            acks.push(
                self.inner
                    .js
                    .publish_with_headers(ready.subject.clone(), headers, job.payload.into())
                    .await
                    .map_err(unavailable)?,
            );
        }
        let mut ids = Vec::with_capacity(acks.len());
        for ack in acks {
            ids.push(JobId(acked(ack).await?));
        }
        Ok(ids)
    }

    pub(super) async fn take_due(
        &self,
        req: ClaimRequest<'_>,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        self.check(req.queue)?;
        let ready = self.ready().await?;
        let mut batch = ready
            .consumer
            .fetch()
            .max_messages(req.max.max(1))
            .messages()
            .await
            .map_err(unavailable)?;
        let mut jobs = Vec::new();
        while let Ok(Some(msg)) = tokio::time::timeout(FETCH_STALL, batch.next()).await {
            let msg = msg.map_err(unavailable)?;
            let (sequence, delivered, published) = {
                let info = msg.info().map_err(backend_err)?;
                (
                    info.stream_sequence,
                    u32::try_from(info.delivered).unwrap_or(u32::MAX),
                    system_time(info.published.unix_timestamp_nanos()),
                )
            };
            let reply = msg
                .reply
                .clone()
                .ok_or_else(|| backend_err("a JetStream message without a reply subject"))?;
            let mut recorded = false;
            let env = if delivered > 1 {
                match ready.records.get(sequence).await? {
                    Some(b) => {
                        recorded = true;
                        Envelope::decode(&b, JobId(sequence))?
                    }
                    None => envelope_of(
                        msg.headers.as_ref(),
                        sequence,
                        &self.inner.stream,
                        published,
                    )?,
                }
            } else {
                envelope_of(
                    msg.headers.as_ref(),
                    sequence,
                    &self.inner.stream,
                    published,
                )?
            };
            if env.run_at > req.now && env.state.deliveries == 0 && env.history.is_empty() {
                // Enqueued for later: not a run. Account for this delivery
                // and come back when it is due.
                let mut later = env.clone();
                later.seen = delivered;
                ready.records.put(sequence, later.encode()).await?;
                self.ack(
                    &reply,
                    AckKind::Nak(Some(env.run_at.saturating_since(req.now))),
                )
                .await?;
                continue;
            }
            let handle = Delivery {
                reply,
                sequence,
                delivered,
                recorded,
            };
            let payload = msg.payload.to_vec();
            jobs.push(
                self.inner
                    .in_flight
                    .claim(&env, payload, delivered, &req, handle),
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
        let d = self
            .inner
            .in_flight
            .with(lease, Some(now), |h| h.handle.clone())?;
        self.ack(&d.reply, AckKind::Progress).await?;
        // The server restarted its ack wait: the lease now ends one ack
        // wait from now, whatever the worker asked.
        let until = now.saturating_add(lease_for.min(self.inner.lease));
        self.inner
            .in_flight
            .with(lease, Some(now), |h| h.expires_at = until)?;
        Ok(until)
    }
}
