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
//! **Cost.** Under a policy with nothing that can refuse an attempt or must
//! be held while it runs (no total timeout, breaker or throttle — a budget
//! is fine), a call whose first attempt is accepted builds no retry state
//! and allocates nothing: the state is made only if an attempt fails or
//! times out, and is then what it would have been if made at the start.
//! What a call needs beyond that (a guarded policy's state and permits, an
//! attempt timer, the result kept while waiting to retry) shares one
//! allocation per call, outside the response future, which so stays small
//! (72 bytes around an inner `Ready` future). For a breaker or throttle without an
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

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::RetryLayer;

use crate::classify::{Classifier, RetryErrors};
use crate::tower::BoxError;
use crate::RetryPolicy;

pub(crate) struct Shared<C> {
    pub(crate) policy: RetryPolicy,
    pub(crate) classifier: C,
    /// Whether the policy's attempts are plain (no deadline, throttle or
    /// breaker), so a call's state may wait until after its first attempt.
    /// The policy never changes, so asked once.
    pub(crate) plain: bool,
}

impl<C> Shared<C> {
    pub(crate) fn new(policy: RetryPolicy, classifier: C) -> Self {
        Shared {
            plain: policy.attempts_are_plain(),
            policy,
            classifier,
        }
    }
}

/// Retries calls of the inner service under a [`RetryPolicy`]. Made by
/// [`RetryLayer`].
pub struct Retry<S, C = RetryErrors> {
    inner: S,
    shared: Arc<Shared<C>>,
}

impl<S: Clone, C> Clone for Retry<S, C> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, C> std::fmt::Debug for Retry<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    /// Wraps `inner`, retrying every error and timeout.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Retry::with_classifier(inner, policy, RetryErrors)
    }
}

impl<S, C> Retry<S, C> {
    /// Wraps `inner` with a classifier deciding what is retried.
    pub fn with_classifier(inner: S, policy: RetryPolicy, classifier: C) -> Self {
        Retry {
            inner,
            shared: Arc::new(Shared::new(policy, classifier)),
        }
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<C>>) -> Self {
        Retry { inner, shared }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
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
    C: Classifier<S::Response, BoxError>,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // The ready service makes this attempt; a clone waits for retries.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(ready, req, Arc::clone(&self.shared))
    }
}
