use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::classify::{Classifier, Outcome, RetryErrors};
use crate::driver::hedge::Race;
use crate::driver::launch::Launch;
use crate::hedge::{HedgePolicy, Verdict};
use crate::tower::{refusal, BoxError, IntoBoxError};

pin_project! {
    /// The response future of [`Hedge`](super::Hedge).
    pub struct ResponseFuture<S, Req, C = RetryErrors>
    where
        S: Service<Req>,
    {
        #[pin]
        kind: Kind<S, Req, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, Req, C>
    where
        S: Service<Req>,
    {
        // A request sent once, straight through.
        Single { #[pin] fut: S::Future },
        // A request raced in copies by the hedge driver.
        Hedged {
            #[pin]
            race: Race<IntoBoxError<S::Future>, Result<S::Response, BoxError>>,
            // Boxed: the request, a service and a classifier are only
            // needed to send copies.
            hedging: Box<Hedging<S, Req, C>>,
        },
    }
}

/// What racing copies of a hedged request takes.
pub(crate) struct Hedging<S, Req, C> {
    copies: Copies<S, Req>,
    policy: Arc<HedgePolicy>,
    classifier: C,
}

/// Sends copies of a request.
pub(crate) struct Copies<S, Req> {
    svc: S,
    req: Req,
}

impl<S, Req> Launch for Copies<S, Req>
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
        self.svc
            .poll_ready(cx)
            .map(|r| r.map_err(|e| Err(e.into())))
    }

    #[inline]
    fn launch(&mut self) -> IntoBoxError<S::Future> {
        IntoBoxError {
            fut: self.svc.call(self.req.clone()),
        }
    }
}

/// The verdict on one copy's result.
fn judge<T, C: Classifier<T, BoxError>>(classifier: &C, r: &Result<T, BoxError>) -> Verdict {
    match r {
        Ok(v) => Verdict::of(classifier.classify(Outcome::Ok(v)), true),
        // A refusal from a rebound layer below (an open breaker, a full
        // bulkhead): another copy now would be refused too.
        Err(e) if refusal(&**e).is_some() => Verdict::Wait(None),
        Err(e) => Verdict::of(classifier.classify(Outcome::Err(e)), false),
    }
}

impl<S: Service<Req>, Req, C> ResponseFuture<S, Req, C> {
    pub(crate) fn single(fut: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Single { fut },
        }
    }

    pub(crate) fn hedged(
        fut: S::Future,
        svc: S,
        req: Req,
        policy: Arc<HedgePolicy>,
        classifier: C,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Hedged {
                race: Race::new(&policy, IntoBoxError { fut }, true),
                hedging: Box::new(Hedging {
                    copies: Copies { svc, req },
                    policy,
                    classifier,
                }),
            },
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
        match self.project().kind.project() {
            KindProj::Single { fut } => fut.poll(cx).map(|r| r.map_err(Into::into)),
            KindProj::Hedged { race, hedging } => {
                let Hedging {
                    copies,
                    policy,
                    classifier,
                } = &mut **hedging;
                race.poll_race(cx, policy, copies, |r| judge(&*classifier, r))
                    .map(|raced| raced.result)
            }
        }
    }
}
