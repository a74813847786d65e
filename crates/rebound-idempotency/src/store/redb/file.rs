//! The database file, its log and its writer thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::log::{log_path, Log, Redo};
use super::writer::{Op, Writer};
use crate::record::{ClaimOutcome, ClaimRequest, Record};
use crate::store::StoreError;

pub(super) const RECORDS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("idempotency_records");
pub(super) const EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("idempotency_expiry");

/// The sequence number of the last log entry the last durable commit
/// covers, under [`CHECKPOINT`].
pub(super) const LOG: TableDefinition<&str, u64> = TableDefinition::new("idempotency_log");
const CHECKPOINT: &str = "checkpoint";

pub(super) type MakeBuilder = dyn Fn() -> redb::Builder + Send + Sync;

/// How to open the file, again after an I/O error.
pub(super) struct Opening {
    pub make_builder: Arc<MakeBuilder>,
    /// The write-ahead log's size; `None`: commits without sync, no log.
    pub log_size: Option<u64>,
}

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
    pub opening: Opening,
    /// The open database; `None` while it is being reopened.
    pub db: RwLock<Option<Arc<Database>>>,
    /// Set after an I/O error: the writer reopens before its next batch.
    pub broken: AtomicBool,
    pub durability: Durability,
    pub commits: AtomicU64,
    pub reopened: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Keys written by batches committed to the database but not yet synced
    /// in the log, with the sequence number of the last such batch: the
    /// read path leaves them to the writer.
    pub pending: Mutex<HashMap<String, (u64, u64)>>,
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

/// A failed write or sync of the log: the store is unavailable until the
/// file is reopened.
pub(super) fn log_error(e: std::io::Error) -> StoreError {
    StoreError::Unavailable {
        store: "redb",
        source: format!("write-ahead log: {e}").into(),
    }
}

/// Record in `tx` that its commit covers the log up to entry `lsn`.
pub(super) fn record_checkpoint(tx: &redb::WriteTransaction, lsn: u64) -> Result<(), StoreError> {
    tx.open_table(LOG)
        .map_err(error)?
        .insert(CHECKPOINT, lsn)
        .map_err(error)?;
    Ok(())
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable {
        store: "redb",
        source: "the redb writer thread has stopped".into(),
    }
}

/// Open (or create) the file and its tables, and replay its log: the
/// changes the log holds after the last checkpoint are committed durably,
/// as the new checkpoint. The log, if commits are to use one.
///
/// A log is replayed even when the store now commits without sync (it was
/// left by a durable one), but then not written to.
pub(super) fn open_file(
    path: &Path,
    opening: &Opening,
) -> Result<(Database, Option<Log>), StoreError> {
    let db = (opening.make_builder)()
        .create(path)
        .map_err(|e| StoreError::Unavailable {
            store: "redb",
            source: format!("cannot open {}: {e}", path.display()).into(),
        })?;
    let mut tx = db.begin_write().map_err(error)?;
    tx.set_durability(Durability::Immediate).map_err(error)?;
    let log_path = log_path(path);
    let log = {
        let mut records = tx.open_table(RECORDS).map_err(error)?;
        let mut expiry = tx.open_table(EXPIRY).map_err(error)?;
        let mut meta = tx.open_table(LOG).map_err(error)?;
        let size = match opening.log_size {
            Some(size) => Some(size),
            None => log_path.exists().then_some(0),
        };
        match size {
            None => None,
            Some(size) => {
                let checkpoint = meta
                    .get(CHECKPOINT)
                    .map_err(error)?
                    .map_or(0, |v| v.value());
                let (log, redo) = Log::open(&log_path, size, checkpoint).map_err(log_error)?;
                for change in redo {
                    match change {
                        Redo::Put(key, value) => {
                            records
                                .insert(key.as_str(), value.as_slice())
                                .map_err(error)?;
                        }
                        Redo::Remove(key) => {
                            records.remove(key.as_str()).map_err(error)?;
                        }
                        Redo::IndexPut(at, key) => {
                            expiry.insert((at, key.as_str()), ()).map_err(error)?;
                        }
                        Redo::IndexRemove(at, key) => {
                            expiry.remove((at, key.as_str())).map_err(error)?;
                        }
                    }
                }
                meta.insert(CHECKPOINT, log.last_lsn()).map_err(error)?;
                opening.log_size.map(|_| log)
            }
        }
    };
    tx.commit().map_err(error)?;
    Ok((db, log))
}

impl DbFile {
    pub(super) fn open(
        path: PathBuf,
        opening: Opening,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let (db, log) = open_file(&path, &opening)?;
        let shared = Arc::new(Shared {
            path,
            opening,
            db: RwLock::new(Some(Arc::new(db))),
            broken: AtomicBool::new(false),
            durability,
            commits: AtomicU64::new(0),
            reopened: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("rebound-idempotency-redb".into())
            .spawn(move || Writer::new(writer_shared, log).run(rx))
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

    pub(super) fn checkpoints(&self) -> u64 {
        self.shared.checkpoints.load(Ordering::Relaxed)
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
        let held = (!rec.claimable(req.now)).then(|| rec.outcome_when_held(req))?;
        // Checked after the read: a batch's keys are pending before it is
        // visible, until it is synced.
        let pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (!pending.contains_key(req.key)).then_some(held)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::record::{ClaimOutcome, ClaimRequest, Fingerprint};
    use crate::store::Store;
    use crate::time::Timestamp;
    use crate::RedbStore;

    /// A key whose last write is not yet synced in the log is not answered
    /// from a read transaction: the claim goes to the writer.
    #[tokio::test]
    async fn the_read_path_leaves_unsynced_keys_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("x.redb")).unwrap();
        let req = ClaimRequest {
            key: "k",
            fingerprint: Fingerprint::of(&[b"a"]),
            now: Timestamp::from_millis(1_000_000),
            lease: Duration::from_secs(5),
            ttl: Duration::from_secs(60),
        };
        let ClaimOutcome::Claimed { fence } = store.claim(req).await.unwrap() else {
            panic!("not claimed")
        };
        store
            .complete(
                "k",
                fence,
                bytes::Bytes::from_static(b"r"),
                req.now,
                req.ttl,
            )
            .await
            .unwrap();
        let file = &store.inner.file;
        assert!(file.shared.pending.lock().unwrap().is_empty(), "synced");
        assert_eq!(
            file.read_claim(&req),
            Some(ClaimOutcome::Completed(bytes::Bytes::from_static(b"r")))
        );
        file.shared
            .pending
            .lock()
            .unwrap()
            .insert("k".to_owned(), (0, u64::MAX));
        assert_eq!(file.read_claim(&req), None);
        // The writer answers it (after a sync).
        assert_eq!(
            store.claim(req).await.unwrap(),
            ClaimOutcome::Completed(bytes::Bytes::from_static(b"r"))
        );
    }
}
