//! Why a call stopped.

use std::fmt;
use std::time::Duration;

/// Why an executor stopped calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stop {
    /// An attempt succeeded (the classifier accepted a value).
    Succeeded,
    /// An attempt failed permanently (the classifier said not to retry).
    Permanent,
    /// `max_attempts` attempts were made and the last failed transiently.
    AttemptsExhausted,
    /// The total timeout ran out, or the next delay would have crossed it.
    DeadlineExceeded {
        /// The delay the server asked for, when that is what would have
        /// crossed the deadline.
        requested_delay: Option<Duration>,
    },
    /// The retry budget refused the retry.
    BudgetExhausted,
    /// A circuit breaker refused the attempt.
    BreakerOpen,
    /// A bulkhead was full.
    BulkheadFull,
    /// The call was throttled: the server asked for a delay longer than the
    /// policy's `max_server_delay` (reported here), or a client-side
    /// throttle refused it.
    Throttled {
        /// The delay the server asked for, if it asked.
        retry_after: Option<Duration>,
    },
    /// The failure was transient, but the caller had forbidden retrying
    /// this call ([`RetryState::forbid_retries`](crate::RetryState::forbid_retries)):
    /// e.g. a non-idempotent request without an idempotency key.
    NotRetryable,
}

impl Stop {
    /// Every reason's [`as_str`](Self::as_str), in declaration order.
    pub(crate) const NAMES: [&'static str; 9] = [
        "succeeded",
        "permanent",
        "attempts",
        "deadline",
        "budget",
        "breaker_open",
        "bulkhead_full",
        "throttled",
        "not_retryable",
    ];

    /// The position of this reason in [`NAMES`](Self::NAMES).
    pub(crate) fn index(&self) -> usize {
        match self {
            Stop::Succeeded => 0,
            Stop::Permanent => 1,
            Stop::AttemptsExhausted => 2,
            Stop::DeadlineExceeded { .. } => 3,
            Stop::BudgetExhausted => 4,
            Stop::BreakerOpen => 5,
            Stop::BulkheadFull => 6,
            Stop::Throttled { .. } => 7,
            Stop::NotRetryable => 8,
        }
    }

    /// Whether the call ended in success.
    pub fn is_success(&self) -> bool {
        matches!(self, Stop::Succeeded)
    }

    /// A short, stable name: `succeeded`, `permanent`, `attempts`,
    /// `deadline`, `budget`, `breaker_open`, `bulkhead_full`, `throttled`,
    /// `not_retryable`.
    /// Used as the `reason` label of metrics.
    pub fn as_str(&self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Succeeded => f.write_str("succeeded"),
            Stop::Permanent => f.write_str("permanent failure"),
            Stop::AttemptsExhausted => f.write_str("attempts exhausted"),
            Stop::DeadlineExceeded {
                requested_delay: Some(d),
            } => write!(
                f,
                "deadline exceeded (the server asked to wait {d:?}, past the deadline)"
            ),
            Stop::DeadlineExceeded {
                requested_delay: None,
            } => f.write_str("deadline exceeded"),
            Stop::BudgetExhausted => f.write_str("retry budget exhausted"),
            Stop::BreakerOpen => f.write_str("circuit breaker open"),
            Stop::BulkheadFull => f.write_str("bulkhead full"),
            Stop::Throttled {
                retry_after: Some(d),
            } => write!(
                f,
                "throttled (the server asked to wait {d:?}, more than allowed)"
            ),
            Stop::Throttled { retry_after: None } => f.write_str("throttled"),
            Stop::NotRetryable => f.write_str("transient failure, but retries were forbidden"),
        }
    }
}
