//! What a breaker tells about itself: its state changes and a snapshot.

use std::time::{Duration, Instant};

use super::State;

/// Why the breaker changed state, carried by a [`Transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionCause {
    /// The failure ratio reached its threshold.
    FailureRatio,
    /// The slow-call ratio reached its threshold.
    SlowCallRatio,
    /// `consecutive_failures` calls in a row failed.
    ConsecutiveFailures,
    /// The break duration passed and a call arrived.
    BreakElapsed,
    /// A half-open probe failed or was slow.
    ProbeFailed,
    /// Every half-open probe succeeded.
    ProbesSucceeded,
    /// `isolate`, `disable` or `reset` was called.
    Manual,
}

impl TransitionCause {
    /// A short, stable name, e.g. `failure_ratio`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransitionCause::FailureRatio => "failure_ratio",
            TransitionCause::SlowCallRatio => "slow_call_ratio",
            TransitionCause::ConsecutiveFailures => "consecutive_failures",
            TransitionCause::BreakElapsed => "break_elapsed",
            TransitionCause::ProbeFailed => "probe_failed",
            TransitionCause::ProbesSucceeded => "probes_succeeded",
            TransitionCause::Manual => "manual",
        }
    }
}

/// A state change, as passed to
/// [`on_state_change`](crate::breaker::CircuitBreakerBuilder::on_state_change) callbacks.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use rebound::{CircuitBreaker, breaker::{State, TransitionCause}};
///
/// let last = Arc::new(Mutex::new(None));
/// let slot = Arc::clone(&last);
/// let cb = CircuitBreaker::consecutive_failures(1)
///     .on_state_change(move |t| *slot.lock().unwrap() = Some((t.to(), t.cause())))
///     .build()
///     .unwrap();
/// cb.try_acquire().unwrap().failure();
/// assert_eq!(*last.lock().unwrap(), Some((State::Open, TransitionCause::ConsecutiveFailures)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub(super) from: State,
    pub(super) to: State,
    pub(super) at: Instant,
    pub(super) cause: TransitionCause,
    pub(super) generation: u32,
    pub(super) break_duration: Option<Duration>,
}

impl Transition {
    /// The state left.
    pub fn from(&self) -> State {
        self.from
    }

    /// The state entered.
    pub fn to(&self) -> State {
        self.to
    }

    /// When, on the breaker's clock.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Why.
    pub fn cause(&self) -> TransitionCause {
        self.cause
    }

    /// The generation entered: one more than the last (wrapping at 2^29), so
    /// callbacks racing on different threads can be put back in order.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// How long the breaker will stay open, when it opened.
    pub fn break_duration(&self) -> Option<Duration> {
        self.break_duration
    }
}

/// What a breaker holds right now, from [`CircuitBreaker::snapshot`](crate::CircuitBreaker::snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The state.
    pub state: State,
    /// Calls in the window (closed state; 0 otherwise).
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow_calls: u64,
    /// Half-open probe slots taken (in flight or succeeded).
    pub probes_reserved: u32,
    /// Half-open probes that succeeded.
    pub probes_succeeded: u32,
    /// When open: time left until a probe is let through.
    pub open_for: Option<Duration>,
    /// The generation (bumped on every state change).
    pub generation: u32,
}
