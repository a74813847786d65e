//! Fallbacks: turn a hard failure into a degraded answer.
//!
//! Seed 002: "Fallbacks can turn a hard failure into a degraded
//! experience" — an order page that cannot reach inventory can still show
//! the last availability it saw, marked as such, instead of an error. A
//! [`Fallback`] decides *when* a fallback may stand in (on which
//! [`Cause`]s: a failed call, an open breaker, an exhausted budget, a full
//! bulkhead, a throttle, a timeout) and counts every use in
//! `fallback_used_total`; you say *what* stands in.
//!
//! A [`StaleCache`] is the most common "what": the last good value per key,
//! served on error only while it is younger than `max_age` ("show cached
//! availability only if freshness rules allow it"). An answer from it comes
//! back as [`Served::Stale`] with its age, so the caller can say so.
//!
//! ```
//! use std::time::Duration;
//! use rebound::fallback::{Fallback, Served, StaleCache};
//! use rebound::Clock;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (clock, time) = Clock::manual();
//! let fallback = Fallback::builder().dependency("inventory").build();
//! let cache = StaleCache::new(Duration::from_secs(60)).with_clock(clock);
//!
//! let fresh = fallback
//!     .with_stale(&cache, "sku-1", async { Ok::<_, std::io::Error>(12u32) })
//!     .await
//!     .unwrap();
//! assert_eq!(fresh, Served::Fresh(12));
//!
//! time.advance(Duration::from_secs(20));
//! let down = async { Err::<u32, _>(std::io::Error::other("connection refused")) };
//! let stale = fallback.with_stale(&cache, "sku-1", down).await.unwrap();
//! assert_eq!(stale, Served::Stale { value: 12, age: Duration::from_secs(20) });
//!
//! time.advance(Duration::from_secs(60)); // too old to show
//! let down = async { Err::<u32, _>(std::io::Error::other("connection refused")) };
//! assert!(fallback.with_stale(&cache, "sku-1", down).await.is_err());
//! # }
//! ```

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use crate::breaker::{BreakerOpen, CallError};
use crate::bulkhead::BulkheadFull;
use crate::retry::{RetryError, Stop};
use crate::telemetry;
use crate::throttle::Throttled;

pub use super::stale_cache::{Lookup, Served, StaleCache};

/// Why a call failed, as far as a fallback cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// The call ran and failed (retries included, if any).
    Failed,
    /// The call, or its last attempt, timed out.
    Timeout,
    /// A circuit breaker refused it.
    BreakerOpen,
    /// The retry budget refused a retry.
    BudgetExhausted,
    /// A bulkhead was full.
    BulkheadFull,
    /// A throttle (client-side or the server's Retry-After) refused it.
    Throttled,
}

impl Cause {
    /// Every cause.
    pub const ALL: [Cause; 6] = [
        Cause::Failed,
        Cause::Timeout,
        Cause::BreakerOpen,
        Cause::BudgetExhausted,
        Cause::BulkheadFull,
        Cause::Throttled,
    ];

    /// A short, stable name, used as the `reason` label of
    /// `fallback_used_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::Failed => "failed",
            Cause::Timeout => "timeout",
            Cause::BreakerOpen => "breaker_open",
            Cause::BudgetExhausted => "budget",
            Cause::BulkheadFull => "bulkhead_full",
            Cause::Throttled => "throttled",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The cause of a call that stopped with `stop` (`None` for success).
    pub fn from_stop(stop: Stop, timed_out: bool) -> Option<Cause> {
        Some(match stop {
            Stop::Succeeded => return None,
            Stop::BreakerOpen => Cause::BreakerOpen,
            Stop::BudgetExhausted => Cause::BudgetExhausted,
            Stop::BulkheadFull => Cause::BulkheadFull,
            Stop::Throttled { .. } => Cause::Throttled,
            Stop::DeadlineExceeded { .. } => Cause::Timeout,
            _ if timed_out => Cause::Timeout,
            _ => Cause::Failed,
        })
    }
}

/// Errors that know their [`Cause`]. Implemented for rebound's own errors;
/// implement it for yours, or use [`Fallback::call_with`] to classify with a
/// closure.
pub trait HasCause {
    /// Why the call failed.
    fn cause(&self) -> Cause;
}

impl<E> HasCause for RetryError<E> {
    fn cause(&self) -> Cause {
        Cause::from_stop(self.stop(), self.timed_out()).unwrap_or(Cause::Failed)
    }
}

/// `TimedOut` is a timeout; every other I/O error a failure.
impl HasCause for std::io::Error {
    fn cause(&self) -> Cause {
        if self.kind() == std::io::ErrorKind::TimedOut {
            Cause::Timeout
        } else {
            Cause::Failed
        }
    }
}

impl HasCause for BreakerOpen {
    fn cause(&self) -> Cause {
        Cause::BreakerOpen
    }
}

impl HasCause for BulkheadFull {
    fn cause(&self) -> Cause {
        Cause::BulkheadFull
    }
}

impl HasCause for Throttled {
    fn cause(&self) -> Cause {
        Cause::Throttled
    }
}

impl<E> HasCause for CallError<E> {
    fn cause(&self) -> Cause {
        match self {
            CallError::Rejected(_) => Cause::BreakerOpen,
            CallError::Failed(_) => Cause::Failed,
        }
    }
}

#[cfg(feature = "tokio")]
impl HasCause for crate::timeout::Elapsed {
    fn cause(&self) -> Cause {
        Cause::Timeout
    }
}

