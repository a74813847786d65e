use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::RetryFailed;
use super::SharedPolicy;
use crate::classify::{Classifier, Decision, Outcome};
use crate::clock::{self, Clock};
use crate::retry::{Attempt, Next, RetryPolicy, RetryState, Stop};
use crate::tower::timeout::error::Elapsed;
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
        policy: SharedPolicy,
        classifier: C,
        svc: S,
        req: Option<Req>,
        // What a plain call does without, allocated once and only when first
        // needed: by a guarded policy (one whose attempts are not plain), an attempt timeout
        // or a retry. A plain success neither builds, carries nor moves it,
        // so the future stays small (the caller moves it at least twice).
        rare: Option<Pin<Box<Rare<S::Response>>>>,
    }
}

pin_project! {
    // The rarely used part of the future.
    struct Rare<T> {
        // The call's sans-IO state; made before the first attempt under a
        // guarded policy, after it (only if needed) when attempts are plain.
        track: Option<Track>,
        #[pin]
        timer: Timer,
        // The result kept while waiting to retry.
        last: Option<Result<T, BoxError>>,
    }
}

impl<T> Rare<T> {
    /// Without the call's state: the first attempt of a call whose attempts
    /// are plain. Out of line: off the path of a call without a timer.
    #[inline(never)]
    fn untracked(clock: &Clock, timeout: Option<Duration>) -> Pin<Box<Self>> {
        Box::pin(Rare {
            track: None,
            timer: Timer::new(clock, timeout),
            last: None,
        })
    }
}

/// The retry state of one call and its attempt in flight.
struct Track {
    retry: RetryState,
    attempt: Option<Attempt>,
}

pin_project! {
    // A timer on the policy's clock, made on first use and re-armed after.
    #[project = TimerProj]
    enum Timer {
        Unset,
        Set {
            #[pin]
            timer: clock::Timer,
            // Off once the timer has fired and no new limit was set.
            armed: bool,
        },
    }
}

impl Timer {
    /// A timer racing the attempt, firing after `d` on `clock`, or none.
    fn new(clock: &Clock, d: Option<Duration>) -> Self {
        match d {
            Some(d) => Timer::Set {
                timer: clock.timer_after(d),
                armed: true,
            },
            None => Timer::Unset {},
        }
    }

    /// Sets the timer to fire after `d`: racing an attempt (`idle` false),
    /// or as the idle wait before a retry (`idle` true; see
    /// [`Clock::sleep`]); or turns it off.
    fn arm(mut self: Pin<&mut Self>, clock: &Clock, d: Option<Duration>, idle: bool) {
        match (d, self.as_mut().project()) {
            (Some(d), TimerProj::Set { timer, armed }) => {
                let now = clock.now();
                if idle {
                    timer.reset_idle(now, d);
                } else {
                    timer.reset_after(now, d);
                }
                *armed = true;
            }
            (Some(d), TimerProj::Unset {}) => {
                self.set(Timer::new(clock, Some(d)));
                if idle {
                    self.arm(clock, Some(d), true);
                }
            }
            // Only ever after the timer fired (a retry delay), so nothing is
            // left registered with the timer driver.
            (None, TimerProj::Set { armed, .. }) => *armed = false,
            (None, TimerProj::Unset {}) => {}
        }
    }

