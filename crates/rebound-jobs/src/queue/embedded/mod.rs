//! The embedded queue: one [redb](https://docs.rs/redb) file, no server.
//! The default.
//!
//! redb has a single writer, so every claim, renewal and settlement is one
//! write transaction and atomic by construction; each is committed durably
//! (fsync) before it returns, so a delivery counted at claim survives a
//! `kill -9` of the process the next instant. Jobs are JSON documents keyed
//! by id, with three index tables: available jobs by (queue, due time, id),
//! leases by expiry, dead letters by (queue, id). All redb work runs on
//! tokio's blocking pool.
//!
//! One process at a time: redb locks the file. A second process (a second
//! worker process, or `rebound dlq` while a worker runs) gets
//! [`QueueError::Invalid`] naming the file and the reason; share one
//! [`EmbeddedQueue`] between the workers of a process instead (it is cheap
//! to clone), or use the PostgreSQL queue for several processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition,
};

use crate::dlq::DeadLetterFilter;
use crate::job::{
    validate_queue_name, ClaimedJob, JobId, JobRecord, JobStatus, Lease, NewJob, QueueCounts,
    Settlement,
};
use crate::queue::{apply, ClaimRequest, Queue, QueueError};
use crate::time::Timestamp;

mod writer;

use writer::{Done, Op, Writer};

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("rebound_jobs");
const READY: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("rebound_jobs_ready");
const LEASES: TableDefinition<(u64, u64), ()> = TableDefinition::new("rebound_jobs_leases");
const DEAD: TableDefinition<(&str, u64), ()> = TableDefinition::new("rebound_jobs_dead");
const META: TableDefinition<&str, u64> = TableDefinition::new("rebound_jobs_meta");

const BACKEND: &str = "embedded";

/// A queue in one redb file: survives restarts, needs no server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rebound_jobs::QueueError> {
/// use rebound_jobs::{EmbeddedQueue, NewJob, Queue};
///
/// let dir = tempfile::tempdir().unwrap();
/// let queue = EmbeddedQueue::open(dir.path().join("jobs.redb"))?;
/// let id = queue.enqueue(NewJob::new("invoices", r#"{"invoice":42}"#)).await?;
/// assert_eq!(queue.job(id).await?.unwrap().queue, "invoices");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EmbeddedQueue {
    db: Arc<Database>,
    writer: Arc<Writer>,
    path: Arc<PathBuf>,
    clock: rebound::Clock,
    wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl Into<redb::Error>) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        source: Box::new(e.into()),
    }
}

fn decode(id: u64, bytes: &[u8]) -> Result<JobRecord, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Corrupt {
        id: JobId(id),
        reason: e.to_string(),
    })
}

fn encode(rec: &JobRecord) -> Vec<u8> {
    serde_json::to_vec(rec).expect("a job record always serializes")
}

struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    jobs: Table<'t, u64, &'static [u8]>,
    ready: Table<'t, (&'static str, u64, u64), ()>,
    leases: Table<'t, (u64, u64), ()>,
    dead: Table<'t, (&'static str, u64), ()>,
}

