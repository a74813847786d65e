//! What a call carries back: its last failure, why it stopped, how many
//! attempts it made.

use std::error::Error;

use crate::retry::Stop;
use std::fmt;
use std::time::Duration;

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

    /// The last attempt's result by value, if an attempt ran.
    pub fn into_last(self) -> Option<Result<T, Failure<E>>> {
        self.last
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
