//! The sans-IO retry state machine; see [`RetryState`].

use std::time::{Duration, Instant};

use crate::backoff::BackoffState;
use crate::classify::{Classifier, Decision, Outcome};
use crate::policy::score::{Admission, Score};
use crate::retry::{Attempt, Failure, Next, RetryPolicy, Stop};

/// One call's progress through a [`RetryPolicy`]: the retry decision as a
/// plain state machine (sans-IO).
///
/// [`RetryState`] never sleeps, spawns or calls anything: given what an
/// attempt produced, it answers "start an attempt?" and "retry, after how
/// long?". It reads the time from the policy's injected
/// [`Clock`](crate::Clock), and only when a decision depends on it (a
/// deadline or a breaker is set), so a plain success path costs no clock
/// read at all. The async and blocking executors, the tower layer, the HTTP
/// middleware and the simulator all drive this one type, so they cannot
/// disagree about a policy.
///
/// ```
/// use std::time::Duration;
/// use rebound::{Clock, Decision, Next, Outcome, RetryPolicy, Stop};
///
/// let (clock, time) = Clock::manual();
/// let policy = RetryPolicy::builder().max_attempts(2).clock(clock).build().unwrap();
/// let mut state = policy.start();
///
/// let attempt = state.begin_attempt(&policy).unwrap();
/// let failed: Outcome<'_, (), &str> = Outcome::Err(&"reset");
/// let Next::Retry { delay } = state.on_outcome(&policy, attempt, failed, Decision::Retry) else {
///     panic!("first failure is retried");
/// };
/// time.advance(delay); // a driver sleeps here
///
/// let attempt = state.begin_attempt(&policy).unwrap();
/// let next = state.on_outcome(&policy, attempt, failed, Decision::Retry);
/// assert_eq!(next, Next::Stop(Stop::AttemptsExhausted));
/// ```
#[derive(Debug)]
pub struct RetryState {
    deadline: Option<Instant>,
    attempts: u32,
    backoff: BackoffState,
    rng: Option<fastrand::Rng>,
    retries_forbidden: bool,
}

impl RetryPolicy {
    /// Whether starting an attempt consults nothing that can refuse it or
    /// must be held while it runs — no total timeout (deadline), adaptive
    /// throttle or circuit breaker — so it only counts the attempt (and a
    /// first one's request to the budget) and hands out the attempt
    /// timeout.
    #[inline]
    pub(crate) fn attempts_are_plain(&self) -> bool {
        self.total_timeout.is_none() && self.throttle.is_none() && self.breaker.is_none()
    }

    /// What starting a call's first attempt tells the budget.
    #[inline]
    pub(crate) fn record_request(&self) {
        if let Some(b) = &self.budget {
            b.record_request();
        }
    }
}

/// Tells the policy's budget of a call's first attempt; out of line, so
/// the plain path of [`RetryState::begin_attempt`] stays small.
#[inline(never)]
fn record_request(policy: &RetryPolicy) {
    policy.record_request();
}

impl RetryState {
    /// A new call starting now (on the policy's clock).
    #[inline]
    pub fn new(policy: &RetryPolicy) -> Self {
        RetryState {
            deadline: policy
                .total_timeout
                .and_then(|t| policy.clock.now().checked_add(t)),
            attempts: 0,
            backoff: BackoffState::new(),
            rng: None,
            retries_forbidden: false,
        }
    }

    /// Forbids retrying this call: a transient failure then stops it with
    /// [`Stop::NotRetryable`] instead of retrying. Everything else is as
    /// usual — the first attempt is admitted, timed and recorded (breaker,
    /// budget, throttle) like any other.
    ///
    /// For a call the caller knows must not be sent twice, such as a `POST`
    /// without an idempotency key, under a policy shared with calls that
    /// may be retried.
    ///
    /// ```
    /// use rebound::{Decision, Next, Outcome, RetryPolicy, Stop};
    ///
    /// let policy = RetryPolicy::builder().build().unwrap();
    /// let mut state = policy.start();
    /// state.forbid_retries();
    /// let attempt = state.begin_attempt(&policy).unwrap();
    /// assert!(attempt.is_last());
    /// let reset: Outcome<'_, (), &str> = Outcome::Err(&"connection reset");
    /// let next = state.on_outcome(&policy, attempt, reset, Decision::Retry);
    /// assert_eq!(next, Next::Stop(Stop::NotRetryable));
    /// ```
    pub fn forbid_retries(&mut self) {
        self.retries_forbidden = true;
    }

    /// Whether [`forbid_retries`](Self::forbid_retries) was called: the
    /// attempt in flight is the last.
    pub fn retries_forbidden(&self) -> bool {
        self.retries_forbidden
    }

