//! What a breaker's refusal and its closure API return.

use std::fmt;
use std::time::Duration;

use super::State;

/// The breaker refused a call.
///
/// ```
/// use rebound::{CircuitBreaker, breaker::State};
/// let cb = CircuitBreaker::builder().build().unwrap();
/// cb.isolate();
/// let refused = cb.try_acquire().unwrap_err();
/// assert_eq!(refused.state(), State::Isolated);
/// assert_eq!(refused.retry_in(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOpen {
    pub(super) state: State,
    pub(super) retry_in: Option<Duration>,
}

impl BreakerOpen {
    /// The state that refused: open, half-open (all probes taken) or
    /// isolated.
    pub fn state(&self) -> State {
        self.state
    }

    /// When open: how long until the breaker lets a probe through.
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_in) {
            (State::HalfOpen, _) => f.write_str("circuit breaker half-open: probes in flight"),
            (State::Isolated, _) => f.write_str("circuit breaker isolated"),
            (_, Some(d)) => write!(f, "circuit breaker open (probing again in {d:?})"),
            _ => f.write_str("circuit breaker open"),
        }
    }
}

impl std::error::Error for BreakerOpen {}

/// The error of [`CircuitBreaker::call`](crate::CircuitBreaker::call) and
/// [`call_async`](crate::CircuitBreaker::call_async).
#[derive(Debug)]
pub enum CallError<E> {
    /// The breaker refused the call; the operation did not run.
    Rejected(BreakerOpen),
    /// The operation ran and failed.
    Failed(E),
}

impl<E> CallError<E> {
    /// The operation's error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Failed(e) => Some(e),
            CallError::Rejected(_) => None,
        }
    }

    /// Whether the breaker refused the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Failed(e) => Some(e),
        }
    }
}
