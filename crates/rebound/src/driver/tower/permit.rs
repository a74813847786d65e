//! The response future of layers that take a permit before calling and
//! report the call's outcome to it after: the
//! [breaker](crate::tower::breaker) and the [throttle](crate::tower::throttle).
//!
//! Both layers ask their policy for a permit in `call`. Refused, the future
//! fails at once with the refusal ([`BreakerOpen`](crate::BreakerOpen),
//! [`Throttled`](crate::throttle::Throttled)); admitted, it awaits the inner
//! call and tells the permit whether it succeeded: the classifier's
//! [`Decision::DoNotRetry`] is a success, anything else a failure. A
//! refusal from a rebound layer below says nothing about the dependency and
//! is not reported, and neither is a call dropped before it finished (the
//! permit's own `Drop` gives back whatever it held).
//!
//! Each layer names this future under its own name, e.g.
//! [`breaker::ResponseFuture`](crate::tower::breaker::ResponseFuture).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::classify::{Classifier, Decision, Outcome};
use crate::tower::{refusal, BoxError};

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::breaker::OwnedPermit {}
    impl Sealed for crate::throttle::ThrottlePermit {}
}

/// A permit that is told how the call it admitted ended. Implemented by
/// the breaker's [`OwnedPermit`](crate::breaker::OwnedPermit) and the
/// throttle's [`ThrottlePermit`](crate::throttle::ThrottlePermit); sealed.
pub trait OutcomePermit: sealed::Sealed {
    /// Reports the call: `true` if it succeeded (the classifier did not ask
    /// to retry it), `false` if it failed.
    fn report(self, success: bool);
}

impl OutcomePermit for crate::breaker::OwnedPermit {
    #[inline]
    fn report(self, success: bool) {
        use crate::breaker::CallOutcome;
        self.record(if success {
            CallOutcome::Success
        } else {
            CallOutcome::Failure
        });
    }
}

impl OutcomePermit for crate::throttle::ThrottlePermit {
    #[inline]
    fn report(self, success: bool) {
        if success {
            self.accepted();
        } else {
            self.rejected();
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, P, R> {
        Called { #[pin] fut: F, permit: Option<P> },
        Refused { refusal: Option<R> },
    }
}

pin_project! {
    /// A call admitted with a permit `P` (reported when it ends), or refused
    /// with `R`. See the [module docs](self).
    pub struct PermitFuture<F, C, P, R> {
        #[pin]
        kind: Kind<F, P, R>,
        classifier: Option<C>,
    }
}

impl<F, C, P, R> PermitFuture<F, C, P, R> {
    pub(crate) fn called(fut: F, permit: P, classifier: C) -> Self {
        PermitFuture {
            kind: Kind::Called {
                fut,
                permit: Some(permit),
            },
            classifier: Some(classifier),
        }
    }

    pub(crate) fn refused(refusal: R) -> Self {
        PermitFuture {
            kind: Kind::Refused {
                refusal: Some(refusal),
            },
            classifier: None,
        }
    }
}

impl<F, C, P, R> std::fmt::Debug for PermitFuture<F, C, P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Refused { .. } => "refused",
        };
        f.debug_struct("PermitFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<F, T, E, C, P, R> Future for PermitFuture<F, C, P, R>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classifier<T, BoxError>,
    P: OutcomePermit,
    R: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Refused { refusal } => {
                Poll::Ready(Err(refusal.take().expect("polled after completion").into()))
            }
            KindProj::Called { fut, permit } => {
                let result = match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r.map_err(Into::into),
                };
                if let (Some(permit), Some(c)) = (permit.take(), this.classifier.as_ref()) {
                    let outcome = match &result {
                        Ok(v) => Some(Outcome::Ok(v)),
                        // Says nothing about the dependency: the permit's
                        // drop gives back what it held.
                        Err(e) if refusal(&**e).is_some() => None,
                        Err(e) => Some(Outcome::Err(e)),
                    };
                    match outcome {
                        Some(o) => permit.report(c.classify(o) == Decision::DoNotRetry),
                        None => drop(permit),
                    }
                }
                Poll::Ready(result)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{ready, Ready};

    use super::*;
    use crate::breaker::{BreakerOpen, OwnedPermit, State};
    use crate::throttle::{AdaptiveThrottle, ThrottlePermit, Throttled};
    use crate::{Bulkhead, CircuitBreaker};

    type Answer = Ready<Result<u16, BoxError>>;

    fn statuses(o: Outcome<'_, u16, BoxError>) -> Decision {
        match o {
            Outcome::Ok(s) if *s >= 500 => Decision::Retry,
            Outcome::Ok(_) => Decision::DoNotRetry,
            _ => Decision::Retry,
        }
    }

    fn full() -> BoxError {
        let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
        let _held = b.try_acquire().unwrap();
        b.try_acquire().unwrap_err().into()
    }

    #[tokio::test]
    async fn the_breaker_permit_hears_the_classifier_and_not_refusals() {
        let cb = CircuitBreaker::consecutive_failures(1).build().unwrap();
        let call = |answer: Result<u16, BoxError>| {
            let permit = cb.try_acquire_owned().unwrap();
            PermitFuture::<Answer, _, OwnedPermit, BreakerOpen>::called(
                ready(answer),
                permit,
                statuses,
            )
        };
        // A refusal from below says nothing: still closed.
        assert!(call(Err(full())).await.is_err());
        assert_eq!(cb.state(), State::Closed);
        assert_eq!(call(Ok(200)).await.unwrap(), 200);
        assert_eq!(cb.state(), State::Closed);
        // A 503 is a failure: one opens this breaker.
        assert_eq!(call(Ok(503)).await.unwrap(), 503);
        assert_eq!(cb.state(), State::Open);
        let open = cb.try_acquire_owned().unwrap_err();
        let refused = PermitFuture::<
            Answer,
            fn(Outcome<'_, u16, BoxError>) -> Decision,
            OwnedPermit,
            _,
        >::refused(open);
        assert!(refused.await.unwrap_err().is::<BreakerOpen>());
    }

    #[tokio::test]
    async fn the_throttle_permit_hears_the_classifier_and_not_refusals() {
        let throttle = AdaptiveThrottle::builder().build().unwrap();
        let call = |answer: Result<u16, BoxError>| {
            let permit = throttle.try_acquire().unwrap();
            PermitFuture::<Answer, _, ThrottlePermit, Throttled>::called(
                ready(answer),
                permit,
                statuses,
            )
        };
        assert_eq!(call(Ok(200)).await.unwrap(), 200);
        assert_eq!(throttle.counts(), (1, 1));
        assert_eq!(call(Ok(503)).await.unwrap(), 503);
        assert_eq!(throttle.counts(), (2, 1), "a 503 is not an accept");
        assert!(call(Err(full())).await.is_err());
        assert_eq!(throttle.counts(), (3, 1));
    }
}
