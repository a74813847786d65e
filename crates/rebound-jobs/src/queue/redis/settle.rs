//! Settling a delivery (one fenced script), rescue and counts.

use super::entry::{map_err, Entry};
use super::RedisStreamQueue;
use crate::job::{JobRecord, Lease, QueueCounts, Settlement};
use crate::queue::broker::{self, Envelope, Outcome};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl RedisStreamQueue {
    pub(super) async fn settle_script(
        &self,
        held: &Entry,
        mode: &str,
        rec: Option<&JobRecord>,
    ) -> Result<bool, QueueError> {
        let mut conn = self.inner.conn.clone();
        let (id, due, env, payload) = match rec {
            Some(r) => (
                r.id.0,
                r.run_at.as_millis(),
                Envelope::of(r).encode(),
                r.payload.clone(),
            ),
            None => (0, 0, String::new(), Vec::new()),
        };
        let ok: i64 = self
            .inner
            .scripts
            .settle
            .key(&self.inner.stream)
            .key(self.schedule())
            .key(self.scheduled())
            .key(self.dead_letter_stream())
            .arg(&self.inner.group)
            .arg(&held.entry)
            .arg(held.count)
            .arg(mode)
            .arg(id)
            .arg(due)
            .arg(env)
            .arg(payload)
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(ok == 1)
    }

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
                |entry, outcome, rec| async move {
                    let mode = match outcome {
                        Outcome::Ack => "ack",
                        Outcome::Due => "now",
                        Outcome::Later(_) => "later",
                        Outcome::Dead => "dead",
                    };
                    match self.settle_script(&entry, mode, rec.as_ref()).await? {
                        true => Ok(()),
                        false => Err(broker::lost(lease)),
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
        // Redis takes over idle entries itself (XAUTOCLAIM in every claim);
        // here, this process forgets the deliveries whose lease it let run
        // out, so it cannot act on them any more.
        Ok(self.inner.in_flight.expired(now, max).len())
    }

    pub(super) async fn count(
        &self,
        queue: &str,
        now: Timestamp,
    ) -> Result<QueueCounts, QueueError> {
        self.check(queue)?;
        self.ensure_group().await?;
        let mut conn = self.inner.conn.clone();
        // XPENDING's summary: [count, first id, last id, per-consumer counts].
        type Pending = (u64, redis::Value, redis::Value, redis::Value);
        let (len, pending, scheduled, later, dead): (u64, Pending, u64, u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.inner.stream)
            .cmd("XPENDING")
            .arg(&self.inner.stream)
            .arg(&self.inner.group)
            .cmd("ZCOUNT")
            .arg(self.schedule())
            .arg("-inf")
            .arg(now.as_millis())
            .cmd("ZCOUNT")
            .arg(self.schedule())
            .arg(format!("({}", now.as_millis()))
            .arg("+inf")
            .cmd("XLEN")
            .arg(self.dead_letter_stream())
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        let running = pending.0;
        Ok(QueueCounts {
            due: len.saturating_sub(running) + scheduled,
            scheduled: later,
            running,
            dead,
        })
    }
}
