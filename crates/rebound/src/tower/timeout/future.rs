use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::error::Elapsed;
use crate::telemetry;
use crate::tower::BoxError;

pin_project! {
    /// The response future of [`Timeout`](super::Timeout).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        limit: Duration,
        dependency: Arc<str>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, sleep: Sleep, limit: Duration, dependency: Arc<str>) -> Self {
        ResponseFuture {
            inner,
            sleep,
            limit,
            dependency,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.inner.poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                telemetry::incr(telemetry::DEPENDENCY_TIMEOUT_TOTAL, this.dependency);
                tracing::debug!(
                    dependency = &**this.dependency,
                    after = ?this.limit,
                    "call timed out"
                );
                Poll::Ready(Err(Elapsed::new(*this.limit).into()))
            }
        }
    }
}
