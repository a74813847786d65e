//! The Redis Streams adapter: jobs from a stream, through a consumer group.
//!
//! | the policy says | Redis does |
//! |---|---|
//! | claim | `XAUTOCLAIM` entries idle past the lease (a crashed consumer's), then `XREADGROUP` new ones; the delivery count comes from the pending entries list |
//! | renew the lease | `XCLAIM … IDLE 0 JUSTID` (resets the idle time, counts nothing) |
//! | ack | `XACK` + `XDEL` |
//! | retry after a delay | `XACK` + `XDEL`, the job into a sorted set scored by its due time; a claim moves due jobs back into the stream |
//! | hand back (shutdown) | `XACK` + `XDEL` + `XADD` back into the stream |
//! | dead-letter | `XACK` + `XDEL` + `XADD` to the dead-letter stream `<stream>:rebound:dead` |
//!
//! Each of those is one Lua script, so it is atomic, and each checks the
//! **fence** first: the entry must still be pending with the delivery count
//! it was claimed with. A worker whose lease ran out and whose entry was
//! taken over by `XAUTOCLAIM` (which raises the count) can neither renew,
//! ack, retry nor dead-letter it.
//!
//! The job's record (its delivery counts, backoff and history) travels in
//! the entry's `rebound-job` field; the delivery count Redis keeps in the
//! pending entries list adds the deliveries that crashed before they could
//! report, which is what poison detection counts.
//!
//! # Where Redis limits the guarantee
//!
//! * **The stream belongs to one consumer group.** Retries and hand-backs
//!   are written back into the stream as new entries, and acked entries are
//!   deleted: another group reading the same stream would see retried jobs
//!   again and miss acked ones. Give each job queue its own stream.
//! * **Leases follow Redis's clock**: an entry is taken over when Redis has
//!   seen it idle for longer than the claimer's lease. Give every worker of
//!   a stream the same lease.
//! * **Delays** are kept in milliseconds with no upper bound, and are due
//!   when a claim runs after their time: a worker's poll interval (1 s by
//!   default) is their resolution.
//! * **Ordering**: new entries are read in stream order; a retry goes to the
//!   end of the stream when it is due.
//! * **Durability** is Redis's: with `appendfsync everysec` (or no AOF), a
//!   Redis crash can lose the last second of writes — acks and enqueues
//!   alike.
//! * **Entries from other producers** are jobs too: their `payload` field
//!   is the payload if they have one, else their fields as a JSON object;
//!   their job id is derived from the entry id (milliseconds × 65536 +
//!   sequence).
//! * **Lookups**: [`Queue::job`] finds dead-lettered jobs, scheduled
//!   retries, and jobs running in this process; a job waiting in the stream
//!   is not looked up. Listing the dead-letter stream reads it whole.
//!
//! # Conformance
//!
//! The adapter runs the queue conformance suite (`rebound_jobs::conformance`)
//! on real time, declaring where it keeps a weaker rule:
//! * `Limit::OneQueue`: one adapter serves one stream.
//! * `Limit::WaitingNotLookedUp`: see *Lookups* above.
//! * `Limit::UntimedLostDeliveries`: a delivery that never reported enters the history with no claim time (`claimed_at: None`) and no worker.

mod scripts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use crate::dlq::DeadLetterFilter;
use crate::job::{
    validate_queue_name, ClaimedJob, JobId, JobRecord, JobStatus, Lease, NewJob, QueueCounts,
    Settlement,
};
use crate::queue::broker::{self, Envelope, InFlight, ENVELOPE_HEADER};
use crate::queue::{apply, ClaimRequest, Queue, QueueError};
use crate::time::{duration_millis, Timestamp};

const BACKEND: &str = "redis";

/// What a delivery in flight needs to be settled: the entry and the
/// delivery count it was claimed with.
#[derive(Debug, Clone)]
struct Entry {
    entry: String,
    count: u32,
    consumer: String,
}

/// Jobs on a Redis stream, read through a consumer group.
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_jobs::QueueError> {
/// use rebound_jobs::{NewJob, Queue, RedisStreamQueue};
///
/// // The stream `invoices`, through the consumer group `rebound`.
/// let queue = RedisStreamQueue::connect("redis://127.0.0.1:6379", "invoices").await?;
/// queue.enqueue(NewJob::new("invoices", r#"{"invoice":42}"#)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStreamQueue {
    inner: Arc<Inner>,
    clock: rebound::Clock,
}

struct Inner {
    conn: ConnectionManager,
    stream: String,
    group: String,
    scripts: Scripts,
    in_flight: InFlight<Entry>,
    ready: tokio::sync::OnceCell<()>,
}

struct Scripts {
    claim: Script,
    settle: Script,
    renew: Script,
    enqueue: Script,
    redrive: Script,
}

