//! The [`Store`] trait and its implementations.
//!
//! Every store keeps one record per scoped key with the same rules:
//!
//! * **claim** is one atomic operation. It takes the key if it is absent,
//!   past retention, released, or in progress with an expired lease; the new
//!   owner gets a fencing token one larger than the record's last one.
//!   Otherwise it answers `InProgress`, `Completed` or `Mismatch` (different
//!   fingerprint) and changes nothing.
//! * **renew**, **complete** and **release** carry the fence and succeed only
//!   if the record is still in progress under that same fence; otherwise they
//!   fail with [`StoreError::FenceRejected`], so a holder whose lease was
//!   taken over can never overwrite the new owner's record.
//! * A released record keeps its fence (so fences never repeat while the
//!   record lives) and is claimable at once.
//! * Times are absolute [`Timestamp`]s from the layer's clock; server-side
//!   expiry (Redis `PEXPIRE`) is only a garbage-collection backstop.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use bytes::Bytes;
use rebound::Clock;

use crate::record::{ClaimOutcome, ClaimRequest, DecodeError};
use crate::time::Timestamp;

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "redis")]
pub mod redis;

/// A boxed error from a store's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or did not answer in time.
    #[error("{store} store unavailable: {source}")]
    Unavailable {
        /// Which store (`"redis"`, `"postgres"`, ...).
        store: &'static str,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// The fence is stale: the record was taken over, completed, released or
    /// removed since this holder claimed it.
    #[error("fence {fence} was rejected: the claim is no longer held by this request (lease taken over, or record completed, released or expired)")]
    FenceRejected {
        /// The stale fence that was presented.
        fence: u64,
    },
    /// A store was configured wrongly (bad URL, table name, prefix, ...).
    #[error("invalid store configuration `{field}`: {reason}")]
    InvalidConfig {
        /// The setting that was wrong.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A stored record could not be decoded.
    #[error(transparent)]
    Corrupt(#[from] DecodeError),
    /// Any other failure inside the store.
    #[error("{store} store error: {source}")]
    Backend {
        /// Which store.
        store: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Whether this is a stale-fence rejection.
    pub fn is_fence_rejected(&self) -> bool {
        matches!(self, StoreError::FenceRejected { .. })
    }
}

/// Where idempotency records live. See the [module docs](self) for the rules
/// every implementation follows; the crate's conformance suite checks them.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Atomically claim `req.key`, or report who holds it.
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError>;

    /// Extend the lease of an in-progress record held under `fence` to
    /// `now + lease`.
    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError>;

    /// Store `result` for the record held under `fence`, kept until
    /// `now + ttl`. Later claims with the same fingerprint get it back as
    /// [`ClaimOutcome::Completed`].
    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Give up the claim held under `fence` so a retry can run.
    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError>;

    /// Delete up to `batch` records whose retention ended at or before
    /// `now`; returns how many were deleted. Stores that expire records by
    /// themselves (Redis) return `Ok(0)`.
    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        let _ = (now, batch);
        Ok(0)
    }
}

#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        (**self).claim(req).await
    }
    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError> {
        (**self).renew(key, fence, now, lease).await
    }
    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        (**self).complete(key, fence, result, now, ttl).await
    }
    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        (**self).release(key, fence).await
    }
    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        (**self).sweep(now, batch).await
    }
}

/// Run [`Store::sweep`] every `every` on `clock`, in batches of `batch`,
/// until the returned handle is aborted. A full batch sweeps again at once.
///
/// ```no_run
/// # async fn f() {
/// use rebound_idempotency::{spawn_sweeper, MemoryStore};
/// use std::{sync::Arc, time::Duration};
/// let store = Arc::new(MemoryStore::new());
/// let sweeper = spawn_sweeper(store.clone(), rebound::Clock::default(), Duration::from_secs(60), 1000);
/// # sweeper.abort();
/// # }
/// ```
pub fn spawn_sweeper(
    store: Arc<dyn Store>,
    clock: Clock,
    every: Duration,
    batch: usize,
) -> tokio::task::JoinHandle<()> {
    let batch = batch.max(1);
    tokio::spawn(async move {
        loop {
            match store.sweep(Timestamp::now(&clock), batch).await {
                Ok(n) if n >= batch => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(n) => tracing::debug!(deleted = n, "idempotency sweep"),
                Err(e) => tracing::warn!(error = %e, "idempotency sweep failed"),
            }
            clock.timer_after(every).await;
        }
    })
}
