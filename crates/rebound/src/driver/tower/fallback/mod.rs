//! Fallbacks with a [`Fallback`](crate::fallback::Fallback), as a tower
//! layer.
//!
//! When the inner service fails with a cause the fallback covers — an open
//! breaker, a full bulkhead, a throttle, an exhausted budget, a timeout, or
//! any other failure — the handler gets the [`Cause`] and the error and may
//! answer instead (`Ok`), counted in `fallback_used_total`; or hand the
//! error back (`Err`). The cause is read from rebound's own error types
//! with [`cause_of`]; anything else is [`Cause::Failed`].
//!
//! ```
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::fallback::{Cause, Fallback};
//! use rebound::tower::{breaker::BreakerLayer, fallback::FallbackLayer, BoxError};
//! use rebound::CircuitBreaker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let cb = CircuitBreaker::builder().build()?;
//! cb.isolate(); // the breaker is open
//! let (mock, _handle) = tower_test::mock::pair::<&str, String>();
//! let fallback = FallbackLayer::new(
//!     Fallback::builder().dependency("inventory").build(),
//!     |cause: Cause, err: BoxError| match cause {
//!         Cause::BreakerOpen => Ok("availability unknown".to_string()),
//!         _ => Err(err),
//!     },
//! );
//! let mut svc = fallback.layer(BreakerLayer::new(cb).layer(mock));
//! assert_eq!(svc.call("sku-1").await?, "availability unknown");
//! # Ok(()) }
//! ```
//!
//! ## The stale-on-error cache
//!
//! [`StaleCacheLayer`] is the tower form of
//! [`Fallback::with_stale`](crate::fallback::Fallback::with_stale): it
//! keeps the last good response per key (made from each request by your
//! function) in a [`StaleCache`](crate::fallback::StaleCache), and when the
//! inner service fails with a cause the [`Fallback`](crate::fallback::Fallback)
//! covers — an error, an open breaker, an exhausted retry budget, a full
//! bulkhead, a throttle, a timeout — answers with it if it is at most the
//! cache's `max_age` old, measured on the cache's injected
//! [`Clock`](crate::Clock); otherwise the error passes. Each stale answer
//! is counted in `fallback_used_total{dependency, reason}`, as in the
//! closure API. The response type must be `Clone` (one copy is kept). Put
//! it outside the retry, breaker and bulkhead layers, so it sees their
//! refusals and their final result.
//!
//! Given a cache [`with_freshness`](crate::fallback::StaleCache::with_freshness),
//! the layer is also a read-through cache: a response younger than its
//! (jittered) TTL is answered without calling the inner service, and a
//! read the early refresh draws calls it to reload (answering with the
//! cached response if that fails). Put a
//! [`CoalesceLayer`](crate::tower::coalesce::CoalesceLayer) under it and
//! concurrent misses make one call (cache-miss locking); a follower whose
//! wait runs out (the coalescer's `max_wait`) is answered with the stale
//! response when the fallback covers [`Cause::Timeout`].
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::fallback::{Fallback, StaleCache};
//! use rebound::tower::{fallback::StaleCacheLayer, BoxError};
//! use rebound::Clock;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let (clock, time) = Clock::manual();
//! let cache = StaleCache::new(Duration::from_secs(60)).with_clock(clock);
//! let layer = StaleCacheLayer::new(
//!     Fallback::builder().dependency("inventory").build(),
//!     cache,
//!     |sku: &&'static str| *sku, // the key
//! );
//! let (mock, mut handle) = tower_test::mock::pair::<&'static str, u32>();
//! let mut svc = layer.layer(mock);
//! handle.allow(3);
//!
//! // A good answer is kept...
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = svc.call("sku-1");
//! handle.next_request().await.unwrap().1.send_response(12);
//! assert_eq!(call.await?, 12);
//!
//! // ...and stands in when the dependency fails, while fresh enough.
//! time.advance(Duration::from_secs(20));
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = svc.call("sku-1");
//! handle.next_request().await.unwrap().1.send_error(std::io::Error::other("refused"));
//! assert_eq!(call.await?, 12);
//!
//! time.advance(Duration::from_secs(60)); // now 80 s old: too old to show
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = svc.call("sku-1");
//! handle.next_request().await.unwrap().1.send_error(std::io::Error::other("refused"));
//! assert!(call.await.is_err());
//! # Ok(()) }
//! ```

pub mod error;
mod future;
mod layer;
mod stale;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::FallbackLayer;
pub use stale::{StaleCacheLayer, StaleCacheService, StaleResponseFuture};

pub use crate::fallback::Cause;
use crate::tower::BoxError;

/// The [`Cause`] of an error from a rebound tower stack: an open breaker, a
/// full bulkhead, a throttle, a timeout (either timeout type), or the stop
/// reason of a retry layer; anything else is [`Cause::Failed`]. An error
/// shared by a coalescing layer is judged by the error it shares; a
/// coalesced follower's wait that ran out is a [`Cause::Timeout`].
pub fn cause_of(e: &BoxError) -> Cause {
    cause_of_dyn(&**e)
}

fn cause_of_dyn(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Cause {
    if let Some(shared) = e.downcast_ref::<crate::tower::coalesce::error::SharedError>() {
        cause_of_dyn(shared.inner())
    } else if e.is::<crate::tower::coalesce::error::WaitElapsed>() {
        Cause::Timeout
    } else if e.is::<crate::BreakerOpen>() {
        Cause::BreakerOpen
    } else if e.is::<crate::BulkheadFull>() {
        Cause::BulkheadFull
    } else if e.is::<crate::throttle::Throttled>() {
        Cause::Throttled
    } else if e.is::<crate::timeout::Elapsed>() {
        Cause::Timeout
    } else if let Some(r) = e.downcast_ref::<crate::tower::retry::error::RetryFailed>() {
        Cause::from_stop(r.stop(), r.timed_out()).unwrap_or(Cause::Failed)
    } else {
        Cause::Failed
    }
}

pub(crate) struct Shared<F> {
    pub(crate) fallback: crate::fallback::Fallback,
    pub(crate) handler: F,
}

/// Answers for the inner service when it fails. Made by [`FallbackLayer`].
pub struct Fallback<S, F> {
    inner: S,
    shared: Arc<Shared<F>>,
}

impl<S: Clone, F> Clone for Fallback<S, F> {
    fn clone(&self) -> Self {
        Fallback {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, F> std::fmt::Debug for Fallback<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .field("fallback", &self.shared.fallback)
            .finish_non_exhaustive()
    }
}

impl<S, F> Fallback<S, F> {
    /// Wraps `inner`; `handler(cause, error)` answers covered failures.
    pub fn new(inner: S, fallback: crate::fallback::Fallback, handler: F) -> Self {
        Fallback {
            inner,
            shared: Arc::new(Shared { fallback, handler }),
        }
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<F>>) -> Self {
        Fallback { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F, Req> Service<Req> for Fallback<S, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: Fn(Cause, BoxError) -> Result<S::Response, BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, F>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req), Arc::clone(&self.shared))
    }
}