impl Tables<'_> {
    fn open(tx: &redb::WriteTransaction) -> Result<Tables<'_>, QueueError> {
        Ok(Tables {
            meta: tx.open_table(META).map_err(backend)?,
            jobs: tx.open_table(JOBS).map_err(backend)?,
            ready: tx.open_table(READY).map_err(backend)?,
            leases: tx.open_table(LEASES).map_err(backend)?,
            dead: tx.open_table(DEAD).map_err(backend)?,
        })
    }

    fn get(&self, id: u64) -> Result<Option<JobRecord>, QueueError> {
        match self.jobs.get(id).map_err(backend)? {
            Some(v) => decode(id, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Removes `rec`'s index entries for its current status.
    fn unindex(&mut self, rec: &JobRecord) -> Result<(), QueueError> {
        let id = rec.id.0;
        match rec.status {
            JobStatus::Available => {
                self.ready
                    .remove((rec.queue.as_str(), rec.run_at.as_millis(), id))
                    .map_err(backend)?;
            }
            JobStatus::Running => {
                if let Some(t) = rec.lease_expires_at {
                    self.leases.remove((t.as_millis(), id)).map_err(backend)?;
                }
            }
            JobStatus::Dead => {
                self.dead
                    .remove((rec.queue.as_str(), id))
                    .map_err(backend)?;
            }
        }
        Ok(())
    }

    /// Writes `rec` and its index entry for its status.
    fn put(&mut self, rec: &JobRecord) -> Result<(), QueueError> {
        let id = rec.id.0;
        match rec.status {
            JobStatus::Available => {
                self.ready
                    .insert((rec.queue.as_str(), rec.run_at.as_millis(), id), ())
                    .map_err(backend)?;
            }
            JobStatus::Running => {
                let t = rec.lease_expires_at.unwrap_or(Timestamp::EPOCH);
                self.leases
                    .insert((t.as_millis(), id), ())
                    .map_err(backend)?;
            }
            JobStatus::Dead => {
                self.dead
                    .insert((rec.queue.as_str(), id), ())
                    .map_err(backend)?;
            }
        }
        self.jobs
            .insert(id, encode(rec).as_slice())
            .map_err(backend)?;
        Ok(())
    }

    fn delete(&mut self, rec: &JobRecord) -> Result<(), QueueError> {
        self.unindex(rec)?;
        self.jobs.remove(rec.id.0).map_err(backend)?;
        Ok(())
    }
}

impl EmbeddedQueue {
    /// Opens (or creates) the queue file at `path`, on the default clock.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, QueueError> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|e| open_error(path, e))?;
        let tx = db.begin_write().map_err(backend)?;
        Tables::open(&tx)?;
        tx.commit().map_err(backend)?;
        let db = Arc::new(db);
        Ok(EmbeddedQueue {
            writer: Arc::new(Writer::start(db.clone(), path)?),
            db,
            path: Arc::new(path.to_owned()),
            clock: rebound::Clock::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Opens an existing queue file; a missing file is an error (what the
    /// CLI uses, so a typo does not create an empty queue).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, QueueError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(QueueError::Invalid {
                field: "path",
                reason: format!("no queue file at {}", path.display()),
            });
        }
        Self::open(path)
    }

    /// Reads time from `clock` (default: [`rebound::Clock::default`]).
    pub fn with_clock(mut self, clock: rebound::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a write transaction shared with the other writes
    /// waiting at that moment (group commit: one fsync for the batch), and
    /// answers once the transaction is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op: Op = Box::new(move |t: Option<&mut Tables<'_>>| {
            // `None`: the batch could not start; the commit error says why.
            let r = match t {
                Some(t) => f(t),
                None => Err(QueueError::Backend {
                    backend: BACKEND,
                    source: "no write transaction".into(),
                }),
            };
            Box::new(move |commit: Option<&str>| {
                let _ = tx.send(match commit {
                    None => r,
                    Some(e) => Err(QueueError::Backend {
                        backend: BACKEND,
                        source: e.to_owned().into(),
                    }),
                });
            }) as Done
        });
        self.writer.send(op)?;
        rx.await.map_err(|_| QueueError::Backend {
            backend: BACKEND,
            source: "the queue's writer thread stopped".into(),
        })?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(backend)?;
            f(&tx)
        })
        .await
        .map_err(|e| QueueError::Backend {
            backend: BACKEND,
            source: Box::new(e),
        })?
    }
}

fn open_error(path: &Path, e: DatabaseError) -> QueueError {
    let reason = match e {
        DatabaseError::DatabaseAlreadyOpen => format!(
            "{} is open in another process (a running worker?): the embedded queue \
             allows one process at a time; stop it, or use the PostgreSQL queue for \
             several processes",
            path.display()
        ),
        other => format!("cannot open {}: {other}", path.display()),
    };
    QueueError::Invalid {
        field: "path",
        reason,
    }
}