    /// Attempts started so far.
    #[inline]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the total timeout runs out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Asks to start the next attempt.
    ///
    /// Refuses with [`Stop::DeadlineExceeded`] when the total timeout has
    /// run out, with [`Stop::Throttled`] when the policy's adaptive throttle
    /// sheds the attempt, and with [`Stop::BreakerOpen`] when its circuit
    /// breaker refuses it.
    #[inline]
    pub fn begin_attempt(&mut self, policy: &RetryPolicy) -> Result<Attempt, Stop> {
        // Nothing to consult (no deadline, throttle or breaker; a budget is
        // only told of the request): the same answer as the full path
        // below, small enough to inline.
        if policy.attempts_are_plain() {
            self.attempts += 1;
            if self.attempts == 1 && policy.budget.is_some() {
                record_request(policy);
            }
            return Ok(Attempt::plain(
                policy,
                self.attempts,
                self.retries_forbidden,
            ));
        }
        self.begin_guarded_attempt(policy)
    }

    /// The state of a call under a policy whose [attempts are
    /// plain](RetryPolicy::attempts_are_plain), and its first attempt, as
    /// [`begin_attempt`](Self::begin_attempt) would have made them — for a
    /// driver that started the first attempt without a state
    /// ([`RetryPolicy::record_request`] called) and needs one only once the
    /// attempt did not succeed.
    #[cfg(feature = "tower")]
    pub(crate) fn after_plain_first_attempt(policy: &RetryPolicy) -> (Self, Attempt) {
        debug_assert!(policy.attempts_are_plain());
        let mut state = RetryState::new(policy);
        state.attempts = 1;
        (state, Attempt::plain(policy, 1, false))
    }

    /// [`begin_attempt`](Self::begin_attempt) when a deadline, throttle,
    /// breaker or budget must be consulted.
    #[inline(never)]
    fn begin_guarded_attempt(&mut self, policy: &RetryPolicy) -> Result<Attempt, Stop> {
        let remaining = match self.deadline {
            Some(d) => match d.checked_duration_since(policy.clock.now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => {
                    return Err(Stop::DeadlineExceeded {
                        requested_delay: None,
                    })
                }
            },
            None => None,
        };
        let admission = Admission::ask(policy.throttle.as_ref(), policy.breaker.as_ref())?;
        self.attempts += 1;
        if self.attempts == 1 {
            policy.record_request();
        }
        let limit = match (policy.attempt_timeout, remaining) {
            (Some(a), Some(r)) if r < a => (Some(r), true),
            (Some(a), _) => (Some(a), false),
            (None, Some(r)) => (Some(r), true),
            (None, None) => (None, false),
        };
        Ok(Attempt::new(
            policy,
            self.attempts,
            limit,
            admission,
            self.retries_forbidden,
        ))
    }

    /// What a first attempt admitted without a state (under a policy whose
    /// [attempts are plain](RetryPolicy::attempts_are_plain)) and accepted
    /// tells the budget: [`on_outcome`](Self::on_outcome)'s answer for it,
    /// for a driver that made no state.
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn plain_success(policy: &RetryPolicy) -> Stop {
        Score::of::<(), ()>(&Outcome::Ok(&()), Decision::DoNotRetry)
            .record_budget(policy.budget.as_ref());
        Stop::Succeeded
    }

    /// Classifies what `attempt` produced with `classifier` and reports it
    /// ([`on_outcome`](Self::on_outcome)); returns the answer and the
    /// classifier's decision. The step every driver takes after an attempt.
    #[inline]
    pub fn on_result<T, E, C: Classifier<T, E>>(
        &mut self,
        policy: &RetryPolicy,
        attempt: Attempt,
        result: &Result<T, Failure<E>>,
        classifier: &C,
    ) -> (Next, Decision) {
        let outcome = Outcome::of(result);
        let decision = classifier.classify(outcome);
        (
            self.on_outcome(policy, attempt, outcome, decision),
            decision,
        )
    }

    /// Reports what `attempt` produced and what the classifier
    /// decided about it; answers whether and when to retry.
    ///
    /// The outcome is first scored for the breaker, throttle and budget
    /// (one rule for every driver; see `CallOutcome`). Order of checks on a
    /// transient failure: attempts left → breaker not open → server delay
    /// within `max_server_delay` → delay fits before the deadline → budget.
    /// The budget is asked last, so a retry that would not happen anyway
    /// does not spend it.
    #[inline]
    pub fn on_outcome<T, E>(
        &mut self,
        policy: &RetryPolicy,
        attempt: Attempt,
        outcome: Outcome<'_, T, E>,
        decision: Decision,
    ) -> Next {
        // A first attempt accepted with nothing to tell (no breaker or
        // throttle, no budget that counts outcomes): the full path's answer,
        // small enough to inline into every driver.
        if decision == Decision::DoNotRetry
            && matches!(outcome, Outcome::Ok(_))
            && attempt.number == 1
            && attempt.admission.is_empty()
            && policy.budget.as_ref().is_none_or(|b| !b.counts_outcomes())
        {
            // It holds no permit, so there is nothing to release; skipping
            // its drop glue keeps this path free of calls.
            std::mem::forget(attempt);
            return Next::Stop(Stop::Succeeded);
        }
        self.on_any_outcome(policy, attempt, outcome, decision)
    }

