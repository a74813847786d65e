//! Retry with a [`RetryPolicy`], as a tower layer.
//!
//! The layer drives the same sans-IO [`RetryState`](crate::RetryState) as
//! the closure API: attempts, backoff and jitter, per-attempt and total
//! timeouts, the retry budget and the circuit breaker set on the policy all
//! apply, with the same telemetry. The request must be `Clone` (each
//! attempt gets a clone; see [the HTTP body note](crate::tower#retrying-http-requests-the-body)).
//!
//! The classifier sees each response and each error (boxed); the default
//! retries every error and timeout and accepts every response. A refusal
//! from one of rebound's layers below (an open breaker, a full bulkhead, a
//! throttle) is never retried: the call stops at once with that reason.
//!
//! **Cost.** The layer, its services and their calls share the policy by
//! reference count ([`SharedPolicy`]): cloning the service or making a call
//! counts one reference, about 11 ns per call for the pair on our benchmark
//! machine. A program that builds its policies once at start-up can skip
//! it, by choice: hand the layer a `&'static RetryPolicy`
//! ([`RetryPolicy::leak`] gives one), and clones and calls copy a pointer.
//! The classifier is cloned into each service and call: a closure that
//! captures nothing costs nothing; keep larger state behind an `Arc`.
//!
//! ```
//! use rebound::{tower::retry::RetryLayer, RetryPolicy};
//!
//! // Built once for the life of the program: no reference counting per call.
//! let inventory: &'static RetryPolicy = RetryPolicy::builder()
//!     .dependency("inventory")
//!     .build()?
//!     .leak();
//! let layer = RetryLayer::new(inventory);
//! # let _ = layer;
//! # Ok::<(), rebound::ConfigError>(())
//! ```
//!
//! Under a policy with nothing that can refuse an attempt or must
//! be held while it runs (no total timeout, breaker or throttle — a budget
//! is fine), a call whose first attempt is accepted builds no retry state
//! and allocates nothing: the state is made only if an attempt fails or
//! times out, and is then what it would have been if made at the start.
//! What a call needs beyond that (a guarded policy's state and permits, an
//! attempt timer, the result kept while waiting to retry) shares one
//! allocation per call, outside the response future, which so stays small
//! (80 bytes around an inner `Ready` future). For a breaker or throttle without an
//! allocation per call, put a [`BreakerLayer`](crate::tower::breaker::BreakerLayer)
//! or [`ThrottleLayer`](crate::tower::throttle::ThrottleLayer) below this
//! layer instead of on the policy: its refusals stop the retries at once
//! all the same.
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::tower::{retry::RetryLayer, BoxError};
//! use rebound::{Backoff, Decision, Outcome, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let policy = RetryPolicy::builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::constant(Duration::from_millis(10)))
//!     .build()?;
//! // Retry 503s, accept everything else.
//! let layer = RetryLayer::new(policy).classify(|o: Outcome<'_, u16, BoxError>| match o {
//!     Outcome::Ok(503) | Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
//!     Outcome::Ok(_) => Decision::DoNotRetry,
//! });
//! let (mock, mut handle) = tower_test::mock::pair::<&str, u16>();
//! let mut svc = layer.layer(mock);
//! handle.allow(2);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = tokio::spawn(svc.call("GET /stock"));
//! let (_, reply) = handle.next_request().await.unwrap();
//! reply.send_response(503);
//! let (_, reply) = handle.next_request().await.unwrap();
//! reply.send_response(200);
//! assert_eq!(call.await.unwrap()?, 200);
//! # Ok(()) }
//! ```

pub mod error;
mod future;
mod layer;

use std::ops::Deref;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::RetryLayer;

use crate::classify::{Classifier, RetryErrors};
use crate::tower::BoxError;
use crate::RetryPolicy;

