//! Cap concurrent calls with a [`Bulkhead`](crate::Bulkhead), as a tower
//! layer.
//!
//! Each call takes a slot for as long as its response future lives (a
//! cancelled call frees it). With a free slot this costs one atomic update
//! and no allocation. When the bulkhead is full the call waits in the
//! bulkhead's queue (if it has one, for at most its `max_wait`) or fails at
//! once with [`BulkheadFull`](crate::BulkheadFull), counted in
//! `bulkhead_rejected_total`.
//!
//! ```
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::{tower::bulkhead::BulkheadLayer, Bulkhead, BulkheadFull};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
//! let (mock, mut handle) = tower_test::mock::pair::<&str, &str>();
//! let mut svc = BulkheadLayer::new(bulkhead).layer(mock);
//! handle.allow(2);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let first = svc.call("a"); // holds the only slot while in flight
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let err = svc.call("b").await.unwrap_err();
//! assert!(err.is::<BulkheadFull>());
//! drop(first);
//! # Ok(()) }
//! ```

pub mod error;
mod future;
mod layer;

use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::BulkheadLayer;

use crate::tower::BoxError;

/// Caps the inner service's concurrent calls. Made by [`BulkheadLayer`].
#[derive(Debug, Clone)]
pub struct Bulkhead<S> {
    inner: S,
    bulkhead: crate::Bulkhead,
}

impl<S> Bulkhead<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, bulkhead: crate::Bulkhead) -> Self {
        Bulkhead { inner, bulkhead }
    }

    /// The bulkhead.
    pub fn bulkhead(&self) -> &crate::Bulkhead {
        &self.bulkhead
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

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.bulkhead.try_acquire() {
            Ok(permit) => ResponseFuture::called(self.inner.call(req), permit),
            Err(_) => {
                // Cold path: queue for a slot with the ready service in hand.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::queued(ready, req, self.bulkhead.clone())
            }
        }
    }
}
