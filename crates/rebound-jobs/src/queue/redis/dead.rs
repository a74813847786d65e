//! The dead-letter stream: lookups, listing, redrive and purge.

use super::entry::{map_err, message};
use super::RedisStreamQueue;
use crate::dlq::DeadLetterFilter;
use crate::job::{JobId, JobRecord, JobStatus};
use crate::queue::broker::{self, Envelope};
use crate::queue::QueueError;
use crate::time::Timestamp;

impl RedisStreamQueue {
    /// Every entry of the dead-letter stream: (entry id, record).
    pub(super) async fn dead_entries(&self) -> Result<Vec<(String, JobRecord)>, QueueError> {
        let mut conn = self.inner.conn.clone();
        let mut out = Vec::new();
        let mut start = "-".to_owned();
        loop {
            let page: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
                .arg(self.dead_letter_stream())
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            let n = page.len();
            for (entry, fields) in page {
                let (env, payload) = message(&self.inner.stream, &entry, &fields)?;
                start = format!("({entry}");
                out.push((entry, env.record(payload, JobStatus::Dead)));
            }
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    pub(super) async fn find_job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        if let Some(r) = self.inner.in_flight.record(id) {
            return Ok(Some(r));
        }
        let mut conn = self.inner.conn.clone();
        let (env, payload): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.scheduled())
            .arg(format!("e:{id}"))
            .arg(format!("p:{id}"))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        if let (Some(env), Some(payload)) = (env, payload) {
            return Ok(Some(
                Envelope::decode(&env, id)?.record(payload, JobStatus::Available),
            ));
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
        let dead = self.dead_entries().await?;
        broker::redrive(dead, ids, now, |entry, rec| async move {
            let mut conn = self.inner.conn.clone();
            let ok: i64 = self
                .inner
                .scripts
                .redrive
                .key(&self.inner.stream)
                .key(self.dead_letter_stream())
                .arg(&entry)
                .arg(Envelope::of(&rec).encode())
                .arg(&rec.payload)
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(ok == 1)
        })
        .await
    }

    pub(super) async fn delete_dead(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let entries: Vec<String> = broker::listed(self.dead_entries().await?, ids)
            .map(|(e, _)| e)
            .collect();
        if entries.is_empty() {
            return Ok(0);
        }
        let mut conn = self.inner.conn.clone();
        let n: usize = redis::cmd("XDEL")
            .arg(self.dead_letter_stream())
            .arg(entries)
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(n)
    }

    pub(super) async fn dead_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        if queue.is_some_and(|q| q != self.inner.stream) {
            return Ok(0);
        }
        let mut conn = self.inner.conn.clone();
        redis::cmd("XLEN")
            .arg(self.dead_letter_stream())
            .query_async(&mut conn)
            .await
            .map_err(map_err)
    }
}