impl std::fmt::Debug for RedisStreamQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamQueue")
            .field("stream", &self.inner.stream)
            .field("group", &self.inner.group)
            .finish_non_exhaustive()
    }
}

fn map_err(e: RedisError) -> QueueError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        QueueError::Unavailable {
            backend: BACKEND,
            source: Box::new(e),
        }
    } else {
        QueueError::Backend {
            backend: BACKEND,
            source: Box::new(e),
        }
    }
}

fn bad_reply(what: &str) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        source: format!("unexpected reply from Redis: {what}").into(),
    }
}

/// The job id of an entry written without an envelope: its entry id
/// `ms-seq` as `ms × 65536 + seq`.
fn id_of_entry(entry: &str) -> Result<JobId, QueueError> {
    let (ms, seq) = entry
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| bad_reply(&format!("stream entry id {entry:?}")))?;
    Ok(JobId(
        ms.saturating_mul(65_536).saturating_add(seq & 0xFFFF),
    ))
}

/// A stream entry's message: its envelope (or a fresh one) and payload.
fn message(
    stream: &str,
    entry: &str,
    fields: &[Vec<u8>],
) -> Result<(Envelope, Vec<u8>), QueueError> {
    let mut payload = None;
    let mut envelope = None;
    let mut others = serde_json::Map::new();
    for pair in fields.chunks(2) {
        let [k, v] = pair else {
            return Err(bad_reply("odd number of stream fields"));
        };
        match k.as_slice() {
            b"payload" => payload = Some(v.clone()),
            k if k == ENVELOPE_HEADER.as_bytes() => envelope = Some(v.clone()),
            k => {
                others.insert(
                    String::from_utf8_lossy(k).into_owned(),
                    serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
                );
            }
        }
    }
    let fallback = id_of_entry(entry)?;
    let envelope = match envelope {
        Some(e) => Envelope::decode(&e, fallback)?,
        None => {
            let ms = entry.split('-').next().and_then(|m| m.parse().ok());
            Envelope::fresh(
                fallback,
                stream,
                Timestamp::from_millis(ms.unwrap_or_default()),
            )
        }
    };
    let payload = payload.unwrap_or_else(|| {
        serde_json::to_vec(&serde_json::Value::Object(others)).expect("JSON object")
    });
    Ok((envelope, payload))
}

