//! Hedged requests with a [`HedgePolicy`], as a
//! tower layer.
//!
//! A request the layer's predicate marks idempotent is sent once; if no
//! answer came within the policy's delay (fixed, or a tracked latency
//! percentile), a copy is sent too, up to the policy's `max_attempts`, each
//! copy withdrawing from the policy's retry budget. The first response
//! wins; the other calls are dropped (cancelled) with the response future —
//! nothing is spawned. An error starts the next copy at once (a refusal
//! from a rebound layer below does not); when every copy failed, the last
//! error is returned. Other requests pass straight through, unhedged.
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

pub mod error;
mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::HedgeLayer;

use crate::hedge::HedgePolicy;
use crate::tower::BoxError;

/// Hedges idempotent calls of the inner service. Made by [`HedgeLayer`].
pub struct Hedge<S, P> {
    inner: S,
    policy: Arc<HedgePolicy>,
    idempotent: P,
}

impl<S: Clone, P: Clone> Clone for Hedge<S, P> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            policy: Arc::clone(&self.policy),
            idempotent: self.idempotent.clone(),
        }
    }
}

impl<S: std::fmt::Debug, P> std::fmt::Debug for Hedge<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, P> Hedge<S, P> {
    /// Wraps `inner`; requests for which `idempotent(&req)` is true are
    /// hedged.
    pub fn new(inner: S, policy: HedgePolicy, idempotent: P) -> Self {
        Hedge {
            inner,
            policy: Arc::new(policy),
            idempotent,
        }
    }

    pub(crate) fn from_shared(inner: S, policy: Arc<HedgePolicy>, idempotent: P) -> Self {
        Hedge {
            inner,
            policy,
            idempotent,
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

impl<S, P, Req> Service<Req> for Hedge<S, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Fn(&Req) -> bool,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

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
        ResponseFuture::hedged(fut, ready, req, Arc::clone(&self.policy))
    }
}
