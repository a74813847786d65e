//! The writer thread of one redb file: takes every write waiting in its
//! queue into one transaction and commits them together (group commit),
//! then answers each — with a write-ahead log, through the syncer thread
//! once the log is synced; reopens the file after an I/O error.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable};
use tokio::sync::oneshot;

use super::file::{error, log_error, open_file, record_checkpoint, Shared, EXPIRY, RECORDS};
use super::log::{Changes, Log};
use super::sync::{sync_loop, Unsynced};
use crate::record::{ClaimOutcome, ClaimRequest, Fingerprint, Record, State};
use crate::store::StoreError;
use crate::time::Timestamp;

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// The longest the writer waits for more writes before a commit.
const MAX_GATHER: Duration = Duration::from_millis(1);
/// How long a reopen waits for readers still holding the old database.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// A write waiting for the writer thread.
pub(super) enum Op {
    Claim {
        key: String,
        fingerprint: Fingerprint,
        now: Timestamp,
        lease: Duration,
        ttl: Duration,
        reply: oneshot::Sender<Result<ClaimOutcome, StoreError>>,
    },
    Update {
        key: String,
        fence: u64,
        change: Change,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Sweep {
        now: Timestamp,
        batch: usize,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

/// A change to a record held under a fence.
pub(super) enum Change {
    Renew {
        now: Timestamp,
        lease: Duration,
    },
    Complete {
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    },
    Release,
}

/// An answer computed inside the transaction, sent once it commits.
pub(super) enum Answer {
    Claim(
        oneshot::Sender<Result<ClaimOutcome, StoreError>>,
        Result<ClaimOutcome, StoreError>,
    ),
    Update(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Sweep(
        oneshot::Sender<Result<usize, StoreError>>,
        Result<usize, StoreError>,
    ),
}

impl Answer {
    /// Whether this answer hands a key to its caller, who will be back with
    /// its completion or release shortly.
    fn claimed(&self) -> bool {
        matches!(self, Answer::Claim(_, Ok(ClaimOutcome::Claimed { .. })))
    }

    pub(super) fn send(self) {
        // A caller that gave up waiting has dropped its receiver; its write
        // is committed all the same.
        match self {
            Answer::Claim(tx, r) => drop(tx.send(r)),
            Answer::Update(tx, r) => drop(tx.send(r)),
            Answer::Sweep(tx, r) => drop(tx.send(r)),
        }
    }

    pub(super) fn fail(self, e: &StoreError) {
        match self {
            Answer::Claim(tx, _) => drop(tx.send(Err(copy_error(e)))),
            Answer::Update(tx, _) => drop(tx.send(Err(copy_error(e)))),
            Answer::Sweep(tx, _) => drop(tx.send(Err(copy_error(e)))),
        }
    }
}

impl Op {
    fn fail(self, e: &StoreError) {
        match self {
            Op::Claim { reply, .. } => drop(reply.send(Err(copy_error(e)))),
            Op::Update { reply, .. } => drop(reply.send(Err(copy_error(e)))),
            Op::Sweep { reply, .. } => drop(reply.send(Err(copy_error(e)))),
        }
    }
}

/// The same failure for each op of a failed batch.
fn copy_error(e: &StoreError) -> StoreError {
    let source = e.to_string().into();
    match e {
        StoreError::Unavailable { .. } => StoreError::Unavailable {
            store: "redb",
            source,
        },
        _ => StoreError::Backend {
            store: "redb",
            source,
        },
    }
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    /// The write-ahead log, when commits are durable.
    log: Option<Log>,
    /// The syncer thread, which syncs the log and answers the batches
    /// written to it; with the log only.
    syncer: Option<(mpsc::Sender<Unsynced>, std::thread::JoinHandle<()>)>,
    /// Counts reopenings: a batch written before one is never synced after
    /// a failure.
    epoch: u64,
}

type Tables<'t> = (
    redb::Table<'t, &'static str, &'static [u8]>,
    redb::Table<'t, (u64, &'static str), ()>,
);

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, log: Option<Log>) -> Self {
        let syncer = shared.opening.log_size.map(|_| {
            let (tx, rx) = mpsc::channel();
            let sync_shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name("rebound-idempotency-redb-sync".into())
                .spawn(move || sync_loop(sync_shared, rx))
                .expect("spawn the redb log syncer thread");
            (tx, handle)
        });
        Writer {
            shared,
            log,
            syncer,
            epoch: 0,
        }
    }

