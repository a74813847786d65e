use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::classify::Classifier;
use crate::driver::launch::Launch;
use crate::driver::pipeline::Runner;
use crate::pipeline::Pipeline;
use crate::retry::Failure;
use crate::tower::retry::error::RetryFailed;
use crate::tower::timeout::error::Elapsed;
use crate::tower::{BoxError, IntoBoxError};

pin_project! {
    /// The response future of [`PipelineService`](super::PipelineService):
    /// the pipeline driver, calling the inner service.
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        runner: Runner<S::Response, BoxError, IntoBoxError<S::Future>>,
        calls: Calls<S, Req>,
        classifier: C,
    }
}

/// Calls the inner service: the first call on the service that was made
/// ready, later ones on a clone made ready first.
struct Calls<S, Req> {
    ready: Option<S>,
    svc: S,
    req: Req,
}

impl<S, Req> Launch for Calls<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Copy = IntoBoxError<S::Future>;

    #[inline]
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Result<S::Response, BoxError>>> {
        if self.ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        self.svc
            .poll_ready(cx)
            .map(|r| r.map_err(|e| Err(e.into())))
    }

    #[inline]
    fn launch(&mut self) -> IntoBoxError<S::Future> {
        let fut = match &mut self.ready {
            Some(ready) => {
                let fut = ready.call(self.req.clone());
                self.ready = None;
                fut
            }
            None => self.svc.call(self.req.clone()),
        };
        IntoBoxError { fut }
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError>,
    Req: Clone,
{
    pub(crate) fn new(pipeline: &Pipeline, classifier: C, ready: S, req: Req, once: bool) -> Self {
        let svc = ready.clone();
        ResponseFuture {
            runner: Runner::new(pipeline, once, &classifier),
            calls: Calls {
                ready: Some(ready),
                svc,
                req,
            },
            classifier,
        }
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.runner.poll_run(cx, this.calls, &*this.classifier));
        Poll::Ready(out.map_err(|e| {
            let (stop, attempts) = (e.stop(), e.attempts());
            let last = match e.last {
                Some(Failure::Error(e)) => Some(e),
                Some(Failure::Timeout(d)) => Some(Elapsed::new(d).into()),
                None => None,
            };
            RetryFailed::new(stop, attempts, last).into()
        }))
    }
}