    /// Ready when armed and expired; never when off.
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project() {
            TimerProj::Set { timer, armed: true } => timer.poll(cx),
            _ => Poll::Pending,
        }
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    Req: Clone,
{
    #[inline(always)]
    pub(crate) fn new(svc: S, req: Req, policy: SharedPolicy, classifier: C) -> Self {
        if !policy.attempts_are_plain() {
            return Self::guarded(svc, req, policy, classifier);
        }
        // `RetryState::begin_attempt` for a first attempt under a policy
        // whose attempts are plain, without making the state.
        policy.record_request();
        let rare = policy
            .attempt_timeout
            .map(|d| Rare::untracked(&policy.clock, Some(d)));
        Self::calling(svc, req, policy, classifier, rare)
    }

    /// [`new`](Self::new) under a policy whose state must be made, and
    /// asked, before the first attempt. ([`Track::start`] written out: the
    /// large state is then built once, in place, not moved through a
    /// `Result`.) Out of line: the plain path stays small enough to inline
    /// into the caller.
    #[inline(never)]
    fn guarded(svc: S, req: Req, policy: SharedPolicy, classifier: C) -> Self {
        let mut retry = RetryState::new(&policy);
        match retry.begin_attempt(&policy) {
            Ok(a) => {
                let timer = Timer::new(&policy.clock, a.timeout());
                let rare = Box::pin(Rare {
                    track: Some(Track {
                        retry,
                        attempt: Some(a),
                    }),
                    timer,
                    last: None,
                });
                Self::calling(svc, req, policy, classifier, Some(rare))
            }
            Err(stop) => {
                let stop = retry.abort(&policy, stop);
                ResponseFuture {
                    state: State::Refused { stop },
                    policy,
                    classifier,
                    svc,
                    req: None,
                    rare: None,
                }
            }
        }
    }

    /// Makes the first attempt.
    #[inline(always)]
    fn calling(
        mut svc: S,
        req: Req,
        policy: SharedPolicy,
        classifier: C,
        rare: Option<Pin<Box<Rare<S::Response>>>>,
    ) -> Self {
        // No copy is kept when there will be no second attempt.
        let (now, keep) = if policy.max_attempts > 1 {
            (req.clone(), Some(req))
        } else {
            (req, None)
        };
        let fut = svc.call(now);
        ResponseFuture {
            state: State::Calling { fut },
            policy,
            classifier,
            svc,
            req: keep,
            rare,
        }
    }
}

/// What an attempt produced.
enum Got<T> {
    Value(T),
    Error(BoxError),
    /// Cut off by the attempt's timeout.
    TimedOut,
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
        let policy: &RetryPolicy = this.policy;
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let (got, decision) = match fut.poll(cx) {
                        Poll::Ready(Ok(v)) => {
                            let decision = this.classifier.classify(Outcome::Ok(&v));
                            if decision == Decision::DoNotRetry
                                && this.rare.as_ref().is_none_or(|r| r.track.is_none())
                            {
                                // The first attempt of a call whose attempts
                                // are plain, accepted, with no state made.
                                RetryState::plain_success(policy);
                                return Poll::Ready(Ok(v));
                            }
                            (Got::Value(v), Some(decision))
                        }
                        Poll::Ready(Err(e)) => (Got::Error(e.into()), None),
                        Poll::Pending => match this.rare.as_mut() {
                            Some(r) => {
                                ready!(r.as_mut().project().timer.poll_expired(cx));
                                (Got::TimedOut, None)
                            }
                            None => return Poll::Pending,
                        },
                    };
                    if let Some(r) = settle(policy, this.classifier, this.rare, got, decision) {
                        return Poll::Ready(r);
                    }
                    this.state.set(State::Waiting {});
                }
                StateProj::Waiting {} => {
                    let rare = this.rare.as_mut().expect("made before a retry");
                    ready!(rare.as_mut().project().timer.poll_expired(cx));
                    this.state.set(State::Readying {});
                }
                StateProj::Readying {} => {
                    if let Err(e) = ready!(this.svc.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    let rare = this.rare.as_mut().expect("made before a retry");
                    let rare = rare.as_mut().project();
                    let track = rare.track.as_mut().expect("made before a retry");
                    match track.retry.begin_attempt(policy) {
                        Ok(a) => {
                            rare.timer.arm(&policy.clock, a.timeout(), false);
                            let req = this.req.clone().expect("kept for retries");
                            let fut = this.svc.call(req);
                            track.attempt = Some(a);
                            this.state.set(State::Calling { fut });
                        }
                        Err(stop) => {
                            let stop = track.retry.abort(policy, stop);
                            let attempts = track.retry.attempts();
                            return Poll::Ready(finish(stop, attempts, rare.last.take()));
                        }
                    }
                }
                StateProj::Refused { stop } => return Poll::Ready(Err(failed(*stop, 0, None))),
            }
        }
    }
}

