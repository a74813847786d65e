//! The sans-IO retry state machine; see [`RetryState`].

use std::time::{Duration, Instant};

use crate::backoff::BackoffState;
use crate::breaker::{CallOutcome, OwnedPermit};
use crate::classify::{Decision, Outcome};
use crate::retry::{RetryPolicy, Stop};
use crate::throttle::ThrottlePermit;

/// What to do after an attempt: retry after a delay, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait `delay`, then start the next attempt.
    Retry {
        /// How long to wait.
        delay: Duration,
    },
    /// Stop calling.
    Stop(Stop),
}

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

/// A started attempt: hand it back to [`RetryState::on_outcome`].
///
/// Dropping it without an outcome (the attempt was cancelled) is fine: any
/// permit it holds is released.
#[derive(Debug)]
#[must_use = "pass the attempt back to RetryState::on_outcome"]
pub struct Attempt {
    number: u32,
    timeout: Option<Duration>,
    cut_by_deadline: bool,
    /// The breaker's permit; it measures the attempt's duration from when it
    /// was granted, and dropping it unreported frees a half-open probe slot.
    permit: Option<OwnedPermit>,
    /// The adaptive throttle's permit: told whether the backend accepted.
    throttle: Option<ThrottlePermit>,
}

impl Attempt {
    /// Attempt `number` under a policy whose attempts are plain: the
    /// policy's attempt timeout, no permits.
    #[inline]
    fn plain(policy: &RetryPolicy, number: u32) -> Self {
        Attempt {
            number,
            timeout: policy.attempt_timeout,
            cut_by_deadline: false,
            permit: None,
            throttle: None,
        }
    }

    /// The attempt's number, 1 for the first.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// How long the attempt may run: the per-attempt timeout or what is left
    /// of the total timeout, whichever is shorter; `None` for no limit.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether [`timeout`](Self::timeout) is the rest of the total timeout
    /// rather than the per-attempt timeout.
    pub fn cut_by_deadline(&self) -> bool {
        self.cut_by_deadline
    }
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

    /// What an accepted attempt tells the budget.
    #[inline]
    pub(crate) fn record_success(&self) {
        if let Some(b) = &self.budget {
            b.record_success();
        }
    }
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
        // Nothing to consult (no deadline, throttle, breaker or budget): the
        // same answer as the full path below, small enough to inline.
        if policy.attempts_are_plain() && policy.budget.is_none() {
            self.attempts += 1;
            return Ok(Attempt::plain(policy, self.attempts));
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
        (state, Attempt::plain(policy, 1))
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
        let throttle = match &policy.throttle {
            Some(t) => Some(
                t.try_acquire()
                    .map_err(|_| Stop::Throttled { retry_after: None })?,
            ),
            None => None,
        };
        let permit = match &policy.breaker {
            Some(cb) => Some(cb.try_acquire_owned().map_err(|_| Stop::BreakerOpen)?),
            None => None,
        };
        self.attempts += 1;
        if self.attempts == 1 {
            policy.record_request();
        }
        let (timeout, cut_by_deadline) = match (policy.attempt_timeout, remaining) {
            (Some(a), Some(r)) if r < a => (Some(r), true),
            (Some(a), _) => (Some(a), false),
            (None, Some(r)) => (Some(r), true),
            (None, None) => (None, false),
        };
        Ok(Attempt {
            number: self.attempts,
            timeout,
            cut_by_deadline,
            permit,
            throttle,
        })
    }

    /// Reports what `attempt` produced and what the classifier
    /// decided about it; answers whether and when to retry.
    ///
    /// With a circuit breaker, the outcome is recorded to it first.
    /// Order of checks on a transient failure: attempts left → breaker not
    /// open → server delay
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
        // A first attempt accepted with nothing to tell (no breaker,
        // throttle or budget): the full path's answer, small enough to
        // inline into every driver.
        if decision == Decision::DoNotRetry
            && matches!(outcome, Outcome::Ok(_))
            && attempt.number == 1
            && attempt.permit.is_none()
            && attempt.throttle.is_none()
            && policy.budget.is_none()
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
        mut attempt: Attempt,
        outcome: Outcome<'_, T, E>,
        decision: Decision,
    ) -> Next {
        let dep = &policy.dependency;
        if let Some(permit) = attempt.permit.take() {
            // Recorded before deciding, so an outcome that opens the breaker
            // stops this call too.
            let failed = decision != Decision::DoNotRetry || matches!(outcome, Outcome::Timeout(_));
            permit.record(if failed {
                CallOutcome::Failure
            } else {
                CallOutcome::Success
            });
        }
        if let Some(permit) = attempt.throttle.take() {
            // Anything but a transient failure means the backend took the
            // request (SRE adaptive throttling counts "accepts").
            if decision == Decision::DoNotRetry && !matches!(outcome, Outcome::Timeout(_)) {
                permit.accepted();
            } else {
                permit.rejected();
            }
        }
        if let Outcome::Timeout(after) = outcome {
            policy.metrics.timeouts.incr();
            tracing::debug!(
                dependency = &**dep,
                attempt = attempt.number,
                ?after,
                "attempt timed out"
            );
        }
        let requested = match decision {
            Decision::DoNotRetry => {
                return match outcome {
                    Outcome::Ok(_) => {
                        policy.record_success();
                        if attempt.number > 1 {
                            tracing::debug!(
                                dependency = &**dep,
                                attempts = attempt.number,
                                "succeeded after retries"
                            );
                        }
                        Next::Stop(Stop::Succeeded)
                    }
                    _ => {
                        tracing::debug!(
                            dependency = &**dep,
                            attempt = attempt.number,
                            "permanent failure, not retrying"
                        );
                        Next::Stop(Stop::Permanent)
                    }
                };
            }
            Decision::Retry => None,
            Decision::RetryAfter(d) => Some(d),
        };
        if let Some(b) = &policy.budget {
            b.record_failure();
        }
        if self.retries_forbidden {
            // The caller's decision, not the policy giving up: like a
            // permanent failure, not counted as exhausted.
            tracing::debug!(
                dependency = &**dep,
                attempt = attempt.number,
                "transient failure, retries forbidden for this call"
            );
            return Next::Stop(Stop::NotRetryable);
        }
        let give_up = |stop: Stop| {
            policy.metrics.exhausted[stop.index()].incr();
            tracing::info!(
                dependency = &**dep,
                attempts = attempt.number,
                reason = stop.as_str(),
                "giving up: {stop}"
            );
            Next::Stop(stop)
        };
        if attempt.number >= policy.max_attempts {
            return give_up(Stop::AttemptsExhausted);
        }
        if policy
            .breaker
            .as_ref()
            .is_some_and(|cb| cb.state().is_refusing())
        {
            return give_up(Stop::BreakerOpen);
        }
        if attempt.cut_by_deadline && matches!(outcome, Outcome::Timeout(_)) {
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
            let now = policy.clock.now();
            if now.checked_add(delay).is_none_or(|t| t >= deadline) {
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
            attempt = attempt.number,
            ?delay,
            "retrying after transient failure"
        );
        Next::Retry { delay }
    }

    /// Ends the call early with `stop` (a driver-side refusal such as a full
    /// bulkhead), emitting the same telemetry as any other give-up.
    pub fn abort(&mut self, policy: &RetryPolicy, stop: Stop) -> Stop {
        if self.attempts > 0 {
            policy.metrics.exhausted[stop.index()].incr();
        }
        stop
    }
}
