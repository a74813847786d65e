//! A whole [`Pipeline`] as one tower layer.
//!
//! Each call runs the inner service through the pipeline's stages, in the
//! declared order, with the same code as
//! [`Pipeline::execute`](crate::pipeline::Pipeline::execute): each attempt
//! clones the request and a ready clone of the service. Errors are
//! [`RetryFailed`](crate::tower::retry::error::RetryFailed) (why the
//! pipeline stopped, attempts, the last error). The response future is
//! boxed (one allocation per call): the stages are chosen at run time.
//!
//! A pipeline with a hedge stage was declared
//! [`idempotent`](crate::pipeline::PipelineBuilder::idempotent), so every
//! request through this layer may be sent more than once at the same time,
//! each copy a clone of the request on a ready clone of the service. A
//! client that mixes idempotent requests with others says which are which
//! with [`PipelineLayer::idempotent_if`]: a request its predicate refuses is
//! sent once — no hedge copies, no retries (a transient failure stops with
//! [`Stop::NotRetryable`](crate::Stop::NotRetryable)) — through the same
//! timeouts, breaker, bulkhead and throttle.
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::pipeline::Pipeline;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let layer = Pipeline::standard().dependency("inventory").build()?.layer();
//! let (mock, mut handle) = tower_test::mock::pair::<&'static str, u32>();
//! let mut svc = layer.layer(mock);
//! handle.allow(1);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = tokio::spawn(svc.call("sku-1"));
//! let (_, reply) = handle.next_request().await.unwrap();
//! reply.send_response(7);
//! assert_eq!(call.await.unwrap()?, 7);
//! # Ok(()) }
//! ```

mod error;
mod future;
mod layer;

use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::PipelineLayer;

/// Which requests may be sent more than once (retried, hedged) through a
/// [`PipelineService`]; set with [`PipelineLayer::idempotent_if`].
/// Implemented by closures `Fn(&Req) -> bool` and by [`AllRequests`], the
/// default.
pub trait IdempotentRequests<Req> {
    /// Whether `req` may be sent more than once.
    fn is_idempotent(&self, req: &Req) -> bool;
}

/// Every request may be sent more than once: the default of
/// [`PipelineLayer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AllRequests;

impl<Req> IdempotentRequests<Req> for AllRequests {
    #[inline]
    fn is_idempotent(&self, _: &Req) -> bool {
        true
    }
}

impl<Req, F: Fn(&Req) -> bool> IdempotentRequests<Req> for F {
    #[inline]
    fn is_idempotent(&self, req: &Req) -> bool {
        self(req)
    }
}

use crate::classify::{Classifier, RetryErrors};
use crate::pipeline::Pipeline;
use crate::tower::BoxError;

/// Runs the inner service through a [`Pipeline`]. Made by
/// [`PipelineLayer`].
#[derive(Debug, Clone)]
pub struct PipelineService<S, C = RetryErrors, P = AllRequests> {
    inner: S,
    pipeline: Pipeline,
    classifier: C,
    idempotent: P,
}

impl<S, C> PipelineService<S, C> {
    /// Wraps `inner`; every request may be retried and hedged.
    pub fn new(inner: S, pipeline: Pipeline, classifier: C) -> Self {
        PipelineService::with_idempotent(inner, pipeline, classifier, AllRequests)
    }
}

impl<S, C, P> PipelineService<S, C, P> {
    /// Wraps `inner`; requests `idempotent` refuses are sent once (see
    /// [`PipelineLayer::idempotent_if`]).
    pub fn with_idempotent(inner: S, pipeline: Pipeline, classifier: C, idempotent: P) -> Self {
        PipelineService {
            inner,
            pipeline,
            classifier,
            idempotent,
        }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
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

impl<S, C, P, Req> Service<Req> for PipelineService<S, C, P>
where
    P: IdempotentRequests<Req>,
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

    fn call(&mut self, req: Req) -> Self::Future {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let once = !self.idempotent.is_idempotent(&req);
        ResponseFuture::new(&self.pipeline, self.classifier.clone(), ready, req, once)
    }
}