    /// Take the waiting writes, commit them together, answer them; again.
    ///
    /// Waiting writers come in cohorts: while one batch commits, the next
    /// queues, and the callers just handed a key come back with its
    /// completion a moment later. Left alone the cohorts alternate, each
    /// batch half as large as it could be. So before committing, the writer
    /// waits for the callers it just handed keys to, for at most half the
    /// last commit's time: with the cohorts merged, a batch carries the
    /// writes in flight and a write waits for one commit, not two. With the
    /// log the writer does not wait: the syncer's sync is what batches
    /// there, covering every batch written while the previous one ran.
    pub(super) fn run(mut self, ops: mpsc::Receiver<Op>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut expected = 1;
        let mut window = Duration::ZERO;
        loop {
            if batch.is_empty() {
                match ops.recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => {
                        self.checkpoint_on_close();
                        if let Some((tx, handle)) = self.syncer.take() {
                            drop(tx);
                            let _ = handle.join();
                        }
                        return;
                    }
                }
            }
            let deadline = Instant::now() + window;
            loop {
                while batch.len() < MAX_BATCH {
                    match ops.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                let now = Instant::now();
                if batch.len() >= expected.min(MAX_BATCH) || now >= deadline {
                    break;
                }
                match ops.recv_timeout(deadline - now) {
                    Ok(op) => batch.push(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let started = Instant::now();
            let answers = self.commit(&mut batch);
            window = if self.syncer.is_some() {
                Duration::ZERO
            } else {
                (started.elapsed() / 2).min(MAX_GATHER)
            };
            // Writes that queued during the commit came from other callers;
            // those handed a key now will be back with its completion:
            // expect both.
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            expected = batch.len() + answers.iter().filter(|a| a.claimed()).count();
            answers.into_iter().for_each(Answer::send);
        }
    }

    /// Apply every op of `batch` in one write transaction and commit it;
    /// the answers, to send. A failed transaction fails every op in it
    /// (answered here).
    ///
    /// With the log, what the batch changed is written to it (its keys
    /// marked pending first, so the read path leaves them to the writer),
    /// the transaction commits without a sync, and the batch goes to the
    /// syncer, which answers it once the log is synced (none to send here).
    /// A batch whose changes do not fit in the rest of the log commits
    /// durably in redb instead, which covers every entry so far (a
    /// checkpoint); the log then starts over.
    fn commit(&mut self, batch: &mut Vec<Op>) -> Vec<Answer> {
        let db = match self.database() {
            Ok(db) => db,
            Err(e) => {
                batch.drain(..).for_each(|op| op.fail(&e));
                return Vec::new();
            }
        };
        let mut answers = Vec::with_capacity(batch.len());
        let result = (|| -> Result<Option<Unsynced>, StoreError> {
            let mut tx = db.begin_write().map_err(error)?;
            let mut changes = Changes::default();
            {
                let mut tables = (
                    tx.open_table(RECORDS).map_err(error)?,
                    tx.open_table(EXPIRY).map_err(error)?,
                );
                for op in batch.drain(..) {
                    answers.push(apply(&mut tables, &mut changes, op)?);
                }
            }
            let handoff = match self.log.as_mut() {
                None => {
                    tx.set_durability(self.shared.durability).map_err(error)?;
                    None
                }
                Some(log) if log.fits(&changes) => {
                    let lsn = if changes.is_empty() {
                        0
                    } else {
                        let lsn = log.write(&changes).map_err(log_error)?;
                        let mut pending = self
                            .shared
                            .pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        for key in &changes.keys {
                            pending.insert(key.clone(), (self.epoch, lsn));
                        }
                        lsn
                    };
                    tx.set_durability(Durability::None).map_err(error)?;
                    Some(Unsynced {
                        epoch: self.epoch,
                        lsn,
                        keys: std::mem::take(&mut changes.keys),
                        file: log.file(),
                        answers: Vec::new(),
                    })
                }
                Some(log) => {
                    record_checkpoint(&tx, log.last_lsn())?;
                    tx.set_durability(Durability::Immediate).map_err(error)?;
                    log.checkpointed();
                    self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            tx.commit().map_err(error)?;
            Ok(handoff)
        })();
        match result {
            Ok(handoff) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                match (handoff, &self.syncer) {
                    (Some(mut unsynced), Some((syncer, _))) => {
                        unsynced.answers = answers;
                        if let Err(mpsc::SendError(u)) = syncer.send(unsynced) {
                            let e = log_error(std::io::Error::other("the log syncer has stopped"));
                            u.answers.into_iter().for_each(|a| a.fail(&e));
                        }
                        Vec::new()
                    }
                    _ => answers,
                }
            }
            Err(e) => {
                // With a log, the failed batch may be in it though not in
                // the database: reopening replays the log, so that the
                // database is again what a restart would see.
                if matches!(e, StoreError::Unavailable { .. }) || self.log.is_some() {
                    self.shared.broken.store(true, Ordering::Release);
                }
                tracing::warn!(error = %e, ops = answers.len() + batch.len(), "redb idempotency store: write transaction failed");
                answers.into_iter().for_each(|a| a.fail(&e));
                batch.drain(..).for_each(|op| op.fail(&e));
                Vec::new()
            }
        }
    }

    /// On close: a durable commit that covers the log, so the next open
    /// has nothing to replay.
    fn checkpoint_on_close(&mut self) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        if self.shared.broken.load(Ordering::Acquire) {
            return;
        }
        let Some(db) = self.shared.current() else {
            return;
        };
        let result = (|| -> Result<(), StoreError> {
            let mut tx = db.begin_write().map_err(error)?;
            record_checkpoint(&tx, log.last_lsn())?;
            tx.set_durability(Durability::Immediate).map_err(error)?;
            tx.commit().map_err(error)
        })();
        match result {
            Ok(()) => log.checkpointed(),
            // The log still holds every entry: the next open replays them.
            Err(e) => {
                tracing::warn!(error = %e, "redb idempotency store: checkpoint on close failed")
            }
        }
    }

    /// The open database, reopened first if an I/O error broke it.
    fn database(&mut self) -> Result<Arc<Database>, StoreError> {
        if !self.shared.broken.load(Ordering::Acquire) {
            if let Some(db) = self.shared.current() {
                return Ok(db);
            }
        }
        // Take the broken database away from readers, wait until the last
        // of them lets go (its file lock goes with it), then open again.
        let old = self
            .shared
            .db
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(old) = old {
            let weak: Weak<Database> = Arc::downgrade(&old);
            drop(old);
            let since = Instant::now();
            while weak.strong_count() > 0 {
                if since.elapsed() > REOPEN_WAIT {
                    return Err(StoreError::Unavailable {
                        store: "redb",
                        source: "the database is being reopened after an I/O error".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.log = None;
        self.epoch += 1;
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let (db, log) = open_file(&self.shared.path, &self.shared.opening)?;
        let db = Arc::new(db);
        self.log = log;
        *self.shared.db.write().unwrap_or_else(|e| e.into_inner()) = Some(db.clone());
        self.shared.broken.store(false, Ordering::Release);
        self.shared.reopened.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %self.shared.path.display(), "redb idempotency store reopened after an I/O error");
        Ok(db)
    }
}

/// Apply one op inside the batch's transaction. A storage error fails the
/// whole batch (`Err`); a per-op outcome (fence rejected, corrupt record) is
/// that op's answer.
fn apply(tables: &mut Tables<'_>, changes: &mut Changes, op: Op) -> Result<Answer, StoreError> {
    match op {
        Op::Claim {
            key,
            fingerprint,
            now,
            lease,
            ttl,
            reply,
        } => {
            let req = ClaimRequest {
                key: &key,
                fingerprint,
                now,
                lease,
                ttl,
            };
            let old = match read(&tables.0, &key)? {
                Ok(old) => old,
                Err(corrupt) => return Ok(Answer::Claim(reply, Err(corrupt))),
            };
            if let Some(old) = &old {
                if !old.claimable(now) {
                    return Ok(Answer::Claim(reply, Ok(old.outcome_when_held(&req))));
                }
            }
            let new = Record::claimed(old.as_ref(), &req);
            write(tables, changes, &key, old.as_ref(), &new)?;
            Ok(Answer::Claim(
                reply,
                Ok(ClaimOutcome::Claimed { fence: new.fence }),
            ))
        }
        Op::Update {
            key,
            fence,
            change,
            reply,
        } => {
            let old = match read(&tables.0, &key)? {
                Ok(Some(old)) if old.state == State::InProgress && old.fence == fence => old,
                Ok(_) => {
                    return Ok(Answer::Update(
                        reply,
                        Err(StoreError::FenceRejected { fence }),
                    ))
                }
                Err(corrupt) => return Ok(Answer::Update(reply, Err(corrupt))),
            };
            let mut new = old.clone();
            match change {
                Change::Renew { now, lease } => {
                    new.lease_expires_at = now + lease;
                    new.expires_at = new.expires_at.max(new.lease_expires_at);
                }
                Change::Complete { result, now, ttl } => {
                    new.state = State::Completed;
                    new.response = Some(result);
                    new.expires_at = now + ttl;
                }
                Change::Release => {
                    new.state = State::Released;
                    new.response = None;
                }
            }
            write(tables, changes, &key, Some(&old), &new)?;
            Ok(Answer::Update(reply, Ok(())))
        }
        Op::Sweep { now, batch, reply } => {
            // Entries due by `now`, in order. Each names a record that may
            // have expired, or whose end has moved on (then the entry moves
            // with it), or that is already gone.
            let bound = now.as_millis().saturating_add(1);
            let visit = batch.saturating_mul(4).max(batch);
            let due: Vec<(u64, String)> = tables
                .1
                .range(..(bound, ""))
                .map_err(error)?
                .take(visit)
                .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                .collect::<Result<_, _>>()
                .map_err(error)?;
            let mut deleted = 0;
            for (at, key) in &due {
                if deleted == batch {
                    break;
                }
                tables.1.remove((*at, key.as_str())).map_err(error)?;
                changes.index_remove(*at, key);
                let record = match read(&tables.0, key)? {
                    Ok(Some(r)) => r,
                    // Gone, or unreadable (deleted: it can never be used).
                    Ok(None) => continue,
                    Err(_) => {
                        tables.0.remove(key.as_str()).map_err(error)?;
                        changes.remove(key);
                        deleted += 1;
                        continue;
                    }
                };
                if record.expires_at <= now {
                    tables.0.remove(key.as_str()).map_err(error)?;
                    changes.remove(key);
                    deleted += 1;
                } else {
                    let at = record.expires_at.as_millis();
                    tables.1.insert((at, key.as_str()), ()).map_err(error)?;
                    changes.index_put(at, key);
                }
            }
            Ok(Answer::Sweep(reply, Ok(deleted)))
        }
    }
}

/// The record under `key`: the outer error fails the batch, the inner one
/// only this op.
#[allow(clippy::type_complexity)]
fn read(
    records: &redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
) -> Result<Result<Option<Record>, StoreError>, StoreError> {
    match records.get(key).map_err(error)? {
        Some(v) => Ok(Record::decode(v.value()).map(Some).map_err(Into::into)),
        None => Ok(Ok(None)),
    }
}

/// Write `new` over `old`. The expiry index holds, for every record, an
/// entry at or before its retention end; it is written only for a new
/// record. A record whose end moved later (completed, renewed, claimed
/// again) keeps its earlier entry, and the sweep moves the entry when it
/// reaches it, so the writes on the request path touch one table.
fn write(
    tables: &mut Tables<'_>,
    changes: &mut Changes,
    key: &str,
    old: Option<&Record>,
    new: &Record,
) -> Result<(), StoreError> {
    let value = new.encode();
    tables.0.insert(key, value.as_slice()).map_err(error)?;
    changes.put(key, &value);
    if old.is_none() {
        let at = new.expires_at.as_millis();
        tables.1.insert((at, key), ()).map_err(error)?;
        changes.index_put(at, key);
    }
    Ok(())
}
