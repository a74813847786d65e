//! Why a call stopped, and what it carries back.

use std::error::Error;
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

/// How one attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// The operation returned an error.
    Error(E),
    /// The attempt was cut off by a timeout after this long.
    Timeout(Duration),
}

impl<E> Failure<E> {
    /// The error, if the attempt returned one.
    pub fn error(&self) -> Option<&E> {
        match self {
            Failure::Error(e) => Some(e),
            Failure::Timeout(_) => None,
        }
    }

    /// The error, by value.
    pub fn into_error(self) -> Option<E> {
        match self {
            Failure::Error(e) => Some(e),
            Failure::Timeout(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => e.fmt(f),
            Failure::Timeout(d) => write!(f, "attempt timed out after {d:?}"),
        }
    }
}

/// The error of a call that did not succeed: why it stopped, how many
/// attempts it made, and the last failure (without needing `E: Clone`).
///
/// ```
/// use rebound::{RetryPolicy, Stop};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(2)
///     .backoff(rebound::Backoff::constant(std::time::Duration::ZERO))
///     .build()
///     .unwrap();
/// let err = policy.retry_blocking(|| Err::<(), _>("boom")).unwrap_err();
/// assert_eq!(err.stop(), Stop::AttemptsExhausted);
/// assert_eq!(err.attempts(), 2);
/// assert_eq!(err.last_error(), Some(&"boom"));
/// ```
pub struct RetryError<E> {
    pub(crate) stop: Stop,
    pub(crate) attempts: u32,
    pub(crate) last: Option<Failure<E>>,
}

impl<E> RetryError<E> {
    /// Why the executor stopped.
    pub fn stop(&self) -> Stop {
        self.stop
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's failure; `None` when no attempt ran (a breaker or
    /// bulkhead refused the first one).
    pub fn last_failure(&self) -> Option<&Failure<E>> {
        self.last.as_ref()
    }

    /// The last attempt's error, if it returned one (not a timeout).
    pub fn last_error(&self) -> Option<&E> {
        self.last.as_ref().and_then(Failure::error)
    }

    /// The last attempt's error, by value.
    pub fn into_last_error(self) -> Option<E> {
        self.last.and_then(Failure::into_error)
    }

    /// Whether the last attempt timed out.
    pub fn timed_out(&self) -> bool {
        matches!(self.last, Some(Failure::Timeout(_)))
    }

    /// Maps the carried error.
    pub fn map_err<F, E2>(self, f: F) -> RetryError<E2>
    where
        F: FnOnce(E) -> E2,
    {
        RetryError {
            stop: self.stop,
            attempts: self.attempts,
            last: self.last.map(|l| match l {
                Failure::Error(e) => Failure::Error(f(e)),
                Failure::Timeout(d) => Failure::Timeout(d),
            }),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryError")
            .field("stop", &self.stop)
            .field("attempts", &self.attempts)
            .field("last", &self.last)
            .finish()
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(f, "{} after {} attempt{s}", self.stop, self.attempts)?;
        if let Some(last) = &self.last {
            write!(f, "; last failure: {last}")?;
        }
        Ok(())
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.last_error().map(|e| e as &(dyn Error + 'static))
    }
}

/// Everything about one executed call: the last attempt's result, why it
/// stopped, how many attempts it took and how long.
///
/// Returned by `run` / `run_blocking`. Use it to tell a success that needed
/// retries ([`needed_retries`](Self::needed_retries)) from a clean one.
#[derive(Debug)]
pub struct Report<T, E> {
    pub(crate) last: Option<Result<T, Failure<E>>>,
    pub(crate) stop: Stop,
    pub(crate) attempts: u32,
}

impl<T, E> Report<T, E> {
    /// Why the executor stopped.
    pub fn stop(&self) -> Stop {
        self.stop
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Retries made: attempts after the first.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    /// Whether the call succeeded only after one or more retries.
    pub fn needed_retries(&self) -> bool {
        self.stop.is_success() && self.attempts > 1
    }

    /// The last attempt's result, if an attempt ran.
    pub fn last(&self) -> Option<&Result<T, Failure<E>>> {
        self.last.as_ref()
    }

    /// Converts into the plain result: `Ok` with the last value if the last
    /// attempt produced one (even a value the classifier asked to retry, once
    /// retrying stopped), else `Err` with the reason and last failure.
    pub fn into_result(self) -> Result<T, RetryError<E>> {
        match self.last {
            Some(Ok(v)) => Ok(v),
            Some(Err(f)) => Err(RetryError {
                stop: self.stop,
                attempts: self.attempts,
                last: Some(f),
            }),
            None => Err(RetryError {
                stop: self.stop,
                attempts: self.attempts,
                last: None,
            }),
        }
    }
}
