use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use super::{cause_of, Cause, Shared};
use crate::tower::BoxError;

pin_project! {
    /// The response future of [`Fallback`](super::Fallback).
    pub struct ResponseFuture<Fut, F> {
        #[pin]
        fut: Fut,
        shared: Arc<Shared<F>>,
    }
}

impl<Fut, F> ResponseFuture<Fut, F> {
    pub(crate) fn new(fut: Fut, shared: Arc<Shared<F>>) -> Self {
        ResponseFuture { fut, shared }
    }
}

impl<Fut, F, T, E> Future for ResponseFuture<Fut, F>
where
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    F: Fn(Cause, BoxError) -> Result<T, BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match ready!(this.fut.poll(cx)) {
            Ok(v) => Poll::Ready(Ok(v)),
            Err(e) => {
                let e = e.into();
                let cause = cause_of(&e);
                if !this.shared.fallback.covers(cause) {
                    return Poll::Ready(Err(e));
                }
                let answer = (this.shared.handler)(cause, e);
                if answer.is_ok() {
                    this.shared.fallback.record_use(cause);
                }
                Poll::Ready(answer)
            }
        }
    }
}
