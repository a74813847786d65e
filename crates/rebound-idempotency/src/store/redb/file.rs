//! The database file and its writer thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use tokio::sync::oneshot;

use super::writer::{Op, Writer};
use crate::record::{ClaimOutcome, ClaimRequest, Record};
use crate::store::StoreError;

pub(super) const RECORDS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("idempotency_records");
pub(super) const EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("idempotency_expiry");

pub(super) type MakeBuilder = dyn Fn() -> redb::Builder + Send + Sync;

/// One file: its database, shared with the writer thread, and the queue to
/// that thread. Dropping it stops the thread and closes the file.
pub(super) struct DbFile {
    shared: Arc<Shared>,
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

/// What the writer thread and the readers share.
pub(super) struct Shared {
    pub path: PathBuf,
    pub make_builder: Arc<MakeBuilder>,
    /// The open database; `None` while it is being reopened.
    pub db: RwLock<Option<Arc<Database>>>,
    /// Set after an I/O error: the writer reopens before its next batch.
    pub broken: AtomicBool,
    pub durability: Durability,
    pub commits: AtomicU64,
    pub reopened: AtomicU64,
}

/// Whether a redb error means the file or disk failed: the database must be
/// reopened, and the store counts as unavailable.
fn is_io(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
}

pub(super) fn error(e: impl Into<redb::Error>) -> StoreError {
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

/// Open (or create) the file and its tables.
pub(super) fn open_file(path: &Path, make_builder: &MakeBuilder) -> Result<Database, StoreError> {
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

impl DbFile {
    pub(super) fn open(
        path: PathBuf,
        make_builder: Arc<MakeBuilder>,
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
        Ok(DbFile {
            shared,
            ops: Some(tx),
            writer: Some(writer),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.shared.path
    }

    pub(super) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    pub(super) fn reopened(&self) -> u64 {
        self.shared.reopened.load(Ordering::Relaxed)
    }

    /// Queue a write and wait for its answer (after its batch commits).
    pub(super) async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let ops = self.ops.as_ref().ok_or_else(writer_gone)?;
        ops.send(make(reply)).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Answer a claim from a read transaction if the key is held (completed,
    /// in progress, or a mismatch); `None` if the writer must decide (or the
    /// read failed: the writer reopens a broken file).
    pub(super) fn read_claim(&self, req: &ClaimRequest<'_>) -> Option<ClaimOutcome> {
        let db = self.shared.current()?;
        let tx = db.begin_read().ok()?;
        let records = tx.open_table(RECORDS).ok()?;
        let value = records.get(req.key).ok()??;
        let rec = Record::decode(value.value()).ok()?;
        (!rec.claimable(req.now)).then(|| rec.outcome_when_held(req))
    }
}

impl Drop for DbFile {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop; joining it makes sure
        // the file is closed (and its lock released) when the store is gone.
        self.ops.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Shared {
    pub(super) fn current(&self) -> Option<Arc<Database>> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