impl RedisStreamQueue {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`) for the jobs of
    /// `stream` (also the queue name workers and jobs use), read through
    /// the consumer group `rebound` (see [`with_group`](Self::with_group)).
    /// The connection reconnects by itself; connecting and each command
    /// time out after 2 s.
    pub async fn connect(url: &str, stream: &str) -> Result<Self, QueueError> {
        validate_queue_name(stream).map_err(|reason| QueueError::Invalid {
            field: "stream",
            reason,
        })?;
        let client = redis::Client::open(url).map_err(|e| QueueError::Invalid {
            field: "url",
            reason: format!("{url:?} is not a Redis URL: {e}"),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(map_err)?;
        Ok(RedisStreamQueue {
            inner: Arc::new(Inner {
                conn,
                stream: stream.to_owned(),
                group: "rebound".to_owned(),
                scripts: Scripts {
                    claim: Script::new(scripts::CLAIM),
                    settle: Script::new(scripts::SETTLE),
                    renew: Script::new(scripts::RENEW),
                    enqueue: Script::new(scripts::ENQUEUE),
                    redrive: Script::new(scripts::REDRIVE),
                },
                in_flight: InFlight::default(),
                ready: tokio::sync::OnceCell::new(),
            }),
            clock: rebound::Clock::default(),
        })
    }

    /// Reads through consumer group `group` (created at the start of the
    /// stream if missing, so jobs already in it run). Default `rebound`.
    pub fn with_group(mut self, group: &str) -> Result<Self, QueueError> {
        validate_queue_name(group).map_err(|reason| QueueError::Invalid {
            field: "group",
            reason: reason.replace("queue name", "group name"),
        })?;
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| QueueError::Invalid {
            field: "group",
            reason: "set the group before cloning the queue".into(),
        })?;
        inner.group = group.to_owned();
        Ok(self)
    }

    /// The clock read for the times recorded with jobs (enqueue, delivery,
    /// dead-letter times) and by workers. Default: the system clock through
    /// tokio. Leases expire on Redis's own clock.
    pub fn with_clock(mut self, clock: rebound::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The stream.
    pub fn stream(&self) -> &str {
        &self.inner.stream
    }

    /// The dead-letter stream: `<stream>:rebound:dead`.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}:rebound:dead", self.inner.stream)
    }

    fn schedule(&self) -> String {
        format!("{}:rebound:schedule", self.inner.stream)
    }

    fn scheduled(&self) -> String {
        format!("{}:rebound:scheduled", self.inner.stream)
    }

    fn check(&self, queue: &str) -> Result<(), QueueError> {
        if queue == self.inner.stream {
            return Ok(());
        }
        validate_queue_name(queue).map_err(|reason| QueueError::Invalid {
            field: "queue",
            reason,
        })?;
        Err(QueueError::Invalid {
            field: "queue",
            reason: format!(
                "this Redis queue serves the stream {:?}, not {queue:?}; connect one RedisStreamQueue per stream",
                self.inner.stream
            ),
        })
    }

    /// Creates the consumer group (at the start of the stream) once.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        self.inner
            .ready
            .get_or_try_init(|| async {
                let mut conn = self.inner.conn.clone();
                let r: Result<(), RedisError> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.inner.stream)
                    .arg(&self.inner.group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut conn)
                    .await;
                match r {
                    Ok(()) => Ok(()),
                    Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
                    Err(e) => Err(map_err(e)),
                }
            })
            .await
            .map(|_| ())
    }

    /// Every entry of the dead-letter stream: (entry id, record).
    async fn dead_entries(&self) -> Result<Vec<(String, JobRecord)>, QueueError> {
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

    async fn settle_script(
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
}

#[async_trait]
impl Queue for RedisStreamQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }

    async fn enqueue_at(&self, job: NewJob, now: Timestamp) -> Result<JobId, QueueError> {
        Ok(self.enqueue_many_at(vec![job], now).await?[0])
    }

    async fn enqueue_many_at(
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

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, QueueError> {
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
            let (job, rec) = broker::claim(&env, payload, count, req.now, req.lease, req.worker);
            self.inner.in_flight.insert(
                &job.lease,
                rec,
                Entry {
                    entry,
                    count,
                    consumer: req.worker.to_owned(),
                },
            );
            jobs.push(job);
        }
        Ok(jobs)
    }

    async fn renew(
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

    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let mut held = self.inner.in_flight.take(lease, None)?;
        let mode = match &settlement {
            Settlement::Ack => "ack",
            Settlement::HandBack { .. } => "now",
            Settlement::Retry { run_at, .. } if *run_at <= now => "now",
            Settlement::Retry { .. } => "later",
            Settlement::DeadLetter { .. } => "dead",
        };
        let keep = apply::settle(&mut held.record, settlement, now);
        let r = self
            .settle_script(&held.handle, mode, keep.then_some(&held.record))
            .await;
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(broker::lost(lease)),
            Err(e) => {
                // Not written: keep holding the delivery so the worker can
                // try again while its lease lasts (the record is rebuilt
                // from the envelope on redelivery anyway).
                if e.is_unavailable() {
                    self.inner.in_flight.put_back(held, lease.id);
                }
                Err(e)
            }
        }
    }

    async fn rescue(&self, now: Timestamp, max: usize) -> Result<usize, QueueError> {
        // Redis takes over idle entries itself (XAUTOCLAIM in every claim);
        // here, this process forgets the deliveries whose lease it let run
        // out, so it cannot act on them any more.
        Ok(self.inner.in_flight.expired(now, max).len())
    }

    async fn counts(&self, queue: &str, now: Timestamp) -> Result<QueueCounts, QueueError> {
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

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
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
        Ok(self
            .dead_entries()
            .await?
            .into_iter()
            .find(|(_, r)| r.id == id)
            .map(|(_, r)| r))
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let dead = self.dead_entries().await?;
        Ok(filter.page(dead.into_iter().map(|(_, r)| r), after, limit))
    }

    async fn redrive(&self, ids: &[JobId], now: Timestamp) -> Result<usize, QueueError> {
        let mut moved = 0;
        let mut conn = self.inner.conn.clone();
        for (entry, mut rec) in self.dead_entries().await? {
            if !ids.contains(&rec.id) {
                continue;
            }
            apply::redrive(&mut rec, now);
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
            moved += ok as usize;
        }
        Ok(moved)
    }

    async fn purge(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let entries: Vec<String> = self
            .dead_entries()
            .await?
            .into_iter()
            .filter(|(_, r)| ids.contains(&r.id))
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

    async fn dead_letter_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_entries_are_jobs() {
        let fields = vec![b"invoice".to_vec(), b"42".to_vec()];
        let (env, payload) = message("orders", "1700000000000-3", &fields).unwrap();
        assert_eq!(payload, br#"{"invoice":"42"}"#);
        assert_eq!(env.id, JobId(1_700_000_000_000 * 65_536 + 3));
        assert_eq!(
            env.state.enqueued_at,
            Timestamp::from_millis(1_700_000_000_000)
        );
        assert_eq!(env.queue, "orders");
        let fields = vec![b"payload".to_vec(), b"raw".to_vec()];
        assert_eq!(message("orders", "1-0", &fields).unwrap().1, b"raw");
    }
}
