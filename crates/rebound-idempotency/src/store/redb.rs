//! An embedded, durable store on one file, backed by [redb](https://docs.rs/redb).
//!
//! redb has a single writer, so a claim's read-decide-write runs inside one
//! write transaction and is atomic by construction. Claims that only need to
//! report (replays, in-progress, mismatch) are answered from a read
//! transaction and never wait for the writer. All redb work runs on tokio's
//! blocking pool. An index table ordered by expiry lets [`Store::sweep`]
//! delete expired records in batches.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::clock::Timestamp;
use crate::record::{ClaimOutcome, ClaimRequest, Record, State, StoredResponse};
use crate::store::{Store, StoreError};

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency_records");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("idempotency_expiry");

/// Records in a redb database file: survives restarts, needs no server.
///
/// ```
/// use rebound_idempotency::RedbStore;
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbStore::open(dir.path().join("idempotency.redb")).unwrap();
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    durability: Durability,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend {
        store: "redb",
        source: Box::new(e.into()),
    }
}

impl RedbStore {
    /// Open (or create) the database file at `path` and its tables.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|e| StoreError::Backend {
            store: "redb",
            source: format!("cannot open {}: {e}", path.display()).into(),
        })?;
        Self::from_database(db)
    }

    /// Use an already opened database (creating the tables if missing).
    pub fn from_database(db: Database) -> Result<Self, StoreError> {
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(RECORDS).map_err(backend)?;
        tx.open_table(EXPIRY).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(RedbStore {
            db: Arc::new(db),
            durability: Durability::Immediate,
        })
    }

    /// How completions are made durable. Default: [`Durability::Immediate`]
    /// (a stored response is on disk when the call returns).
    ///
    /// Claims, renewals, releases and sweeps are committed with
    /// [`Durability::None`] (no fsync; made durable by the next completion).
    /// Losing one in a crash only frees a key whose holder died with the
    /// process — the same outcome as its lease running out, just sooner —
    /// and it halves the fsyncs on the first-time path.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database, Durability) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let durability = self.durability;
        tokio::task::spawn_blocking(move || f(&db, durability))
            .await
            .map_err(|e| StoreError::Backend {
                store: "redb",
                source: Box::new(e),
            })?
    }

    /// Apply `f` to the record held under `fence`, in one write transaction.
    async fn update_held(
        &self,
        key: &str,
        fence: u64,
        durable: bool,
        f: impl FnOnce(&mut Record) + Send + 'static,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.blocking(move |db, durability| {
            let durability = if durable {
                durability
            } else {
                Durability::None
            };
            let mut tx = db.begin_write().map_err(backend)?;
            tx.set_durability(durability)
                .map_err(|e| StoreError::Backend {
                    store: "redb",
                    source: Box::new(e),
                })?;
            {
                let mut records = tx.open_table(RECORDS).map_err(backend)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
                let old = match records.get(key.as_str()).map_err(backend)? {
                    Some(v) => Record::decode(v.value())?,
                    None => return Err(StoreError::FenceRejected { fence }),
                };
                if old.state != State::InProgress || old.fence != fence {
                    return Err(StoreError::FenceRejected { fence });
                }
                let mut new = old.clone();
                f(&mut new);
                write(&mut records, &mut expiry, &key, Some(&old), &new)?;
            }
            tx.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }
}

fn write(
    records: &mut redb::Table<'_, &'static str, &'static [u8]>,
    expiry: &mut redb::Table<'_, (u64, &'static str), ()>,
    key: &str,
    old: Option<&Record>,
    new: &Record,
) -> Result<(), StoreError> {
    records
        .insert(key, new.encode().as_slice())
        .map_err(backend)?;
    let new_at = new.expires_at.as_millis();
    if let Some(old) = old {
        if old.expires_at.as_millis() == new_at {
            return Ok(());
        }
        expiry
            .remove((old.expires_at.as_millis(), key))
            .map_err(backend)?;
    }
    expiry.insert((new_at, key), ()).map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Store for RedbStore {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        let key = req.key.to_owned();
        let (fingerprint, now, lease, ttl) = (req.fingerprint, req.now, req.lease, req.ttl);
        self.blocking(move |db, _| {
            let req = ClaimRequest {
                key: &key,
                fingerprint,
                now,
                lease,
                ttl,
            };
            // Fast path: a read transaction answers replays and duplicates
            // without queueing behind the single writer.
            {
                let tx = db.begin_read().map_err(backend)?;
                let records = tx.open_table(RECORDS).map_err(backend)?;
                if let Some(v) = records.get(key.as_str()).map_err(backend)? {
                    let rec = Record::decode(v.value())?;
                    if !rec.claimable(now) {
                        return rec.outcome_when_held(&req);
                    }
                }
            }
            let mut tx = db.begin_write().map_err(backend)?;
            tx.set_durability(Durability::None)
                .map_err(|e| StoreError::Backend {
                    store: "redb",
                    source: Box::new(e),
                })?;
            let fence = {
                let mut records = tx.open_table(RECORDS).map_err(backend)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
                let old = match records.get(key.as_str()).map_err(backend)? {
                    Some(v) => Some(Record::decode(v.value())?),
                    None => None,
                };
                if let Some(old) = &old {
                    if !old.claimable(now) {
                        // Someone claimed between our read and our write.
                        return old.outcome_when_held(&req);
                    }
                }
                let new = Record::claimed(old.as_ref(), &req);
                write(&mut records, &mut expiry, &key, old.as_ref(), &new)?;
                new.fence
            };
            tx.commit().map_err(backend)?;
            Ok(ClaimOutcome::Claimed { fence })
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
        self.update_held(key, fence, false, move |r| {
            r.lease_expires_at = now + lease;
            r.expires_at = r.expires_at.max(r.lease_expires_at);
        })
        .await
    }

    async fn complete(
        &self,
        key: &str,
        fence: u64,
        response: &StoredResponse,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let encoded = Bytes::from(response.encode());
        self.update_held(key, fence, true, move |r| {
            r.state = State::Completed;
            r.response = Some(encoded);
            r.expires_at = now + ttl;
        })
        .await
    }

    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        self.update_held(key, fence, false, |r| {
            r.state = State::Released;
            r.response = None;
        })
        .await
    }

    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        self.blocking(move |db, _| {
            let mut tx = db.begin_write().map_err(backend)?;
            tx.set_durability(Durability::None)
                .map_err(|e| StoreError::Backend {
                    store: "redb",
                    source: Box::new(e),
                })?;
            let deleted = {
                let mut records = tx.open_table(RECORDS).map_err(backend)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
                let bound = now.as_millis().saturating_add(1);
                let due: Vec<(u64, String)> = expiry
                    .range(..(bound, ""))
                    .map_err(backend)?
                    .take(batch)
                    .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                for (at, key) in &due {
                    expiry.remove((*at, key.as_str())).map_err(backend)?;
                    records.remove(key.as_str()).map_err(backend)?;
                }
                due.len()
            };
            tx.commit().map_err(backend)?;
            Ok(deleted)
        })
        .await
    }
}
