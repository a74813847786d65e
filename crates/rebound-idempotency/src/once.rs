//! Idempotency beyond HTTP: run a piece of work once per `(scope, key)`, on
//! the same stores, leases and fencing as the HTTP layer.
//!
//! Message consumers and background jobs see the same message more than
//! once (at-least-once delivery, a redelivered job after a crash). With
//! [`Once`], the work for one message runs once; a repeat gets the stored
//! result back instead of running again:
//!
//! ```
//! use rebound_idempotency::once::{Once, OnceError, Ran};
//! use rebound_idempotency::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let once = Once::builder(MemoryStore::new()).name("payments").build().unwrap();
//! let message = br#"{"order":"o-123","amount":4200}"#;
//!
//! let charge = |ctx: rebound_idempotency::once::OnceContext| async move {
//!     // ... charge the card; ctx.previous_attempts() > 0 means an earlier
//!     // attempt started and did not finish (check for partial work).
//!     Ok::<_, std::io::Error>(format!("charge ch_1 (fence {})", ctx.fence()))
//! };
//! let first = once.run("orders", "o-123", message, charge).await.unwrap();
//! assert_eq!(first, Ran::First("charge ch_1 (fence 1)".to_string()));
//!
//! // The same message delivered again: the stored result, no second charge.
//! let again = once.run("orders", "o-123", message, charge).await.unwrap();
//! assert_eq!(again, Ran::Replayed("charge ch_1 (fence 1)".to_string()));
//!
//! // The same key with another payload is refused.
//! let other = once.run("orders", "o-123", b"{}", charge).await;
//! assert!(matches!(other, Err(OnceError::Mismatch)));
//! # }
//! ```
//!
//! # What it guarantees
//!
//! * **One run at a time, one result.** [`Once::run`] claims `(scope, key)`
//!   atomically. While a run holds it, other runs get
//!   [`OnceError::InProgress`] (with the time left on the lease; a consumer
//!   typically redelivers the message later). Once a run completes, every
//!   later run with the same payload gets [`Ran::Replayed`] with the stored
//!   value, for the retention time (`ttl`, 24 h by default).
//! * **Failures run again.** If the work returns an error (or panics, or its
//!   future is dropped under [`Once::run`]), the claim is released and the
//!   next delivery runs it again, told by
//!   [`OnceContext::previous_attempts`] that an earlier attempt started.
//! * **Crashes run again after the lease.** If the process dies mid-work,
//!   the key is refused until the lease (30 s by default, renewed while the
//!   work runs) runs out, then the next delivery takes it over with a larger
//!   [fencing token](OnceContext::fence): a late completion of the dead run
//!   can never overwrite the new one. Pass the token to downstream writes
//!   that can check it.
//! * **Payload fingerprint.** The payload bytes are hashed (SHA-256); a
//!   repeat with another payload is [`OnceError::Mismatch`], never the
//!   other payload's result.
//! * **Storing the result.** Values are stored as JSON (`serde`). If the
//!   store fails while storing, the caller still gets [`Ran::First`] and
//!   the write is retried in the background (the lease renewed meanwhile)
//!   for [`complete_retry_for`](OnceBuilder::complete_retry_for).
//!
//! Keys are hashed with the scope, so `Once` can share a store with the
//! HTTP layer; records of either never meet.
//!
//! # Metrics
//!
//! Like the layer: `idempotency_requests_total{dependency, outcome}` per
//! run (`stored`, `replayed`, `in_progress`, `mismatch`, `released`,
//! `store_unavailable`, `fence_rejected`, `completion_retrying`,
//! `completion_abandoned`), `idempotency_key_reused_total` for repeats, and
//! `idempotency_store_errors_total{dependency, operation}`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use rebound::{Clock, ConfigError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::claim::{ClaimSettings, Completion, Held, LateCompletion, LeaseOptions, ReleaseOnDrop};
use crate::detach::Detach;
use crate::event::RequestOutcome;
use crate::record::{hex, ClaimOutcome, ClaimRequest, Fingerprint};
use crate::store::{Store, StoreError};

const COMPONENT: &str = "once";
/// The first byte of a stored value: JSON.
const FORMAT_JSON: u8 = b'J';

/// Runs work once per `(scope, key)`. Cheap to clone; clones share the
/// store and settings. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Once {
    settings: Arc<ClaimSettings>,
}

/// Builds a [`Once`]; every setter states its default.
///
/// ```
/// use rebound_idempotency::{once::Once, MemoryStore};
/// use std::time::Duration;
/// let once = Once::builder(MemoryStore::new())
///     .name("emails")
///     .lease(Duration::from_secs(60))
///     .ttl(Duration::from_secs(7 * 24 * 3600))
///     .build()
///     .unwrap();
/// # let _ = once;
/// let bad = Once::builder(MemoryStore::new()).ttl(Duration::from_secs(1)).build();
/// assert_eq!(bad.unwrap_err().field(), "ttl");
/// ```
pub struct OnceBuilder {
    store: Arc<dyn Store>,
    clock: Clock,
    name: String,
    lease: LeaseOptions,
}

