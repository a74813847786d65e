//! An embedded, durable store on one file, backed by
//! [redb](https://docs.rs/redb).
//!
//! **Durable.** Every claim, completion, renewal and release is on disk
//! when the call returns, and survives the process being killed (`kill -9`)
//! or the machine losing power. A restarted process sees the dead holder's
//! claim, refuses duplicates until its lease runs out, then hands the key
//! over with a larger fencing token.
//!
//! **Group commit.** One writer thread takes every write waiting in its
//! queue (up to 512) into one transaction, so concurrent claims and
//! completions share one sync. Under load the queue fills while the
//! previous commit runs, so the batches grow with the load. A first-time
//! request still waits for two commits (its claim before the handler runs,
//! its response before the client gets it), so with `n` requests in flight
//! a store serves at most `n / (2 × commit time)` of them a second.
//!
//! **Write-ahead log.** A durable redb commit writes the B-tree pages it
//! changed, its allocator records and its header wherever they lie in the
//! file, then syncs. Instead, what a batch changed is appended to a log
//! beside the database (`<file>.log`, a fixed size, zero-filled once) with
//! one sequential write, the batch's transaction commits without a sync, and
//! a second thread syncs the log (`fdatasync`) while the writer goes on with
//! the next batch: the B-tree work of one batch overlaps the sync of the
//! ones before, and one sync covers every batch written meanwhile. A batch is
//! answered only once a sync covering it has returned, and until then the
//! read path leaves its keys to the writer: nobody sees a write before it is
//! durable.
//! When the log is full, a batch commits durably in redb (a checkpoint) and
//! the log starts over, so neither file grows with the traffic. Opening the
//! file applies the log's entries after the last checkpoint again. The log's
//! size is [`RedbOptions::log_size`].
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
//! reopens the file (replaying its log) before the next batch; once the
//! fault is lifted, requests succeed again without a restart. A write that
//! failed this way may still have reached the log, and then takes effect
//! when the file is reopened: a claim its caller was refused is then held
//! until its lease runs out (never run twice).
//!
//! An index table ordered by expiry lets [`Store::sweep`] delete expired
//! records in batches.

mod file;
mod log;
mod sync;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::Durability;

use self::file::{DbFile, MakeBuilder, Opening};
use self::writer::{Change, Op};
use crate::record::{ClaimOutcome, ClaimRequest};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

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
    file: DbFile,
    durability: Durability,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.file.path())
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

/// How to open a [`RedbStore`]; every setter states its default.
///
/// ```
/// use rebound_idempotency::RedbStore;
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbStore::options()
///     .redb_builder(|| {
///         let mut b = redb::Builder::new();
///         b.set_cache_size(64 * 1024 * 1024);
///         b
///     })
///     .open(dir.path().join("idempotency.redb"))
///     .unwrap();
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct RedbOptions {
    durability: Durability,
    make_builder: Arc<MakeBuilder>,
    log_size: u64,
}

/// The default size of the write-ahead log.
const LOG_SIZE: u64 = 8 << 20;

impl std::fmt::Debug for RedbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbOptions")
            .field("durability", &self.durability)
            .field("log_size", &self.log_size)
            .finish_non_exhaustive()
    }
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            durability: Durability::Immediate,
            make_builder: Arc::new(redb::Builder::new),
            log_size: LOG_SIZE,
        }
    }
}

impl RedbOptions {
    /// Commit **without fsync** ([`Durability::None`]).
    ///
    /// Much faster, but a crash of the process or the machine may lose
    /// recent claims (a retry then runs a handler that had already started,
    /// with the same fencing token) and completions (a retry runs a
    /// completed request again). Only for work that is safe to run twice.
    /// No write-ahead log is written. Default: every batch is synced.
    pub fn without_fsync(mut self) -> Self {
        self.durability = Durability::None;
        self
    }

    /// redb's own settings (cache size, page size...): `make_builder` is
    /// called for every file, and again whenever one is reopened after an
    /// I/O error. Default: [`redb::Builder::new`].
    pub fn redb_builder(
        mut self,
        make_builder: impl Fn() -> redb::Builder + Send + Sync + 'static,
    ) -> Self {
        self.make_builder = Arc::new(make_builder);
        self
    }

    /// The size of the write-ahead log beside the database file (see the
    /// [module docs](crate::store::redb)), in bytes: written in full (with
    /// zeros) when the log is created, never grown. A larger log means fewer
    /// checkpoints (durable redb commits, each slower than a log append);
    /// a batch larger than the log is committed as a checkpoint. An existing
    /// larger log keeps its size. `0`: no log, every batch is a durable
    /// redb commit. Default: 8 MiB.
    pub fn log_size(mut self, bytes: u64) -> Self {
        self.log_size = bytes;
        self
    }

    /// Open (or create) the store's file at `path`, and its log at `path`
    /// with `.log` appended.
    pub fn open(self, path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let opening = Opening {
            make_builder: self.make_builder,
            log_size: (matches!(self.durability, Durability::Immediate) && self.log_size > 0)
                .then_some(self.log_size),
        };
        let file = DbFile::open(path.as_ref().to_owned(), opening, self.durability)?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                file,
                durability: self.durability,
            }),
        })
    }
}

impl RedbStore {
    /// Open (or create) the database file at `path`, fsyncing every commit.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        RedbOptions::default().open(path)
    }

    /// Options for opening a store: durability, redb settings.
    pub fn options() -> RedbOptions {
        RedbOptions::default()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.inner.file.path()
    }

    /// How many write transactions were committed (each holds a batch of
    /// claims, completions, renewals and releases, and costs one sync).
    pub fn commits(&self) -> u64 {
        self.inner.file.commits()
    }

    /// How many of those commits were checkpoints: durable redb commits
    /// made because the write-ahead log was full.
    pub fn checkpoints(&self) -> u64 {
        self.inner.file.checkpoints()
    }

    /// How many times the file was reopened after an I/O error.
    pub fn reopened(&self) -> u64 {
        self.inner.file.reopened()
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        // Replays and duplicates: answered from a read transaction. A read
        // that fails (a broken file) falls through to the writer, which
        // reopens it.
        let file = &self.inner.file;
        if let Some(held) = file.read_claim(&req) {
            return Ok(held);
        }
        file.send(|reply| Op::Claim {
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
        self.inner
            .file
            .send(|reply| Op::Update {
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
        self.inner
            .file
            .send(|reply| Op::Update {
                key: key.to_owned(),
                fence,
                change: Change::Complete { result, now, ttl },
                reply,
            })
            .await
    }

    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        self.inner
            .file
            .send(|reply| Op::Update {
                key: key.to_owned(),
                fence,
                change: Change::Release,
                reply,
            })
            .await
    }

    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        self.inner
            .file
            .send(|reply| Op::Sweep {
                now,
                batch: batch.max(1),
                reply,
            })
            .await
    }
}
