//! One attempt of a call, and what follows it.

use std::time::Duration;

use crate::policy::score::Admission;
use crate::retry::{RetryPolicy, Stop};

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

/// A started attempt: hand it back to
/// [`RetryState::on_outcome`](crate::RetryState::on_outcome).
///
/// Dropping it without an outcome (the attempt was cancelled) is fine: any
/// permit it holds is given back.
#[derive(Debug)]
#[must_use = "pass the attempt back to RetryState::on_outcome"]
pub struct Attempt {
    pub(crate) number: u32,
    timeout: Option<Duration>,
    cut_by_deadline: bool,
    last: bool,
    /// The throttle's and breaker's permits: told how the attempt went, or
    /// given back when it is dropped unreported.
    pub(crate) admission: Admission,
}

impl Attempt {
    /// Attempt `number` under `policy`, limited to `timeout`, admitted with
    /// `admission`; `retries_forbidden` makes it the last.
    #[inline]
    pub(crate) fn new(
        policy: &RetryPolicy,
        number: u32,
        (timeout, cut_by_deadline): (Option<Duration>, bool),
        admission: Admission,
        retries_forbidden: bool,
    ) -> Self {
        Attempt {
            number,
            timeout,
            cut_by_deadline,
            last: retries_forbidden || number >= policy.max_attempts,
            admission,
        }
    }

    /// Attempt `number` under a policy whose attempts are plain: the
    /// policy's attempt timeout, no permits.
    #[inline]
    pub(crate) fn plain(policy: &RetryPolicy, number: u32, retries_forbidden: bool) -> Self {
        Self::new(
            policy,
            number,
            (policy.attempt_timeout, false),
            Admission::default(),
            retries_forbidden,
        )
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

    /// Whether no attempt can follow this one (it is the policy's last, or
    /// retries are forbidden for this call): a driver need not keep a copy
    /// of the request for a retry.
    pub fn is_last(&self) -> bool {
        self.last
    }
}
