//! Hedged requests with a [`HedgePolicy`], as a
//! tower layer.
//!
//! A request the layer's predicate marks idempotent is sent once; if no
//! answer came within the policy's delay (fixed, or a tracked latency
//! percentile), a copy is sent too, up to the policy's `max_attempts`, each
//! copy withdrawing from the policy's retry budget. The first *acceptable*
//! response wins; the other calls are dropped (cancelled) with the response
//! future — nothing is spawned. What is acceptable is the classifier's call
//! ([`HedgeLayer::classify`]), as for the retry layer:
//!
//! * a response it would not retry wins (by default: every response);
//! * a response it would retry (an HTTP 503) or a transient error is *not
//!   acceptable*: it does not end the call while other copies are in
//!   flight or may still be sent, and it sends the next copy at once if
//!   the cap and budget allow (a `RetryAfter`, or a refusal from a rebound
//!   layer below — open breaker, full bulkhead — sends none at once);
//! * an error it would not retry is permanent and ends the call at once;
//! * when every copy ended unacceptable, the **last** one to end is
//!   returned as it came (the response, or the error).
//!
//! Other requests pass straight through, unhedged.
//!
//! The request must be `Clone` (see [the HTTP body
//! note](crate::tower#retrying-http-requests-the-body)).
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::{hedge::HedgePolicy, tower::hedge::HedgeLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let policy = HedgePolicy::builder().fixed_delay(Duration::from_millis(50)).build()?;
//! // GETs are idempotent; anything else is sent once.
//! let layer = HedgeLayer::new(policy, |req: &(&str, &str)| req.0 == "GET");
//! let (mock, mut handle) = tower_test::mock::pair::<(&str, &str), &str>();
//! let mut svc = layer.layer(mock);
//! handle.allow(2);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = tokio::spawn(svc.call(("GET", "/price")));
//! let (_, slow) = handle.next_request().await.unwrap(); // never answers in time
//! let (_, fast) = handle.next_request().await.unwrap(); // the hedge, after 50 ms
//! fast.send_response("42");
//! assert_eq!(call.await.unwrap()?, "42");
//! drop(slow);
//! # Ok(()) }
//! ```
//!
//! With a classifier, a fast but useless answer does not win:
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::{hedge::HedgePolicy, tower::{hedge::HedgeLayer, BoxError}, Decision, Outcome};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let policy = HedgePolicy::builder().fixed_delay(Duration::from_secs(1)).build()?;
//! let layer = HedgeLayer::new(policy, |_: &&str| true).classify(
//!     |o: Outcome<'_, u16, BoxError>| match o {
//!         Outcome::Ok(&status) if status < 500 => Decision::DoNotRetry,
//!         _ => Decision::Retry,
//!     },
//! );
//! let (mock, mut handle) = tower_test::mock::pair::<&str, u16>();
//! let mut svc = layer.layer(mock);
//! handle.allow(2);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = tokio::spawn(svc.call("/price"));
//! let (_, first) = handle.next_request().await.unwrap();
//! first.send_response(503); // not acceptable: the copy goes out at once
//! let (_, copy) = handle.next_request().await.unwrap();
//! copy.send_response(200);
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
pub use layer::HedgeLayer;

use crate::classify::{Classifier, RetryErrors};
use crate::hedge::HedgePolicy;
use crate::tower::BoxError;

/// Hedges idempotent calls of the inner service. Made by [`HedgeLayer`].
pub struct Hedge<S, P, C = RetryErrors> {
    inner: S,
    policy: Arc<HedgePolicy>,
    idempotent: P,
    classifier: C,
}

impl<S: Clone, P: Clone, C: Clone> Clone for Hedge<S, P, C> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            policy: Arc::clone(&self.policy),
            idempotent: self.idempotent.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: std::fmt::Debug, P, C> std::fmt::Debug for Hedge<S, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, P> Hedge<S, P> {
    /// Wraps `inner`; requests for which `idempotent(&req)` is true are
    /// hedged, and the first response wins.
    pub fn new(inner: S, policy: HedgePolicy, idempotent: P) -> Self {
        Hedge::with_classifier(inner, policy, idempotent, RetryErrors)
    }
}

impl<S, P, C> Hedge<S, P, C> {
    /// Wraps `inner`; requests for which `idempotent(&req)` is true are
    /// hedged, and the first response `classifier` accepts wins (see the
    /// [module docs](self)).
    pub fn with_classifier(inner: S, policy: HedgePolicy, idempotent: P, classifier: C) -> Self {
        Hedge::from_shared(inner, Arc::new(policy), idempotent, classifier)
    }

    pub(crate) fn from_shared(
        inner: S,
        policy: Arc<HedgePolicy>,
        idempotent: P,
        classifier: C,
    ) -> Self {
        Hedge {
            inner,
            policy,
            idempotent,
            classifier,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &HedgePolicy {
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

impl<S, P, C, Req> Service<Req> for Hedge<S, P, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Fn(&Req) -> bool,
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

    fn call(&mut self, req: Req) -> Self::Future {
        if self.policy.max_attempts() < 2 || !(self.idempotent)(&req) {
            return ResponseFuture::single(self.inner.call(req));
        }
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let fut = ready.call(req.clone());
        ResponseFuture::hedged(
            fut,
            ready,
            req,
            Arc::clone(&self.policy),
            self.classifier.clone(),
        )
    }
}
