use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::classify::Classifier;
use crate::pipeline::Pipeline;
use crate::retry::Failure;
use crate::tower::retry::error::RetryFailed;
use crate::tower::timeout::error::Elapsed;
use crate::tower::BoxError;

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

pin_project! {
    /// The response future of [`PipelineService`](super::PipelineService).
    pub struct ResponseFuture<T> {
        inner: Boxed<T>,
    }
}

pub(crate) fn run<S, C, Req>(
    pipeline: Pipeline,
    classifier: C,
    svc: S,
    req: Req,
    once: bool,
) -> ResponseFuture<S::Response>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError> + Send + Sync + 'static,
    Req: Clone + Send + 'static,
{
    let inner = Box::pin(async move {
        // The first attempt uses the service that was made ready.
        let mut first = Some(svc.clone());
        let mut classified = pipeline.classify(classifier);
        if once {
            classified = classified.forbid_retries();
        }
        let result = classified
            .execute(move || {
                let mut svc = first.take().unwrap_or_else(|| svc.clone());
                let req = req.clone();
                async move {
                    std::future::poll_fn(|cx| svc.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                    svc.call(req).await.map_err(Into::into)
                }
            })
            .await;
        result.map_err(|e| {
            let (stop, attempts) = (e.stop(), e.attempts());
            let last = match e.last {
                Some(Failure::Error(e)) => Some(e),
                Some(Failure::Timeout(d)) => Some(Elapsed::new(d).into()),
                None => None,
            };
            RetryFailed::new(stop, attempts, last).into()
        })
    });
    ResponseFuture { inner }
}

impl<T> Future for ResponseFuture<T> {
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.as_mut().poll(cx)
    }
}
