//! Errors of the timeout layer.

use std::fmt;
use std::time::Duration;

/// The call was cut off by the timeout layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    after: Duration,
}

impl Elapsed {
    pub(crate) fn new(after: Duration) -> Self {
        Elapsed { after }
    }

    /// The limit that ran out.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.after)
    }
}

impl std::error::Error for Elapsed {}
