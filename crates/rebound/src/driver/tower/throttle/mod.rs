//! Adaptive client-side throttling (Google SRE) with an
//! [`AdaptiveThrottle`], as a tower layer.
//!
//! Each call asks the throttle first; a call it rejects locally fails at
//! once with [`Throttled`](crate::throttle::Throttled) without reaching
//! the network. A call that goes out is reported back: *rejected* when the
//! classifier calls its outcome transient (the backend is overloaded: a
//! 429, a 503, a timeout — by default every error), *accepted* otherwise.
//! A refusal from a rebound layer below, and a cancelled call, count as
//! neither.
//!
//! ```
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::throttle::{AdaptiveThrottle, Throttled};
//! use rebound::tower::throttle::ThrottleLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let throttle = AdaptiveThrottle::builder().dependency("search").build()?;
//! let (mock, mut handle) = tower_test::mock::pair::<&str, &str>();
//! let mut svc = ThrottleLayer::new(throttle.clone()).layer(mock);
//! handle.allow(1);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = svc.call("q=rust");
//! let (_, reply) = handle.next_request().await.unwrap();
//! reply.send_response("results");
//! assert_eq!(call.await?, "results");
//! assert_eq!(throttle.counts(), (1, 1)); // one request, one accept
//! # Ok(()) }
//! ```

pub mod error;
mod future;
mod layer;

use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::ThrottleLayer;

use crate::classify::{Classifier, RetryErrors};
use crate::throttle::AdaptiveThrottle;
use crate::tower::BoxError;

/// Throttles calls of the inner service adaptively. Made by
/// [`ThrottleLayer`].
#[derive(Debug, Clone)]
pub struct Throttle<S, C = RetryErrors> {
    inner: S,
    throttle: AdaptiveThrottle,
    classifier: C,
}

impl<S> Throttle<S> {
    /// Wraps `inner`; every error counts as the backend rejecting.
    pub fn new(inner: S, throttle: AdaptiveThrottle) -> Self {
        Throttle {
            inner,
            throttle,
            classifier: RetryErrors,
        }
    }
}

impl<S, C> Throttle<S, C> {
    /// Wraps `inner` with a classifier: a transient outcome counts as the
    /// backend rejecting the request.
    pub fn with_classifier(inner: S, throttle: AdaptiveThrottle, classifier: C) -> Self {
        Throttle {
            inner,
            throttle,
            classifier,
        }
    }

    /// The throttle.
    pub fn throttle(&self) -> &AdaptiveThrottle {
        &self.throttle
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

impl<S, C, Req> Service<Req> for Throttle<S, C>
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
        match self.throttle.try_acquire() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(req), permit, self.classifier.clone())
            }
            Err(throttled) => ResponseFuture::refused(throttled),
        }
    }
}