fn check_queue(name: &str) -> Result<(), QueueError> {
    validate_queue_name(name).map_err(|reason| QueueError::Invalid {
        field: "queue",
        reason,
    })
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }

    fn notifier(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.wake.clone())
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
            check_queue(&job.queue)?;
        }
        let ids = self
            .write(move |t| {
                let first = t
                    .meta
                    .get("next_id")
                    .map_err(backend)?
                    .map_or(1, |v| v.value());
                let n = jobs.len() as u64;
                t.meta.insert("next_id", first + n).map_err(backend)?;
                let mut ids = Vec::with_capacity(jobs.len());
                for (i, job) in jobs.into_iter().enumerate() {
                    let rec = apply::new_record(JobId(first + i as u64), job, now);
                    t.put(&rec)?;
                    ids.push(rec.id);
                }
                Ok(ids)
            })
            .await?;
        self.wake.notify_waiters();
        Ok(ids)
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, QueueError> {
        check_queue(req.queue)?;
        if req.max == 0 {
            return Ok(Vec::new());
        }
        let (queue, now, lease, max, worker) = (
            req.queue.to_owned(),
            req.now,
            req.lease,
            req.max,
            req.worker.to_owned(),
        );
        self.write(move |t| {
            let keys: Vec<(u64, u64)> = t
                .ready
                .range((queue.as_str(), 0, 0)..=(queue.as_str(), now.as_millis(), u64::MAX))
                .map_err(backend)?
                .take(max)
                .map(|e| {
                    e.map(|(k, _)| {
                        let (_, at, id) = k.value();
                        (at, id)
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let mut out = Vec::with_capacity(keys.len());
            for (at, id) in keys {
                t.ready.remove((queue.as_str(), at, id)).map_err(backend)?;
                let Some(mut rec) = t.get(id)? else { continue };
                let claimed = apply::claim(&mut rec, now, lease, &worker);
                t.put(&rec)?;
                out.push(claimed);
            }
            Ok(out)
        })
        .await
    }

    async fn renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        lease_for: Duration,
    ) -> Result<Timestamp, QueueError> {
        let lease = *lease;
        self.write(move |t| {
            let rec = t.get(lease.id.0)?;
            apply::check_lease(rec.as_ref(), &lease)?;
            let mut rec = rec.expect("checked");
            t.unindex(&rec)?;
            let until = now.saturating_add(lease_for);
            rec.lease_expires_at = Some(until);
            t.put(&rec)?;
            Ok(until)
        })
        .await
    }

    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let lease = *lease;
        let wakes = matches!(
            settlement,
            Settlement::Retry { .. } | Settlement::HandBack { .. }
        );
        self.write(move |t| {
            let rec = t.get(lease.id.0)?;
            apply::check_lease(rec.as_ref(), &lease)?;
            let mut rec = rec.expect("checked");
            t.unindex(&rec)?;
            if apply::settle(&mut rec, settlement, now) {
                t.put(&rec)?;
            } else {
                t.jobs.remove(rec.id.0).map_err(backend)?;
            }
            Ok(())
        })
        .await?;
        if wakes {
            self.wake.notify_waiters();
        }
        Ok(())
    }

    async fn rescue(&self, now: Timestamp, max: usize) -> Result<usize, QueueError> {
        self.write(move |t| {
            let keys: Vec<(u64, u64)> = t
                .leases
                .range((0, 0)..=(now.as_millis(), u64::MAX))
                .map_err(backend)?
                .take(max)
                .map(|e| e.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let mut n = 0;
            for (at, id) in keys {
                t.leases.remove((at, id)).map_err(backend)?;
                let Some(mut rec) = t.get(id)? else { continue };
                apply::rescue(&mut rec);
                t.put(&rec)?;
                n += 1;
            }
            Ok(n)
        })
        .await
        .inspect(|n| {
            if *n > 0 {
                self.wake.notify_waiters();
            }
        })
    }

    async fn counts(&self, queue: &str, now: Timestamp) -> Result<QueueCounts, QueueError> {
        let queue = queue.to_owned();
        self.read(move |tx| {
            let ready = tx.open_table(READY).map_err(backend)?;
            let mut c = QueueCounts::default();
            for e in ready
                .range((queue.as_str(), 0, 0)..=(queue.as_str(), u64::MAX, u64::MAX))
                .map_err(backend)?
            {
                let (k, _) = e.map_err(backend)?;
                if k.value().1 <= now.as_millis() {
                    c.due += 1;
                } else {
                    c.scheduled += 1;
                }
            }
            let leases = tx.open_table(LEASES).map_err(backend)?;
            let jobs = tx.open_table(JOBS).map_err(backend)?;
            for e in leases.iter().map_err(backend)? {
                let (k, _) = e.map_err(backend)?;
                let id = k.value().1;
                if let Some(v) = jobs.get(id).map_err(backend)? {
                    if decode(id, v.value())?.queue == queue {
                        c.running += 1;
                    }
                }
            }
            let dead = tx.open_table(DEAD).map_err(backend)?;
            c.dead = dead
                .range((queue.as_str(), 0)..=(queue.as_str(), u64::MAX))
                .map_err(backend)?
                .count() as u64;
            Ok(c)
        })
        .await
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        self.read(move |tx| {
            let jobs = tx.open_table(JOBS).map_err(backend)?;
            match jobs.get(id.0).map_err(backend)? {
                Some(v) => decode(id.0, v.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let filter = filter.clone();
        self.read(move |tx| {
            let dead = tx.open_table(DEAD).map_err(backend)?;
            let jobs = tx.open_table(JOBS).map_err(backend)?;
            let start = after.map_or(0, |a| a.0.saturating_add(1));
            // Ids of every matching queue above the cursor, in id order.
            let mut ids: Vec<u64> = Vec::new();
            let iter: Box<dyn Iterator<Item = _>> = match &filter.queue {
                Some(q) => Box::new(
                    dead.range((q.as_str(), start)..=(q.as_str(), u64::MAX))
                        .map_err(backend)?,
                ),
                None => Box::new(dead.iter().map_err(backend)?),
            };
            for e in iter {
                let (k, _) = e.map_err(backend)?;
                let id = k.value().1;
                if id >= start {
                    ids.push(id);
                }
            }
            ids.sort_unstable();
            let mut out = Vec::new();
            for id in ids {
                if out.len() >= limit {
                    break;
                }
                if let Some(v) = jobs.get(id).map_err(backend)? {
                    let rec = decode(id, v.value())?;
                    if filter.matches(&rec) {
                        out.push(rec);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn redrive(&self, ids: &[JobId], now: Timestamp) -> Result<usize, QueueError> {
        let ids = ids.to_vec();
        self.write(move |t| {
            let mut n = 0;
            for id in ids {
                let Some(mut rec) = t.get(id.0)? else {
                    continue;
                };
                if rec.status != JobStatus::Dead {
                    continue;
                }
                t.unindex(&rec)?;
                apply::redrive(&mut rec, now);
                t.put(&rec)?;
                n += 1;
            }
            Ok(n)
        })
        .await
        .inspect(|_| self.wake.notify_waiters())
    }

    async fn purge(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let ids = ids.to_vec();
        self.write(move |t| {
            let mut n = 0;
            for id in ids {
                let Some(rec) = t.get(id.0)? else { continue };
                if rec.status != JobStatus::Dead {
                    continue;
                }
                t.delete(&rec)?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    async fn dead_letter_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        let queue = queue.map(str::to_owned);
        self.read(move |tx| {
            let dead = tx.open_table(DEAD).map_err(backend)?;
            Ok(match &queue {
                Some(q) => dead
                    .range((q.as_str(), 0)..=(q.as_str(), u64::MAX))
                    .map_err(backend)?
                    .count() as u64,
                None => dead.len().map_err(backend)?,
            })
        })
        .await
    }
}
