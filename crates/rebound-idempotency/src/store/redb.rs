//! An embedded, durable store on one file, backed by [redb](https://docs.rs/redb).
//!
//! **Durable.** Every claim, completion, renewal and release is committed
//! with [`Durability::Immediate`]: when the call returns, it is on disk, and
//! survives the process being killed (`kill -9`) or the machine losing power.
//! A restarted process sees the dead holder's claim, refuses duplicates
//! until its lease runs out, then hands the key over with a larger fencing
//! token.
//!
//! **Group commit.** redb has one writer and an fsync per commit. So that
//! durability stays cheap, one writer thread takes every write waiting in
//! its queue (up to 512) into one transaction and commits them together:
//! concurrent claims and completions share one fsync. Under load the queue
//! fills while the previous commit runs, so the batches grow with the load.
//!
//! **Reads do not wait for the writer.** A claim first looks the key up in a
//! read transaction, on the calling task; replays, duplicates in progress
//! and mismatches are answered from there. Only a claim that may take the
//! key goes to the writer, which reads the record again inside its
//! transaction, so the claim is atomic.
//!
//! **Recovers from I/O errors.** After an I/O error (disk full, a file-size
//! limit) redb refuses every further transaction until the database is
//! reopened. This store then fails the batch (the layer answers 503), and
//! reopens the file before the next batch; once the fault is lifted,
//! requests succeed again without a restart.
//!
//! An index table ordered by expiry lets [`Store::sweep`] delete expired
//! records in batches.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::record::{ClaimOutcome, ClaimRequest, Fingerprint, Record, State};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency_records");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("idempotency_expiry");

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// How long a reopen waits for readers still holding the old database.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

type MakeBuilder = dyn Fn() -> redb::Builder + Send + Sync;

/// Records in a redb database file: durable across restarts and crashes,
/// needs no server.
///
/// ```
/// use rebound_idempotency::RedbStore;
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbStore::open(dir.path().join("idempotency.redb")).unwrap();
/// # let _ = store;
/// ```
///
/// Clones share the file and its writer thread; the file is closed when the
/// last clone is dropped.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

/// What the writer thread and the readers share.
struct Shared {
    path: PathBuf,
    make_builder: Box<MakeBuilder>,
    /// The open database; `None` while it is being reopened.
    db: RwLock<Option<Arc<Database>>>,
    /// Set after an I/O error: the writer reopens before its next batch.
    broken: AtomicBool,
    durability: Durability,
    commits: AtomicU64,
    reopened: AtomicU64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.shared.path)
            .field("durability", &self.inner.shared.durability)
            .finish_non_exhaustive()
    }
}

/// Whether a redb error means the file or disk failed: the database must be
/// reopened, and the store counts as unavailable.
fn is_io(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
}

