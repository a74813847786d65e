use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::breaker::{BreakerOpen, CallOutcome, OwnedPermit};
use crate::classify::{Classifier, Decision, Outcome};
use crate::tower::{refusal, BoxError};

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] fut: F, permit: Option<OwnedPermit> },
        Refused { open: Option<BreakerOpen> },
    }
}

pin_project! {
    /// The response future of [`Breaker`](super::Breaker).
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        classifier: Option<C>,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, permit: OwnedPermit, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                fut,
                permit: Some(permit),
            },
            classifier: Some(classifier),
        }
    }

    pub(crate) fn refused(open: BreakerOpen) -> Self {
        ResponseFuture {
            kind: Kind::Refused { open: Some(open) },
            classifier: None,
        }
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classifier<T, BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Refused { open } => {
                Poll::Ready(Err(open.take().expect("polled after completion").into()))
            }
            KindProj::Called { fut, permit } => {
                let result = match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r.map_err(Into::into),
                };
                if let (Some(permit), Some(c)) = (permit.take(), this.classifier.as_ref()) {
                    let outcome = match &result {
                        Ok(v) => Some(Outcome::Ok(v)),
                        Err(e) if refusal(&**e).is_some() => None,
                        Err(e) => Some(Outcome::Err(e)),
                    };
                    if let Some(outcome) = outcome {
                        permit.record(if c.classify(outcome) == Decision::DoNotRetry {
                            CallOutcome::Success
                        } else {
                            CallOutcome::Failure
                        });
                    }
                }
                Poll::Ready(result)
            }
        }
    }
}