/// Which causes a fallback stands in for, and the metrics label. Cheap to
/// clone. See the [module docs](self).
///
/// ```
/// use rebound::fallback::{Cause, Fallback};
/// use rebound::CircuitBreaker;
///
/// // Only when the breaker is open: real errors still surface.
/// let fallback = Fallback::builder().only(&[Cause::BreakerOpen]).build();
/// let cb = CircuitBreaker::builder().build().unwrap();
/// cb.isolate();
/// let shown = fallback.call(cb.call(|| Ok::<_, ()>("live")), |_cause| Some("cached"));
/// assert_eq!(shown.ok(), Some("cached"));
/// ```
#[derive(Debug, Clone)]
pub struct Fallback {
    causes: u8,
    dependency: Arc<str>,
    host: Option<Arc<str>>,
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback::builder().build()
    }
}

impl Fallback {
    /// A builder: every cause, dependency `"default"`.
    pub fn builder() -> FallbackBuilder {
        FallbackBuilder {
            causes: Cause::ALL.iter().fold(0, |m, c| m | c.bit()),
            dependency: Arc::from("default"),
            host: None,
        }
    }

    /// Whether this fallback stands in for `cause`.
    #[inline]
    pub fn covers(&self, cause: Cause) -> bool {
        self.causes & cause.bit() != 0
    }

    /// The dependency name used as the metrics label.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// The `host` label of `fallback_used_total`, if one was set with
    /// [`FallbackBuilder::host`].
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn dependency_arc(&self) -> &Arc<str> {
        &self.dependency
    }

    /// Counts one use in `fallback_used_total{dependency, reason}` (and
    /// `host`, when set).
    pub fn record_use(&self, cause: Cause) {
        telemetry::incr_hosted(
            telemetry::FALLBACK_USED_TOTAL,
            &self.dependency,
            self.host.as_ref(),
            Some(cause.as_str()),
        );
        // A degraded answer is an operator's business: visible at INFO.
        tracing::info!(
            dependency = &*self.dependency,
            cause = cause.as_str(),
            "fallback used"
        );
    }

    /// `result`, or — if it failed with a covered cause and `fallback`
    /// returns a value for it — that value.
    pub fn call<T, E: HasCause>(
        &self,
        result: Result<T, E>,
        fallback: impl FnOnce(Cause) -> Option<T>,
    ) -> Result<T, E> {
        self.call_with(result, HasCause::cause, |c, _| fallback(c))
    }

    /// Like [`call`](Self::call), with the cause of an error told by
    /// `cause_of`, and the fallback shown the error.
    pub fn call_with<T, E>(
        &self,
        result: Result<T, E>,
        cause_of: impl FnOnce(&E) -> Cause,
        fallback: impl FnOnce(Cause, &E) -> Option<T>,
    ) -> Result<T, E> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                let cause = cause_of(&e);
                if !self.covers(cause) {
                    return Err(e);
                }
                match fallback(cause, &e) {
                    Some(v) => {
                        self.record_use(cause);
                        Ok(v)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// Awaits `fut`; on a covered failure, serves the last value of `key`
    /// from `cache` if it is fresh enough. A success is stored in the cache.
    pub async fn with_stale<K, V, E, F, Q>(
        &self,
        cache: &StaleCache<K, V>,
        key: &Q,
        fut: F,
    ) -> Result<Served<V>, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
        E: HasCause,
        K: Borrow<Q> + Hash + Eq,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        V: Clone,
    {
        let result = fut.await;
        self.serve_stale(cache, key, result, HasCause::cause)
    }

    /// The synchronous core of [`with_stale`](Self::with_stale): stores a
    /// success, or answers a covered failure from the cache.
    pub fn serve_stale<K, V, E, Q>(
        &self,
        cache: &StaleCache<K, V>,
        key: &Q,
        result: Result<V, E>,
        cause_of: impl FnOnce(&E) -> Cause,
    ) -> Result<Served<V>, E>
    where
        K: Borrow<Q> + Hash + Eq,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        V: Clone,
    {
        match result {
            Ok(v) => {
                cache.put(key.to_owned(), v.clone());
                Ok(Served::Fresh(v))
            }
            Err(e) => {
                let cause = cause_of(&e);
                if !self.covers(cause) {
                    return Err(e);
                }
                match cache.get(key) {
                    Some((value, age)) => {
                        self.record_use(cause);
                        Ok(Served::Stale { value, age })
                    }
                    None => Err(e),
                }
            }
        }
    }
}

/// Builder for [`Fallback`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FallbackBuilder {
    causes: u8,
    dependency: Arc<str>,
    host: Option<Arc<str>>,
}

impl FallbackBuilder {
    /// Stand in only for these causes. Default: every [`Cause`].
    pub fn only(mut self, causes: &[Cause]) -> Self {
        self.causes = causes.iter().fold(0, |m, c| m | c.bit());
        self
    }

    /// Do not stand in for `cause`. Default: every cause is covered.
    pub fn except(mut self, cause: Cause) -> Self {
        self.causes &= !cause.bit();
        self
    }

    /// The `dependency` label of `fallback_used_total`. Default `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The `host` label of `fallback_used_total`, beside `dependency`, for a
    /// fallback that stands in for one instance of a dependency. Default:
    /// no `host` label (a fallback usually stands in for the dependency as
    /// a whole, whichever host failed).
    pub fn host(mut self, host: impl Into<Arc<str>>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Builds the fallback (nothing to validate).
    pub fn build(self) -> Fallback {
        Fallback {
            causes: self.causes,
            dependency: self.dependency,
            host: self.host,
        }
    }
}
