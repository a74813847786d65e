//! Enqueue, claim and lease renewal.

use std::time::Duration;

use super::entry::{bad_reply, map_err, message, Entry};
use super::RedisStreamQueue;
use crate::job::{ClaimedJob, JobId, Lease, NewJob};
use crate::queue::broker::{self, Envelope};
use crate::queue::{apply, ClaimRequest, QueueError};
use crate::time::{duration_millis, Timestamp};

impl RedisStreamQueue {
    pub(super) async fn add(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<JobId>, QueueError> {
        for job in &jobs {
            self.check(&job.queue)?;
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_group().await?;
        let mut conn = self.inner.conn.clone();
        // Ids from a counter: known before the jobs are written, so each
        // envelope carries its own.
        let last: u64 = redis::cmd("INCRBY")
            .arg(format!("{}:rebound:ids", self.inner.stream))
            .arg(jobs.len())
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        let first = last + 1 - jobs.len() as u64;
        let mut inv = self.inner.scripts.enqueue.prepare_invoke();
        inv.key(&self.inner.stream)
            .key(self.schedule())
            .key(self.scheduled())
            .arg(now.as_millis());
        let mut ids = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.into_iter().enumerate() {
            let id = JobId(first + i as u64);
            let rec = apply::new_record(id, job, now);
            inv.arg(id.0)
                .arg(rec.run_at.as_millis())
                .arg(Envelope::of(&rec).encode())
                .arg(rec.payload);
            ids.push(id);
        }
        let _: i64 = inv.invoke_async(&mut conn).await.map_err(map_err)?;
        Ok(ids)
    }

    pub(super) async fn take_due(
        &self,
        req: ClaimRequest<'_>,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        self.check(req.queue)?;
        self.ensure_group().await?;
        let mut conn = self.inner.conn.clone();
        let entries: Vec<Vec<Vec<u8>>> = self
            .inner
            .scripts
            .claim
            .key(&self.inner.stream)
            .key(self.schedule())
            .key(self.scheduled())
            .arg(&self.inner.group)
            .arg(req.worker)
            .arg(req.now.as_millis())
            .arg(duration_millis(req.lease).max(1))
            .arg(req.max.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        let mut jobs = Vec::with_capacity(entries.len());
        for e in entries {
            let (entry, count, fields) = match e.as_slice() {
                [entry, count, fields @ ..] => (
                    String::from_utf8_lossy(entry).into_owned(),
                    std::str::from_utf8(count)
                        .ok()
                        .and_then(|c| c.parse::<u32>().ok())
                        .ok_or_else(|| bad_reply("delivery count"))?,
                    fields,
                ),
                _ => return Err(bad_reply("claimed entry")),
            };
            let (env, payload) = match message(&self.inner.stream, &entry, fields) {
                Ok(m) => m,
                Err(e) => {
                    // Unreadable: leave it pending (visible in XPENDING)
                    // rather than guess; say so.
                    tracing::error!(stream = %self.inner.stream, entry, "skipping an entry: {e}");
                    continue;
                }
            };
            let consumer = req.worker.to_owned();
            let handle = Entry {
                entry,
                count,
                consumer,
            };
            jobs.push(
                self.inner
                    .in_flight
                    .claim(&env, payload, count, &req, handle),
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
        let held = self
            .inner
            .in_flight
            .with(lease, None, |h| h.handle.clone())?;
        let mut conn = self.inner.conn.clone();
        let ok: i64 = self
            .inner
            .scripts
            .renew
            .key(&self.inner.stream)
            .arg(&self.inner.group)
            .arg(&held.consumer)
            .arg(&held.entry)
            .arg(held.count)
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        if ok != 1 {
            let _ = self.inner.in_flight.take(lease, None);
            return Err(broker::lost(lease));
        }
        let until = now.saturating_add(lease_for);
        self.inner
            .in_flight
            .with(lease, None, |h| h.expires_at = until)?;
        Ok(until)
    }
}
