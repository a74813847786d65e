use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::RetryFailed;
use super::Shared;
use crate::classify::{Classifier, Outcome};
use crate::retry::{Attempt, Next, RetryState, Stop};
use crate::tower::timeout::error::Elapsed;
use tokio::time::Sleep;

use crate::tower::{refusal, BoxError};

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] fut: F },
        Waiting,
        Readying,
        Refused { stop: Stop },
    }
}

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        svc: S,
        req: Option<Req>,
        shared: Arc<Shared<C>>,
        retry: RetryState,
        attempt: Option<Attempt>,
        last: Option<Result<S::Response, BoxError>>,
        #[pin]
        state: State<S::Future>,
        // Boxed, and only once a timer is needed (an attempt timeout or a
        // retry delay): a tokio `Sleep` is large, and a plain success path
        // should not carry or move one.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    Req: Clone,
{
    pub(crate) fn new(mut svc: S, req: Req, shared: Arc<Shared<C>>) -> Self {
        let policy = &shared.policy;
        let mut retry = policy.start();
        let (state, attempt, timer, req) = match retry.begin_attempt(policy) {
            Ok(a) => {
                // No copy is kept when there will be no second attempt.
                let (now, keep) = if policy.max_attempts() > 1 {
                    (req.clone(), Some(req))
                } else {
                    (req, None)
                };
                let timer = a.timeout().map(|d| Box::pin(tokio::time::sleep(d)));
                let fut = svc.call(now);
                (State::Calling { fut }, Some(a), timer, keep)
            }
            Err(stop) => {
                let stop = retry.abort(policy, stop);
                (State::Refused { stop }, None, None, None)
            }
        };
        ResponseFuture {
            svc,
            req,
            shared,
            retry,
            attempt,
            last: None,
            state,
            timer,
        }
    }
}

enum Got<T> {
    Value(T),
    Error(BoxError),
    TimedOut(Duration),
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
        let mut this = self.project();
        let policy = &this.shared.policy;
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let got = match fut.poll(cx) {
                        Poll::Ready(Ok(v)) => Got::Value(v),
                        Poll::Ready(Err(e)) => Got::Error(e.into()),
                        Poll::Pending => {
                            ready!(poll_timer(this.timer, cx));
                            let limit = this
                                .attempt
                                .as_ref()
                                .and_then(Attempt::timeout)
                                .unwrap_or_default();
                            Got::TimedOut(limit)
                        }
                    };
                    let attempt = this.attempt.take().expect("an attempt is in flight");
                    if let Got::Error(e) = &got {
                        if let Some(stop) = refusal(&**e) {
                            drop(attempt);
                            let stop = this.retry.abort(policy, stop);
                            let Got::Error(e) = got else { unreachable!() };
                            return Poll::Ready(Err(RetryFailed::new(
                                stop,
                                this.retry.attempts(),
                                Some(e),
                            )
                            .into()));
                        }
                    }
                    let outcome = match &got {
                        Got::Value(v) => Outcome::Ok(v),
                        Got::Error(e) => Outcome::Err(e),
                        Got::TimedOut(d) => Outcome::Timeout(*d),
                    };
                    let decision = this.shared.classifier.classify(outcome);
                    let next = this.retry.on_outcome(policy, attempt, outcome, decision);
                    let result = match got {
                        Got::Value(v) => Ok(v),
                        Got::Error(e) => Err(e),
                        Got::TimedOut(d) => Err(Elapsed::new(d).into()),
                    };
                    match next {
                        Next::Stop(stop) => {
                            return Poll::Ready(finish(stop, this.retry.attempts(), Some(result)))
                        }
                        Next::Retry { delay } => {
                            *this.last = Some(result);
                            arm(this.timer, Some(delay));
                            this.state.set(State::Waiting {});
                        }
                    }
                }
                StateProj::Waiting {} => {
                    ready!(poll_timer(this.timer, cx));
                    this.state.set(State::Readying {});
                }
                StateProj::Readying {} => {
                    if let Err(e) = ready!(this.svc.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    match this.retry.begin_attempt(policy) {
                        Ok(a) => {
                            arm(this.timer, a.timeout());
                            let req = this.req.clone().expect("kept for retries");
                            let fut = this.svc.call(req);
                            *this.attempt = Some(a);
                            this.state.set(State::Calling { fut });
                        }
                        Err(stop) => {
                            let stop = this.retry.abort(policy, stop);
                            return Poll::Ready(finish(
                                stop,
                                this.retry.attempts(),
                                this.last.take(),
                            ));
                        }
                    }
                }
                StateProj::Refused { stop } => {
                    return Poll::Ready(Err(RetryFailed::new(*stop, 0, None).into()))
                }
            }
        }
    }
}

/// The call's result when the layer stops: the last value if there was one
/// (even one the classifier wanted retried), else the reason and last error.
fn finish<T>(stop: Stop, attempts: u32, last: Option<Result<T, BoxError>>) -> Result<T, BoxError> {
    match last {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(RetryFailed::new(stop, attempts, Some(e)).into()),
        None => Err(RetryFailed::new(stop, attempts, None).into()),
    }
}

/// Sets the timer to fire after `d` (reusing its allocation), or turns it
/// off.
fn arm(timer: &mut Option<Pin<Box<Sleep>>>, d: Option<Duration>) {
    match (d, timer.as_mut()) {
        (Some(d), Some(t)) => t.as_mut().reset(tokio::time::Instant::now() + d),
        (Some(d), None) => *timer = Some(Box::pin(tokio::time::sleep(d))),
        (None, _) => *timer = None,
    }
}

/// Ready when the timer is set and expired; never when off.
fn poll_timer(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> Poll<()> {
    match timer.as_mut() {
        Some(t) => t.as_mut().poll(cx),
        None => Poll::Pending,
    }
}
