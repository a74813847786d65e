//! Guard a service with a [`CircuitBreaker`], as a
//! tower layer.
//!
//! Each call asks the breaker for a permit; a refused call fails at once
//! with [`BreakerOpen`](crate::BreakerOpen) without reaching the inner
//! service. The outcome is recorded as the retry integration does: a
//! response or error the classifier calls transient (default: every error)
//! is a failure, everything else a success; a refusal from a rebound layer
//! below (a full bulkhead, a throttle) records nothing, and neither does a
//! call cancelled before it finished (a half-open probe slot is given back).
//!
//! ```
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::{tower::breaker::BreakerLayer, BreakerOpen, CircuitBreaker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cb = CircuitBreaker::consecutive_failures(1).dependency("payments").build()?;
//! let (mock, mut handle) = tower_test::mock::pair::<&str, &str>();
//! let mut svc = BreakerLayer::new(cb.clone()).layer(mock);
//! handle.allow(1);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = svc.call("charge");
//! let (_, reply) = handle.next_request().await.unwrap();
//! reply.send_error(std::io::Error::other("503"));
//! assert!(call.await.is_err());
//! // Open: the next call fails fast.
//! let err = svc.call("charge").await.unwrap_err();
//! assert!(err.is::<BreakerOpen>());
//! # Ok(()) }
//! ```

pub mod error;
mod future;
mod layer;

use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::BreakerLayer;

use crate::classify::{Classifier, RetryErrors};
use crate::tower::BoxError;
use crate::CircuitBreaker;

/// Guards the inner service with a circuit breaker. Made by
/// [`BreakerLayer`].
#[derive(Debug, Clone)]
pub struct Breaker<S, C = RetryErrors> {
    inner: S,
    breaker: CircuitBreaker,
    classifier: C,
}

impl<S> Breaker<S> {
    /// Wraps `inner`; every error is a failure.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        Breaker {
            inner,
            breaker,
            classifier: RetryErrors,
        }
    }
}

impl<S, C> Breaker<S, C> {
    /// Wraps `inner` with a classifier: a transient outcome is a failure.
    pub fn with_classifier(inner: S, breaker: CircuitBreaker, classifier: C) -> Self {
        Breaker {
            inner,
            breaker,
            classifier,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
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

impl<S, C, Req> Service<Req> for Breaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(req), permit, self.classifier.clone())
            }
            Err(open) => ResponseFuture::refused(open),
        }
    }
}
