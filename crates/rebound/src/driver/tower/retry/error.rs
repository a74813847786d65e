//! Errors of the retry layer.

use std::fmt;

use crate::tower::BoxError;
use crate::Stop;

/// The retry layer gave up: why, after how many attempts, and the last
/// failure as its [`source`](std::error::Error::source) (a
/// [`timeout::error::Elapsed`](crate::tower::timeout::error::Elapsed) when
/// the last attempt timed out).
#[derive(Debug)]
pub struct RetryFailed {
    stop: Stop,
    attempts: u32,
    last: Option<BoxError>,
}

impl RetryFailed {
    pub(crate) fn new(stop: Stop, attempts: u32, last: Option<BoxError>) -> Self {
        RetryFailed {
            stop,
            attempts,
            last,
        }
    }

    /// Why the layer stopped.
    pub fn stop(&self) -> Stop {
        self.stop
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last failure, if an attempt ran.
    pub fn last_error(&self) -> Option<&BoxError> {
        self.last.as_ref()
    }

    /// The last failure, by value.
    pub fn into_last_error(self) -> Option<BoxError> {
        self.last
    }

    /// Whether the last attempt timed out.
    pub fn timed_out(&self) -> bool {
        self.last
            .as_ref()
            .is_some_and(|e| e.is::<crate::tower::timeout::error::Elapsed>())
    }
}

impl fmt::Display for RetryFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(f, "{} after {} attempt{s}", self.stop, self.attempts)?;
        if let Some(last) = &self.last {
            write!(f, "; last failure: {last}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RetryFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last
            .as_ref()
            .map(|e| &**e as &(dyn std::error::Error + 'static))
    }
}