impl std::fmt::Debug for OnceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceBuilder")
            .field("store", &self.store)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl OnceBuilder {
    /// The clock for leases and retention. Default: [`Clock::default()`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The `dependency` label of metrics, and the name in logs. Default:
    /// `"once"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long a claim holds before another run may take it over if the
    /// holder stops renewing (crashed). Default: 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease.lease = lease;
        self
    }

    /// How often the lease is renewed while the work runs; `None` turns
    /// renewal off (then the work must finish within the lease). Default: a
    /// third of the lease.
    pub fn renew_every(mut self, every: Option<Duration>) -> Self {
        self.lease.renew_every = Some(every);
        self
    }

    /// How long a result is kept and replayed. Default: 24 h.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.lease.ttl = ttl;
        self
    }

    /// How long storing a result is retried in the background when the
    /// store fails (the lease renewed meanwhile). Default: 2 minutes.
    pub fn complete_retry_for(mut self, how_long: Duration) -> Self {
        self.lease.complete_retry_for = how_long;
        self
    }

    /// Validate and build.
    pub fn build(self) -> Result<Once, ConfigError> {
        let settings =
            ClaimSettings::build(COMPONENT, self.store, self.clock, &self.name, self.lease)?;
        Ok(Once {
            settings: Arc::new(settings),
        })
    }
}

/// What a run was given: its key's fencing token and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnceContext {
    fence: u64,
}

impl OnceContext {
    /// The fencing token of this claim: larger than every earlier claim's
    /// on the same key. Downstream writes that record it can refuse a
    /// smaller one (a run whose lease was taken over).
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// How many earlier claims of this key are on record: zero on a first
    /// run; more when an earlier run failed, was cancelled, or crashed (it
    /// may have done part of the work), or its result expired.
    pub fn previous_attempts(&self) -> u64 {
        self.fence.saturating_sub(1)
    }
}

/// A successful [`Once::run`]: the value this run produced, or the one a
/// previous run stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran<T> {
    /// This run did the work.
    First(T),
    /// An earlier run did the work; this is its stored value.
    Replayed(T),
}

impl<T> Ran<T> {
    /// The value, whoever produced it.
    pub fn into_inner(self) -> T {
        match self {
            Ran::First(v) | Ran::Replayed(v) => v,
        }
    }

    /// Whether the value was stored by an earlier run.
    pub fn is_replayed(&self) -> bool {
        matches!(self, Ran::Replayed(_))
    }
}