    /// [`on_outcome`](Self::on_outcome) in full, out of line.
    #[inline(never)]
    fn on_any_outcome<T, E>(
        &mut self,
        policy: &RetryPolicy,
        attempt: Attempt,
        outcome: Outcome<'_, T, E>,
        decision: Decision,
    ) -> Next {
        let dep = &policy.dependency;
        let number = attempt.number;
        let cut_by_deadline = attempt.cut_by_deadline();
        // Scored before deciding, so an outcome that opens the breaker
        // stops this call too.
        let score = Score::of(&outcome, decision);
        attempt.admission.record(score.call);
        score.record_budget(policy.budget.as_ref());
        if let Outcome::Timeout(after) = outcome {
            policy.metrics.timeouts.incr();
            tracing::debug!(
                dependency = &**dep,
                attempt = number,
                ?after,
                "attempt timed out"
            );
        }
        let requested = match decision {
            Decision::DoNotRetry => {
                return match outcome {
                    Outcome::Ok(_) => {
                        if number > 1 {
                            tracing::debug!(
                                dependency = &**dep,
                                attempts = number,
                                "succeeded after retries"
                            );
                        }
                        Next::Stop(Stop::Succeeded)
                    }
                    _ => {
                        tracing::debug!(
                            dependency = &**dep,
                            attempt = number,
                            "permanent failure, not retrying"
                        );
                        Next::Stop(Stop::Permanent)
                    }
                };
            }
            Decision::Retry => None,
            Decision::RetryAfter(d) => Some(d),
        };
        if self.retries_forbidden {
            // The caller's decision, not the policy giving up: like a
            // permanent failure, not counted as exhausted.
            tracing::debug!(
                dependency = &**dep,
                attempt = number,
                "transient failure, retries forbidden for this call"
            );
            return Next::Stop(Stop::NotRetryable);
        }
        let give_up = |stop: Stop| Next::Stop(policy.give_up(number, stop));
        if number >= policy.max_attempts {
            return give_up(Stop::AttemptsExhausted);
        }
        if policy
            .breaker
            .as_ref()
            .is_some_and(|cb| cb.state().is_refusing())
        {
            return give_up(Stop::BreakerOpen);
        }
        if cut_by_deadline && matches!(outcome, Outcome::Timeout(_)) {
            return give_up(Stop::DeadlineExceeded {
                requested_delay: None,
            });
        }
        let rng = self.rng.get_or_insert_with(|| policy.random.rng());
        let mut delay = policy.backoff.next_delay(&mut self.backoff, rng);
        if let Some(req) = requested {
            if req > policy.max_server_delay {
                return give_up(Stop::Throttled {
                    retry_after: Some(req),
                });
            }
            delay = delay.max(req);
        }
        if let Some(deadline) = self.deadline {
            if !Self::fits(policy.clock.now(), delay, deadline) {
                return give_up(Stop::DeadlineExceeded {
                    requested_delay: requested,
                });
            }
        }
        if let Some(b) = &policy.budget {
            if !b.try_withdraw() {
                policy.metrics.budget_exhausted.incr();
                return give_up(Stop::BudgetExhausted);
            }
        }
        policy.metrics.retries.incr();
        tracing::debug!(
            dependency = &**dep,
            attempt = number,
            ?delay,
            "retrying after transient failure"
        );
        Next::Retry { delay }
    }

    /// Whether a wait of `delay` from `now` ends before `deadline`: a retry
    /// that would start at or after it is not made (fail fast).
    #[inline]
    pub(crate) fn fits(now: Instant, delay: Duration, deadline: Instant) -> bool {
        now.checked_add(delay).is_some_and(|t| t < deadline)
    }

    /// Ends the call early with `stop` (a driver-side refusal such as a full
    /// bulkhead, or a deadline outside the policy), emitting the same
    /// telemetry as any other give-up.
    pub fn abort(&mut self, policy: &RetryPolicy, stop: Stop) -> Stop {
        if self.attempts > 0 {
            policy.give_up(self.attempts, stop)
        } else {
            stop
        }
    }
}

impl RetryPolicy {
    /// Counts and logs a give-up after `attempts` attempts.
    fn give_up(&self, attempts: u32, stop: Stop) -> Stop {
        self.metrics.exhausted[stop.index()].incr();
        tracing::info!(
            dependency = &*self.dependency,
            attempts,
            reason = stop.as_str(),
            "giving up: {stop}"
        );
        stop
    }
}

impl<'a, T, E> Outcome<'a, T, E> {
    /// The outcome a driver's result shows a classifier.
    #[inline]
    pub fn of(result: &'a Result<T, Failure<E>>) -> Self {
        match result {
            Ok(v) => Outcome::Ok(v),
            Err(Failure::Error(e)) => Outcome::Err(e),
            Err(Failure::Timeout(d)) => Outcome::Timeout(*d),
        }
    }
}