/// Reports what an attempt produced to the call's state (made here, for
/// a plain first attempt): the call's result when it stops, or
/// `None` with the timer armed for the retry delay and the result kept.
/// `decision` is the classifier's answer for a value, already asked; an
/// error or a timeout is classified here, after the refusal check. A plain
/// success never comes here.
#[inline]
fn settle<T, C: Classifier<T, BoxError>>(
    policy: &RetryPolicy,
    classifier: &C,
    rare: &mut Option<Pin<Box<Rare<T>>>>,
    got: Got<T>,
    decision: Option<Decision>,
) -> Option<Result<T, BoxError>> {
    let rare = rare.get_or_insert_with(|| Rare::untracked(&policy.clock, None));
    let rare = rare.as_mut().project();
    // The state of a call whose attempts are plain, made as it would have
    // been before its first attempt.
    let track = rare.track.get_or_insert_with(|| {
        let (retry, attempt) = RetryState::after_plain_first_attempt(policy);
        Track {
            retry,
            attempt: Some(attempt),
        }
    });
    let attempt = track.attempt.take().expect("an attempt is in flight");
    // The limit that ran out, if one did: the one the attempt was given.
    let limit = attempt.timeout().unwrap_or_default();
    if let Got::Error(e) = &got {
        if let Some(stop) = refusal(&**e) {
            drop(attempt);
            let stop = track.retry.abort(policy, stop);
            let Got::Error(e) = got else { unreachable!() };
            return Some(Err(failed(stop, track.retry.attempts(), Some(e))));
        }
    }
    let outcome = || match &got {
        Got::Value(v) => Outcome::Ok(v),
        Got::Error(e) => Outcome::Err(e),
        Got::TimedOut => Outcome::Timeout(limit),
    };
    let decision = decision.unwrap_or_else(|| classifier.classify(outcome()));
    let next = track.retry.on_outcome(policy, attempt, outcome(), decision);
    let result = match got {
        Got::Value(v) => Ok(v),
        Got::Error(e) => Err(e),
        Got::TimedOut => Err(Elapsed::new(limit).into()),
    };
    match next {
        Next::Stop(stop) => Some(match result {
            Ok(v) => Ok(v),
            Err(e) => Err(failed(stop, track.retry.attempts(), Some(e))),
        }),
        Next::Retry { delay } => {
            rare.timer.arm(&policy.clock, Some(delay), true);
            *rare.last = Some(result);
            None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BudgetSnapshot, CircuitBreaker, Clock, RetryBudget};

    /// Making a plain call's state after its first attempt must give what
    /// making it before would have, without telling the budget twice.
    #[test]
    fn a_plain_state_is_the_same_made_late() {
        let (clock, time) = Clock::manual();
        let budget = RetryBudget::ratio(0.1)
            .clock(clock.clone())
            .build()
            .unwrap();
        let policy = RetryPolicy::builder()
            .attempt_timeout(Duration::from_millis(250))
            .budget(budget.clone())
            .clock(clock)
            .build()
            .unwrap();
        assert!(policy.attempts_are_plain());
        let mut early = policy.start();
        let early_attempt = early.begin_attempt(&policy).unwrap();
        let requests = |b: &RetryBudget| match b.snapshot() {
            BudgetSnapshot::Ratio { requests, .. } => requests,
            other => panic!("{other:?}"),
        };
        assert_eq!(requests(&budget), 1);
        time.advance(Duration::from_secs(5));
        let (late, late_attempt) = RetryState::after_plain_first_attempt(&policy);
        assert_eq!(requests(&budget), 1, "the request is recorded once");
        assert_eq!(format!("{early:?}"), format!("{late:?}"));
        assert_eq!(format!("{early_attempt:?}"), format!("{late_attempt:?}"));
        assert_eq!(late_attempt.number(), 1);
        assert_eq!(late_attempt.timeout(), policy.attempt_timeout());
        assert!(late.deadline().is_none());
    }

    #[test]
    fn a_deadline_breaker_or_throttle_makes_attempts_guarded() {
        let guarded = [
            RetryPolicy::builder().total_timeout(Duration::from_secs(1)),
            RetryPolicy::builder().breaker(CircuitBreaker::builder().build().unwrap()),
            RetryPolicy::builder().throttle(
                crate::throttle::AdaptiveThrottle::builder()
                    .build()
                    .unwrap(),
            ),
        ];
        for b in guarded {
            assert!(!b.build().unwrap().attempts_are_plain());
        }
        assert!(RetryPolicy::default().attempts_are_plain());
        let with_budget = RetryPolicy::builder()
            .budget(RetryBudget::ratio(0.1).build().unwrap())
            .build()
            .unwrap();
        assert!(
            with_budget.attempts_are_plain(),
            "a budget refuses no attempt"
        );
    }
}
