//! Keeping score: the one rule mapping how an attempt ended to what the
//! policies watching a dependency's health record.
//!
//! Three policies keep score of a dependency: the [circuit
//! breaker](crate::CircuitBreaker) (successes and failures in its window),
//! the [adaptive throttle](crate::throttle::AdaptiveThrottle) ("accepts")
//! and the [retry budget](crate::RetryBudget) (a token bucket's refunds and
//! costs). Every driver — the executors, each tower layer, the pipeline, the
//! HTTP middleware, the simulator — tells them through [`Score`], so they
//! all count the same attempt the same way:
//!
//! | attempt ended with | classifier said | breaker, throttle | budget |
//! |---|---|---|---|
//! | a value | do not retry | success (accepted) | success |
//! | an error | do not retry (permanent) | success: the dependency answered | — |
//! | a timeout | do not retry | failure | — |
//! | anything | retry (transient) | failure | failure |
//! | a refusal from a policy inside (open breaker, full bulkhead) | — | nothing: the permit is given back | — |

use crate::breaker::OwnedPermit;
use crate::classify::{Decision, Outcome};
use crate::throttle::AdaptiveThrottle;
use crate::throttle::ThrottlePermit;
use crate::{CircuitBreaker, RetryBudget, Stop};

/// How a call went, for a circuit breaker's
/// [`Permit::record`](crate::breaker::Permit::record) and for the adaptive
/// throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The dependency did its job (or answered that the request was bad).
    Success,
    /// The dependency failed: a timeout, a reset, a 5xx.
    Failure,
}

/// What one attempt's end means for the score-keeping policies; see the
/// [module docs](self) for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Score {
    /// What the breaker and throttle record.
    pub(crate) call: CallOutcome,
    /// What the budget records, if anything.
    budget: Option<CallOutcome>,
}

impl Score {
    /// The score of an attempt that ended with `outcome`, of which the
    /// classifier said `decision`.
    #[inline]
    pub(crate) fn of<T, E>(outcome: &Outcome<'_, T, E>, decision: Decision) -> Score {
        let transient = decision != Decision::DoNotRetry;
        let timed_out = matches!(outcome, Outcome::Timeout(_));
        Score {
            call: if transient || timed_out {
                CallOutcome::Failure
            } else {
                CallOutcome::Success
            },
            budget: if transient {
                Some(CallOutcome::Failure)
            } else if matches!(outcome, Outcome::Ok(_)) {
                Some(CallOutcome::Success)
            } else {
                None
            },
        }
    }

    /// Tells the budget, if there is one.
    #[inline]
    pub(crate) fn record_budget(self, budget: Option<&RetryBudget>) {
        if let Some(b) = budget {
            match self.budget {
                Some(CallOutcome::Success) => b.record_success(),
                Some(CallOutcome::Failure) => b.record_failure(),
                None => {}
            }
        }
    }
}

/// A permit that is told how the call it admitted went; dropping one
/// unreported gives back what it held (a half-open probe slot) and records
/// nothing.
pub(crate) trait Scored {
    /// Records how the call went.
    fn record(self, outcome: CallOutcome);
}

impl Scored for OwnedPermit {
    #[inline]
    fn record(self, outcome: CallOutcome) {
        OwnedPermit::record(self, outcome)
    }
}

impl Scored for ThrottlePermit {
    #[inline]
    fn record(self, outcome: CallOutcome) {
        match outcome {
            CallOutcome::Success => self.accepted(),
            CallOutcome::Failure => self.rejected(),
        }
    }
}

/// The permits one attempt was admitted with: the adaptive throttle's and
/// the circuit breaker's, either optional.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    throttle: Option<ThrottlePermit>,
    breaker: Option<OwnedPermit>,
}

impl Admission {
    /// Asks the throttle, then the breaker. A refusal stops the call with
    /// [`Stop::Throttled`] or [`Stop::BreakerOpen`]; the throttle's permit
    /// is then dropped unreported.
    #[inline]
    pub(crate) fn ask(
        throttle: Option<&AdaptiveThrottle>,
        breaker: Option<&CircuitBreaker>,
    ) -> Result<Admission, Stop> {
        let throttle = match throttle {
            Some(t) => Some(
                t.try_acquire()
                    .map_err(|_| Stop::Throttled { retry_after: None })?,
            ),
            None => None,
        };
        let breaker = match breaker {
            Some(cb) => Some(cb.try_acquire_owned().map_err(|_| Stop::BreakerOpen)?),
            None => None,
        };
        Ok(Admission { throttle, breaker })
    }

    /// Whether nothing was asked (so nothing is to be told).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.throttle.is_none() && self.breaker.is_none()
    }

    /// Tells every permit how the attempt went.
    #[inline]
    pub(crate) fn record(self, outcome: CallOutcome) {
        if let Some(p) = self.breaker {
            p.record(outcome);
        }
        if let Some(p) = self.throttle {
            Scored::record(p, outcome);
        }
    }
}
