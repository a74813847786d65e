//! An in-process store: a map behind a mutex. For tests and single-process
//! services; records are lost when the process exits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::record::{ClaimOutcome, ClaimRequest, Record, State};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// Records in a `HashMap` in this process.
///
/// ```
/// use rebound_idempotency::{MemoryStore, IdempotencyLayer};
/// let layer = IdempotencyLayer::builder(MemoryStore::new()).single_tenant().build().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, Record>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records (of any state) are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        // A panic while holding this lock cannot leave a record half-written
        // (every update is a single assignment), so poisoning is ignored.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_held<T>(
        &self,
        key: &str,
        fence: u64,
        f: impl FnOnce(&mut Record) -> T,
    ) -> Result<T, StoreError> {
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(r) if r.state == State::InProgress && r.fence == fence => Ok(f(r)),
            _ => Err(StoreError::FenceRejected { fence }),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        let mut map = self.lock();
        match map.get_mut(req.key) {
            Some(rec) if !rec.claimable(req.now) => Ok(rec.outcome_when_held(&req)),
            Some(rec) => {
                *rec = Record::claimed(Some(rec), &req);
                Ok(ClaimOutcome::Claimed { fence: rec.fence })
            }
            None => {
                let rec = Record::claimed(None, &req);
                let fence = rec.fence;
                map.insert(req.key.to_owned(), rec);
                Ok(ClaimOutcome::Claimed { fence })
            }
        }
    }

    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.with_held(key, fence, |r| {
            r.lease_expires_at = now + lease;
            r.expires_at = r.expires_at.max(r.lease_expires_at);
        })
    }

    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.with_held(key, fence, |r| {
            r.state = State::Completed;
            r.response = Some(result);
            r.expires_at = now + ttl;
        })
    }

    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        self.with_held(key, fence, |r| {
            r.state = State::Released;
            r.response = None;
        })
    }

    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        let mut map = self.lock();
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(k, _)| k.clone())
            .take(batch)
            .collect();
        for k in &expired {
            map.remove(k);
        }
        Ok(expired.len())
    }
}