/// How a retry layer, its services and their calls hold the policy: by
/// reference count (the default, from a [`RetryPolicy`] or an
/// `Arc<RetryPolicy>`), or borrowed for the life of the program (from a
/// `&'static RetryPolicy`, e.g. [`RetryPolicy::leak`]), which spares a
/// reference count per call. Clones of a policy share its budget, breaker
/// and throttle either way.
///
/// ```
/// use std::sync::Arc;
/// use rebound::tower::retry::SharedPolicy;
/// use rebound::RetryPolicy;
///
/// let counted = SharedPolicy::from(RetryPolicy::default());
/// let arc = SharedPolicy::from(Arc::new(RetryPolicy::default()));
/// let borrowed = SharedPolicy::from(RetryPolicy::default().leak());
/// assert!(!counted.is_static() && !arc.is_static() && borrowed.is_static());
/// assert_eq!(borrowed.max_attempts(), 3);
/// ```
#[derive(Debug)]
pub enum SharedPolicy {
    /// Shared by reference count.
    Counted(Arc<RetryPolicy>),
    /// Borrowed for the life of the program.
    Static(&'static RetryPolicy),
}

impl SharedPolicy {
    /// Whether the policy is borrowed for the life of the program.
    pub fn is_static(&self) -> bool {
        matches!(self, SharedPolicy::Static(_))
    }
}

impl From<RetryPolicy> for SharedPolicy {
    fn from(policy: RetryPolicy) -> Self {
        SharedPolicy::Counted(Arc::new(policy))
    }
}

impl From<Arc<RetryPolicy>> for SharedPolicy {
    fn from(policy: Arc<RetryPolicy>) -> Self {
        SharedPolicy::Counted(policy)
    }
}

impl From<&'static RetryPolicy> for SharedPolicy {
    fn from(policy: &'static RetryPolicy) -> Self {
        SharedPolicy::Static(policy)
    }
}

impl Clone for SharedPolicy {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            SharedPolicy::Static(p) => SharedPolicy::Static(p),
            SharedPolicy::Counted(p) => SharedPolicy::Counted(Arc::clone(p)),
        }
    }
}

impl Deref for SharedPolicy {
    type Target = RetryPolicy;

    #[inline]
    fn deref(&self) -> &RetryPolicy {
        match self {
            SharedPolicy::Static(p) => p,
            SharedPolicy::Counted(p) => p,
        }
    }
}

/// Retries calls of the inner service under a [`RetryPolicy`]. Made by
/// [`RetryLayer`].
pub struct Retry<S, C = RetryErrors> {
    inner: S,
    policy: SharedPolicy,
    classifier: C,
}

impl<S: Clone, C: Clone> Clone for Retry<S, C> {
    #[inline]
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: std::fmt::Debug, C> std::fmt::Debug for Retry<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &*self.policy)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    /// Wraps `inner`, retrying every error and timeout.
    pub fn new(inner: S, policy: impl Into<SharedPolicy>) -> Self {
        Retry::with_classifier(inner, policy, RetryErrors)
    }
}

impl<S, C> Retry<S, C> {
    /// Wraps `inner` with a classifier deciding what is retried. The
    /// classifier is cloned into every call (see the [module docs](self)).
    pub fn with_classifier(inner: S, policy: impl Into<SharedPolicy>, classifier: C) -> Self {
        Retry {
            inner,
            policy: policy.into(),
            classifier,
        }
    }

    pub(crate) fn from_parts(inner: S, policy: SharedPolicy, classifier: C) -> Self {
        Retry {
            inner,
            policy,
            classifier,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
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

impl<S, C, Req> Service<Req> for Retry<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError> + Clone,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Always inlined: the inner service's future is then built in place in
    // the caller's frame, not copied out of this one.
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        // The ready service makes this attempt; a clone waits for retries.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(ready, req, self.policy.clone(), self.classifier.clone())
    }
}

#[cfg(test)]
mod size {
    use super::*;

    type Answer = std::future::Ready<Result<u64, BoxError>>;
    type Inner = tower::util::ServiceFn<fn(u64) -> Answer>;

    /// The plain success path moves the response future at least twice; it
    /// holds the inner future, the inner service, the kept request, the
    /// policy pointer and one pointer to the rarely used part.
    #[test]
    fn the_response_future_stays_small() {
        let size = std::mem::size_of::<ResponseFuture<Inner, u64, RetryErrors>>();
        assert_eq!(size, 80, "{size} bytes");
    }
}
