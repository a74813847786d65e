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
        #[pin]
        state: State<S::Future>,
        attempt: Option<Attempt>,
        retry: RetryState,
        shared: Arc<Shared<C>>,
        svc: S,
        req: Option<Req>,
        // Allocated once, and only when first needed (an attempt timeout, or
        // a failure to retry): a plain success path neither carries nor
        // moves a timer or a kept result.
        slow: Option<Pin<Box<Slow<S::Response>>>>,
    }
}

pin_project! {
    // The rarely used part of the future: the timer and the result kept
    // while waiting to retry.
    struct Slow<T> {
        #[pin]
        sleep: Sleep,
        // Off once the timer has fired and no new limit was set.
        armed: bool,
        last: Option<Result<T, BoxError>>,
    }
}

impl<T> Slow<T> {
    fn new(d: Duration) -> Self {
        Slow {
            sleep: tokio::time::sleep(d),
            armed: true,
            last: None,
        }
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    Req: Clone,
{
    #[inline]
    pub(crate) fn new(mut svc: S, req: Req, shared: Arc<Shared<C>>) -> Self {
        let policy = &shared.policy;
        // `RetryPolicy::start`, but inlinable across crates.
        let mut retry = RetryState::new(policy);
        match retry.begin_attempt(policy) {
            Ok(a) => {
                // No copy is kept when there will be no second attempt.
                let (now, keep) = if policy.max_attempts > 1 {
                    (req.clone(), Some(req))
                } else {
                    (req, None)
                };
                let slow = a.timeout().map(|d| Box::pin(Slow::new(d)));
                let fut = svc.call(now);
                ResponseFuture {
                    state: State::Calling { fut },
                    attempt: Some(a),
                    retry,
                    shared,
                    svc,
                    req: keep,
                    slow,
                }
            }
            Err(stop) => {
                let stop = retry.abort(policy, stop);
                ResponseFuture {
                    state: State::Refused { stop },
                    attempt: None,
                    retry,
                    shared,
                    svc,
                    req: None,
                    slow: None,
                }
            }
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

    #[inline]
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
                            ready!(poll_timer(this.slow, cx));
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
                            return Poll::Ready(Err(failed(stop, this.retry.attempts(), Some(e))));
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
                            return Poll::Ready(match result {
                                Ok(v) => Ok(v),
                                Err(e) => Err(failed(stop, this.retry.attempts(), Some(e))),
                            })
                        }
                        Next::Retry { delay } => {
                            arm(this.slow, Some(delay));
                            if let Some(slow) = this.slow.as_mut() {
                                *slow.as_mut().project().last = Some(result);
                            }
                            this.state.set(State::Waiting {});
                        }
                    }
                }
                StateProj::Waiting {} => {
                    ready!(poll_timer(this.slow, cx));
                    this.state.set(State::Readying {});
                }
                StateProj::Readying {} => {
                    if let Err(e) = ready!(this.svc.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    match this.retry.begin_attempt(policy) {
                        Ok(a) => {
                            arm(this.slow, a.timeout());
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
                                this.slow
                                    .as_mut()
                                    .and_then(|s| s.as_mut().project().last.take()),
                            ));
                        }
                    }
                }
                StateProj::Refused { stop } => return Poll::Ready(Err(failed(*stop, 0, None))),
            }
        }
    }
}

/// The call's result when the layer stops: the last value if there was one
/// (even one the classifier wanted retried), else the reason and last error.
fn finish<T>(stop: Stop, attempts: u32, last: Option<Result<T, BoxError>>) -> Result<T, BoxError> {
    match last {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(failed(stop, attempts, Some(e))),
        None => Err(failed(stop, attempts, None)),
    }
}

/// The layer's error when it gives up; out of line, off the success path.
#[cold]
#[inline(never)]
fn failed(stop: Stop, attempts: u32, last: Option<BoxError>) -> BoxError {
    RetryFailed::new(stop, attempts, last).into()
}

/// Sets the timer to fire after `d` (allocating it the first time only), or
/// turns it off.
fn arm<T>(slow: &mut Option<Pin<Box<Slow<T>>>>, d: Option<Duration>) {
    match (d, slow.as_mut()) {
        (Some(d), Some(s)) => {
            let s = s.as_mut().project();
            s.sleep.reset(tokio::time::Instant::now() + d);
            *s.armed = true;
        }
        (Some(d), None) => *slow = Some(Box::pin(Slow::new(d))),
        // Only ever after the timer fired (a retry delay), so nothing is
        // left registered with the timer driver.
        (None, Some(s)) => *s.as_mut().project().armed = false,
        (None, None) => {}
    }
}

/// Ready when the timer is armed and expired; never when off.
fn poll_timer<T>(slow: &mut Option<Pin<Box<Slow<T>>>>, cx: &mut Context<'_>) -> Poll<()> {
    match slow.as_mut() {
        Some(s) => {
            let s = s.as_mut().project();
            if *s.armed {
                s.sleep.poll(cx)
            } else {
                Poll::Pending
            }
        }
        None => Poll::Pending,
    }
}
