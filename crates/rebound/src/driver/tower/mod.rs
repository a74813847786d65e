//! Tower middleware driving rebound's policies (feature `tower`).
//!
//! Every middleware has the same rooms, as in tower itself: the `Service`
//! wrapper in `mod.rs` (`new`, `get_ref`, `get_mut`, `into_inner`), the
//! `Layer` in `layer.rs`, a pin-projected `ResponseFuture` in `future.rs`
//! and its errors in `error.rs`. Each one *drives* a core policy object —
//! the very [`RetryPolicy`](crate::RetryPolicy),
//! [`CircuitBreaker`](crate::CircuitBreaker), [`Bulkhead`](crate::Bulkhead),
//! [`AdaptiveThrottle`](crate::throttle::AdaptiveThrottle),
//! [`HedgePolicy`](crate::hedge::HedgePolicy) and
//! [`Fallback`](crate::fallback::Fallback) the closure API uses, shared by
//! cloning — so a breaker can guard a tower client and a closure call at
//! the same time, and the simulator measures the same code.
//!
//! | module | layer | refuses with |
//! |---|---|---|
//! | [`timeout`] | [`TimeoutLayer`](timeout::TimeoutLayer) | [`timeout::error::Elapsed`] |
//! | [`retry`] | [`RetryLayer`](retry::RetryLayer) (its budget, breaker and timeouts included) | [`retry::error::RetryFailed`] |
//! | [`breaker`] | [`BreakerLayer`](breaker::BreakerLayer) | [`BreakerOpen`](crate::BreakerOpen) |
//! | [`bulkhead`] | [`BulkheadLayer`](bulkhead::BulkheadLayer) | [`BulkheadFull`](crate::BulkheadFull) |
//! | [`throttle`] | [`ThrottleLayer`](throttle::ThrottleLayer) | [`Throttled`](crate::throttle::Throttled) |
//! | [`hedge`] | [`HedgeLayer`](hedge::HedgeLayer): first *acceptable* response wins | (a permanent error, or the last unacceptable copy's error) |
//! | [`fallback`] | [`FallbackLayer`](fallback::FallbackLayer), [`StaleCacheLayer`](fallback::StaleCacheLayer) (stale-on-error cache) | (the error, when no fallback applies) |
//! | [`coalesce`] | [`CoalesceLayer`](coalesce::CoalesceLayer): concurrent requests with the same key share one call | [`coalesce::error::SharedError`] (the shared error), [`coalesce::error::WaitElapsed`] |
//! | [`pipeline`] | [`PipelineLayer`](pipeline::PipelineLayer): a whole [`Pipeline`](crate::pipeline::Pipeline), hedge stage included | [`retry::error::RetryFailed`] |
//!
//! The breaker and throttle layers share one response future,
//! [`permit::PermitFuture`]: take a permit, call, report the outcome.
//!
//! **Budgets** have no layer of their own: a [`RetryBudget`](crate::RetryBudget)
//! does nothing without retries, so it is handed to the retry layer (in its
//! [`RetryPolicy`](crate::RetryPolicy)) and to the hedge layer (in its
//! [`HedgePolicy`](crate::hedge::HedgePolicy)); giving both the same budget
//! makes retries and hedges draw on one allowance.
//!
//! **Errors** are boxed ([`BoxError`]), as in tower, so layers stack in any
//! order; downcast to the types above. Classifiers in tower see the inner
//! error as a `BoxError` for the same reason. The refusals of rebound's own
//! layers (an open breaker, a full bulkhead, a throttle) are never retried:
//! a retry layer above them stops at once with the matching
//! [`Stop`](crate::Stop).
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::tower::{breaker::BreakerLayer, retry::RetryLayer, timeout::TimeoutLayer};
//! use rebound::{CircuitBreaker, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let inventory = tower_service_fn(|sku: &'static str| async move { Ok::<_, std::io::Error>(sku.len()) });
//! let stack = TimeoutLayer::new(Duration::from_secs(2))?.layer(
//!     RetryLayer::new(RetryPolicy::builder().max_attempts(3).build()?).layer(
//!         BreakerLayer::new(CircuitBreaker::builder().dependency("inventory").build()?)
//!             .layer(inventory),
//!     ),
//! );
//! let mut svc = stack;
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! assert_eq!(svc.call("sku-1").await?, 5);
//! # Ok(()) }
//! # fn tower_service_fn<F, Fut, R, T, E>(f: F) -> Fn_<F> where F: FnMut(R) -> Fut, Fut: std::future::Future<Output = Result<T, E>> { Fn_(f) }
//! # #[derive(Clone)] struct Fn_<F>(F);
//! # impl<F, Fut, R, T, E> Service<R> for Fn_<F> where F: FnMut(R) -> Fut, Fut: std::future::Future<Output = Result<T, E>> {
//! #     type Response = T; type Error = E; type Future = Fut;
//! #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), E>> { std::task::Poll::Ready(Ok(())) }
//! #     fn call(&mut self, r: R) -> Fut { (self.0)(r) }
//! # }
//! ```
//!
//! ## Retrying HTTP requests: the body
//!
//! A retry (or a hedge) sends the request again, so the layer needs a copy:
//! the request type must be `Clone`, and each attempt gets a clone. For
//! HTTP that means the body must be buffered: `http::Request<Full<Bytes>>`
//! (or `Request<String>`, `Request<Vec<u8>>`) is cloneable and retried;
//! a streaming body (`hyper::body::Incoming`, a body wrapping a file or a
//! channel) is not `Clone` and cannot be — it was consumed by the first
//! attempt. Buffer small bodies before the retry layer (e.g.
//! `http_body_util::BodyExt::collect` into `Full<Bytes>`), and send large
//! streaming uploads through a stack without retry or hedging, relying on
//! the breaker and timeouts alone; or retry at a level where the body can
//! be re-created (the closure API, which calls your code again).

pub mod breaker;
pub mod bulkhead;
pub mod coalesce;
pub mod fallback;
pub mod hedge;
pub mod permit;
pub mod pipeline;
pub mod retry;
pub mod throttle;
pub mod timeout;

/// The boxed error every rebound tower service returns, as in tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The [`Stop`](crate::Stop) matching one of rebound's own refusals (an
/// open breaker, a full bulkhead, a throttle), if `e` is one.
pub(crate) fn refusal(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<crate::Stop> {
    if let Some(shared) = e.downcast_ref::<coalesce::error::SharedError>() {
        refusal(shared.inner())
    } else if e.is::<crate::BreakerOpen>() {
        Some(crate::Stop::BreakerOpen)
    } else if e.is::<crate::BulkheadFull>() {
        Some(crate::Stop::BulkheadFull)
    } else if e.is::<crate::throttle::Throttled>() {
        Some(crate::Stop::Throttled { retry_after: None })
    } else if let Some(r) = e.downcast_ref::<retry::error::RetryFailed>() {
        // A retry layer below stopped for a refusal: pass it on.
        matches!(
            r.stop(),
            crate::Stop::BreakerOpen | crate::Stop::BulkheadFull | crate::Stop::Throttled { .. }
        )
        .then(|| r.stop())
    } else {
        None
    }
}

pin_project_lite::pin_project! {
    /// A call's future, its error boxed.
    #[doc(hidden)]
    pub struct IntoBoxError<F> {
        #[pin]
        pub(crate) fut: F,
    }
}

impl<T, E, F> std::future::Future for IntoBoxError<F>
where
    E: Into<BoxError>,
    F: std::future::Future<Output = Result<T, E>>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.project().fut.poll(cx).map(|r| r.map_err(Into::into))
    }
}