fn error(e: impl Into<redb::Error>) -> StoreError {
    let e = e.into();
    if is_io(&e) {
        StoreError::Unavailable {
            store: "redb",
            source: Box::new(e),
        }
    } else {
        StoreError::Backend {
            store: "redb",
            source: Box::new(e),
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable {
        store: "redb",
        source: "the redb writer thread has stopped".into(),
    }
}

impl RedbStore {
    /// Open (or create) the database file at `path` and its tables, with
    /// redb's default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, redb::Builder::new)
    }

    /// Open (or create) the database at `path` with the settings of the
    /// [`redb::Builder`] that `make_builder` returns (cache size, page
    /// size...). It is called again whenever the file is reopened after an
    /// I/O error.
    ///
    /// ```
    /// use rebound_idempotency::RedbStore;
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = RedbStore::open_with(dir.path().join("idem.redb"), || {
    ///     let mut b = redb::Builder::new();
    ///     b.set_cache_size(64 * 1024 * 1024);
    ///     b
    /// })
    /// .unwrap();
    /// # let _ = store;
    /// ```
    pub fn open_with(
        path: impl AsRef<Path>,
        make_builder: impl Fn() -> redb::Builder + Send + Sync + 'static,
    ) -> Result<Self, StoreError> {
        Self::open_inner(
            path.as_ref().to_owned(),
            Box::new(make_builder),
            Durability::Immediate,
        )
    }

    /// Open (or create) the database at `path`, committing **without
    /// fsync** ([`Durability::None`]).
    ///
    /// Much faster, but a crash of the process or the machine may lose
    /// recent claims (a retry then runs a handler that had already started,
    /// with the same fencing token) and completions (a retry runs a
    /// completed request again). Only for work that is safe to run twice;
    /// [`open`](Self::open) is durable.
    pub fn open_without_fsync(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_inner(
            path.as_ref().to_owned(),
            Box::new(redb::Builder::new),
            Durability::None,
        )
    }

    fn open_inner(
        path: PathBuf,
        make_builder: Box<MakeBuilder>,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let db = open_file(&path, &*make_builder)?;
        let shared = Arc::new(Shared {
            path,
            make_builder,
            db: RwLock::new(Some(Arc::new(db))),
            broken: AtomicBool::new(false),
            durability,
            commits: AtomicU64::new(0),
            reopened: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("rebound-idempotency-redb".into())
            .spawn(move || Writer::new(writer_shared).run(rx))
            .map_err(|e| StoreError::Backend {
                store: "redb",
                source: Box::new(e),
            })?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                shared,
                ops: Some(tx),
                writer: Some(writer),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// How many write transactions were committed (each holds a batch of
    /// claims, completions, renewals and releases, and costs one fsync).
    pub fn commits(&self) -> u64 {
        self.inner.shared.commits.load(Ordering::Relaxed)
    }

    /// How many times the file was reopened after an I/O error.
    pub fn reopened(&self) -> u64 {
        self.inner.shared.reopened.load(Ordering::Relaxed)
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let ops = self.inner.ops.as_ref().ok_or_else(writer_gone)?;
        ops.send(make(reply)).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Answer a claim from a read transaction if the key is held (completed,
    /// in progress, or a mismatch); `None` if the writer must decide.
    fn read_claim(&self, req: &ClaimRequest<'_>) -> Option<ClaimOutcome> {
        let db = self.inner.shared.current()?;
        let tx = db.begin_read().ok()?;
        let records = match tx.open_table(RECORDS) {
            Ok(t) => t,
            Err(_) => return None,
        };
        let value = records.get(req.key).ok()??;
        let rec = Record::decode(value.value()).ok()?;
        (!rec.claimable(req.now)).then(|| rec.outcome_when_held(req))
    }
}

impl Inner {
    fn stop(&mut self) {
        // Closing the channel ends the writer's loop; joining it makes sure
        // the file is closed (and its lock released) when the store is gone.
        self.ops.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn current(&self) -> Option<Arc<Database>> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn open_file(path: &Path, make_builder: &MakeBuilder) -> Result<Database, StoreError> {
    let db = make_builder()
        .create(path)
        .map_err(|e| StoreError::Unavailable {
            store: "redb",
            source: format!("cannot open {}: {e}", path.display()).into(),
        })?;
    let mut tx = db.begin_write().map_err(error)?;
    tx.set_durability(Durability::Immediate).map_err(error)?;
    tx.open_table(RECORDS).map_err(error)?;
    tx.open_table(EXPIRY).map_err(error)?;
    tx.commit().map_err(error)?;
    Ok(db)
}

/// A write waiting for the writer thread.
enum Op {
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
enum Change {
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
enum Answer {
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
    fn send(self) {
        // A caller that gave up waiting has dropped its receiver; its write
        // is committed all the same.
        match self {
            Answer::Claim(tx, r) => drop(tx.send(r)),
            Answer::Update(tx, r) => drop(tx.send(r)),
            Answer::Sweep(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self, e: &StoreError) {
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

struct Writer {
    shared: Arc<Shared>,
}

type Tables<'t> = (
    redb::Table<'t, &'static str, &'static [u8]>,
    redb::Table<'t, (u64, &'static str), ()>,
);

impl Writer {
    fn new(shared: Arc<Shared>) -> Self {
        Writer { shared }
    }

    fn run(self, ops: mpsc::Receiver<Op>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = ops.recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
    }

    /// Apply every op of `batch` in one write transaction and commit it;
    /// then answer each op. A failed transaction fails every op in it.
    fn commit(&self, batch: &mut Vec<Op>) {
        let db = match self.database() {
            Ok(db) => db,
            Err(e) => {
                batch.drain(..).for_each(|op| op.fail(&e));
                return;
            }
        };
        let mut answers = Vec::with_capacity(batch.len());
        let result = (|| -> Result<(), StoreError> {
            let mut tx = db.begin_write().map_err(error)?;
            tx.set_durability(self.shared.durability).map_err(error)?;
            {
                let mut tables = (
                    tx.open_table(RECORDS).map_err(error)?,
                    tx.open_table(EXPIRY).map_err(error)?,
                );
                for op in batch.drain(..) {
                    answers.push(apply(&mut tables, op)?);
                }
            }
            tx.commit().map_err(error)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                answers.into_iter().for_each(Answer::send);
            }
            Err(e) => {
                if matches!(e, StoreError::Unavailable { .. }) {
                    self.shared.broken.store(true, Ordering::Release);
                }
                tracing::warn!(error = %e, ops = answers.len() + batch.len(), "redb idempotency store: write transaction failed");
                answers.into_iter().for_each(|a| a.fail(&e));
                batch.drain(..).for_each(|op| op.fail(&e));
            }
        }
    }

    /// The open database, reopened first if an I/O error broke it.
    fn database(&self) -> Result<Arc<Database>, StoreError> {
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
        let db = Arc::new(open_file(&self.shared.path, &*self.shared.make_builder)?);
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
fn apply(tables: &mut Tables<'_>, op: Op) -> Result<Answer, StoreError> {
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
            write(tables, &key, old.as_ref(), &new)?;
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
            write(tables, &key, Some(&old), &new)?;
            Ok(Answer::Update(reply, Ok(())))
        }
        Op::Sweep { now, batch, reply } => {
            let bound = now.as_millis().saturating_add(1);
            let due: Vec<(u64, String)> = tables
                .1
                .range(..(bound, ""))
                .map_err(error)?
                .take(batch)
                .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                .collect::<Result<_, _>>()
                .map_err(error)?;
            for (at, key) in &due {
                tables.1.remove((*at, key.as_str())).map_err(error)?;
                tables.0.remove(key.as_str()).map_err(error)?;
            }
            Ok(Answer::Sweep(reply, Ok(due.len())))
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

fn write(
    tables: &mut Tables<'_>,
    key: &str,
    old: Option<&Record>,
    new: &Record,
) -> Result<(), StoreError> {
    tables
        .0
        .insert(key, new.encode().as_slice())
        .map_err(error)?;
    let new_at = new.expires_at.as_millis();
    if let Some(old) = old {
        if old.expires_at.as_millis() == new_at {
            return Ok(());
        }
        tables
            .1
            .remove((old.expires_at.as_millis(), key))
            .map_err(error)?;
    }
    tables.1.insert((new_at, key), ()).map_err(error)?;
    Ok(())
}

#[async_trait]
impl Store for RedbStore {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        // Replays and duplicates: answered from a read transaction. A read
        // that fails (a broken file) falls through to the writer, which
        // reopens it.
        if let Some(held) = self.read_claim(&req) {
            return Ok(held);
        }
        self.send(|reply| Op::Claim {
            key: req.key.to_owned(),
            fingerprint: req.fingerprint,
            now: req.now,
            lease: req.lease,
            ttl: req.ttl,
            reply,
        })
        .await
    }

    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.send(|reply| Op::Update {
            key: key.to_owned(),
            fence,
            change: Change::Renew { now, lease },
            reply,
        })
        .await
    }

    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.send(|reply| Op::Update {
            key: key.to_owned(),
            fence,
            change: Change::Complete { result, now, ttl },
            reply,
        })
        .await
    }

    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        self.send(|reply| Op::Update {
            key: key.to_owned(),
            fence,
            change: Change::Release,
            reply,
        })
        .await
    }

    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        self.send(|reply| Op::Sweep {
            now,
            batch: batch.max(1),
            reply,
        })
        .await
    }
}