/// Why [`Once::run`] did not return a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnceError<E> {
    /// Another run holds the key and has not finished. Try again later (a
    /// message consumer redelivers); its lease ends in `retry_after` if it
    /// stops renewing.
    #[error("another run of this key is in progress (lease ends in {retry_after:?})")]
    InProgress {
        /// The time left on the holder's lease.
        retry_after: Duration,
    },
    /// The key was used before with a different payload.
    #[error("this key was already used with a different payload")]
    Mismatch,
    /// The work failed; its claim was released, so a later run tries again.
    #[error("the work failed: {0}")]
    Failed(E),
    /// The store failed before the work could start; it did not run.
    #[error(transparent)]
    Store(StoreError),
    /// The value could not be stored or read back as JSON. On encoding,
    /// the work did run and its claim was released.
    #[error("the value could not be {what} as JSON: {source}")]
    Codec {
        /// `"encoded"` or `"decoded"`.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl Once {
    /// Start configuring on `store`.
    pub fn builder<S: Store>(store: S) -> OnceBuilder {
        Self::builder_shared(Arc::new(store))
    }

    /// Start configuring on a store shared with other code (e.g. the HTTP
    /// layer).
    pub fn builder_shared(store: Arc<dyn Store>) -> OnceBuilder {
        OnceBuilder {
            store,
            clock: Clock::default(),
            name: "once".into(),
            lease: LeaseOptions::default(),
        }
    }

    /// Run `work` once for `(scope, key)` with this `payload`, or return the
    /// value an earlier run stored (see the [module docs](self)).
    ///
    /// `work` runs on the caller's task. If this future is dropped while it
    /// runs, the work stops there and the claim is released (the next run
    /// is told by [`previous_attempts`](OnceContext::previous_attempts));
    /// use [`run_detached`](Self::run_detached) for work that must finish
    /// once started.
    pub async fn run<T, E, F, Fut>(
        &self,
        scope: &str,
        key: &str,
        payload: &[u8],
        work: F,
    ) -> Result<Ran<T>, OnceError<E>>
    where
        F: FnOnce(OnceContext) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize + DeserializeOwned,
    {
        let s = &self.settings;
        let scoped = scoped_key(scope, key);
        let claim = ClaimRequest {
            key: &scoped,
            fingerprint: Fingerprint::of(&[payload]),
            now: s.now(),
            lease: s.lease,
            ttl: s.ttl,
        };
        let fence = match s.store.claim(claim).await {
            Ok(ClaimOutcome::Claimed { fence }) => fence,
            Ok(ClaimOutcome::Completed(stored)) => {
                let value = decode(&stored).map_err(|source| OnceError::Codec {
                    what: "decoded",
                    source,
                })?;
                self.emit(RequestOutcome::Replayed);
                return Ok(Ran::Replayed(value));
            }
            Ok(ClaimOutcome::InProgress { retry_after }) => {
                self.emit(RequestOutcome::InProgress);
                return Err(OnceError::InProgress { retry_after });
            }
            Ok(ClaimOutcome::Mismatch) => {
                self.emit(RequestOutcome::Mismatch);
                return Err(OnceError::Mismatch);
            }
            Err(e) => {
                s.count_store_error("claim", &e);
                self.emit(RequestOutcome::StoreUnavailable);
                return Err(OnceError::Store(e));
            }
        };
        let held = Held {
            settings: s.clone(),
            key: scoped,
            fence,
        };
        let this = self.clone();
        let guard = ReleaseOnDrop::new(held.clone(), move |r| this.report_release(r));
        let out = held
            .renewing(AssertUnwindSafe(work(OnceContext { fence })).catch_unwind())
            .await;
        let held = guard.disarm();
        let value = match out {
            Err(panic) => {
                self.report_release(held.release().await);
                std::panic::resume_unwind(panic);
            }
            Ok(Err(e)) => {
                self.report_release(held.release().await);
                return Err(OnceError::Failed(e));
            }
            Ok(Ok(value)) => value,
        };
        let encoded = match encode(&value) {
            Ok(b) => b,
            Err(source) => {
                self.report_release(held.release().await);
                return Err(OnceError::Codec {
                    what: "encoded",
                    source,
                });
            }
        };
        let this = self.clone();
        let late = Box::new(move |late: LateCompletion| {
            this.emit(match late {
                LateCompletion::Stored => RequestOutcome::Stored,
                LateCompletion::FenceRejected => RequestOutcome::FenceRejected,
                LateCompletion::Abandoned => RequestOutcome::CompletionAbandoned,
            })
        });
        let outcome = match held.complete(encoded, late).await {
            Completion::Stored => RequestOutcome::Stored,
            Completion::FenceRejected => {
                tracing::warn!(
                    once = &*s.name,
                    fence,
                    "the run finished after its lease was taken over; its value was not stored"
                );
                RequestOutcome::FenceRejected
            }
            Completion::Retrying => RequestOutcome::CompletionRetrying,
            Completion::Abandoned => RequestOutcome::CompletionAbandoned,
        };
        self.emit(outcome);
        Ok(Ran::First(value))
    }

    /// [`run`](Self::run), but once the work has started it runs to the end
    /// on its own task even if this future is dropped (the caller was
    /// cancelled, a shutdown timed out): its value is stored all the same
    /// and later runs get it.
    pub async fn run_detached<T, E, F, Fut>(
        &self,
        scope: impl Into<String>,
        key: impl Into<String>,
        payload: impl Into<Bytes>,
        work: F,
    ) -> Result<Ran<T>, OnceError<E>>
    where
        F: FnOnce(OnceContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + 'static,
    {
        let this = self.clone();
        let (scope, key, payload) = (scope.into(), key.into(), payload.into());
        Detach::new(
            Box::pin(async move { this.run(&scope, &key, &payload, work).await }),
            true,
        )
        .await
    }

    fn emit(&self, outcome: RequestOutcome) {
        let name = &self.settings.name;
        if outcome.is_key_reuse() {
            tracing::info!(once = &**name, outcome = outcome.as_str(), "once");
        } else {
            tracing::debug!(once = &**name, outcome = outcome.as_str(), "once");
        }
        metrics::counter!("idempotency_requests_total", "dependency" => name.clone(), "outcome" => outcome.as_str()).increment(1);
        if outcome.is_key_reuse() {
            metrics::counter!("idempotency_key_reused_total", "dependency" => name.clone(), "outcome" => outcome.as_str()).increment(1);
        }
    }

    fn report_release(&self, r: Result<(), StoreError>) {
        match r {
            Ok(()) => self.emit(RequestOutcome::Released),
            Err(e) if e.is_fence_rejected() => self.emit(RequestOutcome::FenceRejected),
            Err(e) => {
                tracing::warn!(once = &*self.settings.name, error = %e, "could not release the claim; it frees itself when its lease runs out");
                self.emit(RequestOutcome::Released);
            }
        }
    }
}

/// The store key of `(scope, key)`; never equal to an HTTP layer key (whose
/// first hashed part is an identity marker, not `o`).
fn scoped_key(scope: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [b"o".as_slice(), scope.as_bytes(), key.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex(&h.finalize())
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, serde_json::Error> {
    let mut out = vec![FORMAT_JSON];
    serde_json::to_writer(&mut out, value)?;
    Ok(Bytes::from(out))
}

fn decode<T: DeserializeOwned>(stored: &[u8]) -> Result<T, serde_json::Error> {
    match stored.split_first() {
        Some((&FORMAT_JSON, json)) => serde_json::from_slice(json),
        _ => Err(serde::de::Error::custom(
            "the stored record is not a value stored by `Once`",
        )),
    }
}
