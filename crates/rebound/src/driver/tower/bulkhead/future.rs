use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::bulkhead::{BulkheadFull, BulkheadPermit};
use crate::tower::BoxError;

type Acquire = Pin<Box<dyn Future<Output = Result<BulkheadPermit, BulkheadFull>> + Send>>;

pin_project! {
    #[project = KindProj]
    enum Kind<S, Req, F> {
        Queued { acquire: Acquire, svc: S, req: Option<Req> },
        Called { #[pin] fut: F, permit: Option<BulkheadPermit> },
    }
}

pin_project! {
    /// The response future of [`Bulkhead`](super::Bulkhead).
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        kind: Kind<S, Req, S::Future>,
    }
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(crate) fn called(fut: S::Future, permit: BulkheadPermit) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                fut,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn queued(svc: S, req: Req, bulkhead: crate::Bulkhead) -> Self {
        ResponseFuture {
            kind: Kind::Queued {
                acquire: Box::pin(async move { bulkhead.acquire().await }),
                svc,
                req: Some(req),
            },
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.kind.as_mut().project() {
                KindProj::Called { fut, permit } => {
                    let r = ready!(fut.poll(cx));
                    // Free the slot as soon as the call is over.
                    drop(permit.take());
                    return Poll::Ready(r.map_err(Into::into));
                }
                KindProj::Queued { acquire, svc, req } => {
                    let permit = match ready!(acquire.as_mut().poll(cx)) {
                        Ok(p) => p,
                        Err(full) => return Poll::Ready(Err(full.into())),
                    };
                    let fut = svc.call(req.take().expect("polled after completion"));
                    this.kind.set(Kind::Called {
                        fut,
                        permit: Some(permit),
                    });
                }
            }
        }
    }
}
