//! The errors of [`Coalesce`](super::Coalesce).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::tower::BoxError;

/// The inner service's error, shared by every caller of one coalesced
/// call. Its [`source`](std::error::Error::source) and
/// [`inner`](Self::inner) are the error itself.
#[derive(Debug, Clone)]
pub struct SharedError(Arc<BoxError>);

impl SharedError {
    pub(crate) fn new(e: Arc<BoxError>) -> Self {
        SharedError(e)
    }

    /// The inner service's error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &**self.0
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&**self.0)
    }
}

/// A follower waited for a coalesced call longer than the coalescer's
/// [`max_wait`](crate::coalesce::Coalescer::max_wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitElapsed {
    waited: Duration,
}

impl WaitElapsed {
    pub(crate) fn new(waited: Duration) -> Self {
        WaitElapsed { waited }
    }

    /// How long the follower waited.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for WaitElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited {:?} for a coalesced call, which had not finished",
            self.waited
        )
    }
}

impl std::error::Error for WaitElapsed {}
