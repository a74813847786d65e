//! Cut off a call that takes too long, as a tower layer.
//!
//! The tower face of [`rebound::Timeout`](crate::Timeout): when the limit
//! runs out the inner future is dropped (the call is cancelled), the caller
//! gets [`Elapsed`](error::Elapsed), and `dependency_timeout_total` is
//! incremented. It waits on tokio's timer, so paused time drives it in tests.
//!
//! The limit runs from the call, but the timer is only made if the inner
//! future is still pending when first polled: a call answered at once (a
//! cache hit, a refusal from a layer below) costs a clock read, not a
//! timer.
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::tower::timeout::{error::Elapsed, TimeoutLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mock, mut handle) = tower_test::mock::pair::<&str, &str>();
//! let mut svc = TimeoutLayer::new(Duration::from_millis(300))?.dependency("inventory").layer(mock);
//! handle.allow(1);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
//! let slow = svc.call("sku-1"); // the mock never answers
//! let err = slow.await.unwrap_err();
//! assert!(err.is::<Elapsed>());
//! # Ok(()) }
//! ```

pub mod error;
mod future;
mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::TimeoutLayer;

use crate::timeout::DependencyName;
use crate::tower::BoxError;
use crate::Clock;

/// Applies a timeout to every call of the inner service. Made by
/// [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
    dependency: DependencyName,
    clock: Clock,
}

impl<S> Timeout<S> {
    /// Wraps `inner`; `limit` must be non-zero (checked by the layer, which
    /// is the way to make one; here a zero limit times out every call).
    /// `dependency` labels `dependency_timeout_total`: a literal, a `String`
    /// or an `Arc<str>` (see [`DependencyName`]).
    pub fn new(inner: S, limit: Duration, dependency: impl Into<DependencyName>) -> Self {
        Timeout {
            inner,
            limit,
            dependency: dependency.into(),
            clock: Clock::default(),
        }
    }

    /// Measures the limit on `clock`. Default [`Clock::default`].
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
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

impl<S, Req> Service<Req> for Timeout<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(
            self.inner.call(req),
            &self.clock,
            self.limit,
            self.dependency.clone(),
        )
    }
}
