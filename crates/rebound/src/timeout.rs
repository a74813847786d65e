//! A standalone timeout: give up on a call that takes too long.
//!
//! A call without a timeout can wait forever, holding a thread, a socket and
//! a bulkhead slot while it does (seed 001: "set a deadline"). [`Timeout`]
//! wraps any future; when the time runs out the future is dropped (so the
//! call is cancelled), the caller gets [`Elapsed`], and
//! `dependency_timeout_total` is incremented.
//!
//! Inside a [`RetryPolicy`](crate::RetryPolicy), use its `attempt_timeout`
//! and `total_timeout` instead: they are the same mechanism, aware of the
//! retries. Use `Timeout` on its own for calls you do not retry.
//!
//! It waits on tokio's timer, so `#[tokio::test(start_paused = true)]`
//! drives it in virtual time.
//!
//! ```
//! use std::time::Duration;
//! use rebound::Timeout;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let timeout = Timeout::new(Duration::from_millis(300))?.dependency("inventory");
//! let fast = timeout.run(async { 42 }).await?;
//! assert_eq!(fast, 42);
//!
//! let slow = timeout.run(tokio::time::sleep(Duration::from_secs(5))).await;
//! assert_eq!(slow.unwrap_err().after(), Duration::from_millis(300));
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{check, ConfigError};
use crate::telemetry;

/// Cuts off a future after a fixed duration. Cheap to clone. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeout {
    limit: Duration,
    dependency: Arc<str>,
}

/// A call was cut off by a [`Timeout`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// let t = rebound::Timeout::new(Duration::from_secs(1)).unwrap();
/// let err = t.run(std::future::pending::<()>()).await.unwrap_err();
/// assert_eq!(err.to_string(), "timed out after 1s");
/// # }
/// ```
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

impl Timeout {
    /// A timeout of `limit`, for dependency `"default"`. A zero limit is
    /// rejected (field `timeout`).
    pub fn new(limit: Duration) -> Result<Self, ConfigError> {
        check::non_zero_duration("timeout", "timeout", limit)?;
        Ok(Timeout {
            limit,
            dependency: Arc::from("default"),
        })
    }

    /// Names the dependency for the `dependency` label of
    /// `dependency_timeout_total`. Default `"default"`.
    #[must_use]
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Runs `fut` for at most the limit. On time-out the future is dropped
    /// (cancelled), `dependency_timeout_total` is incremented and
    /// [`Elapsed`] returned.
    pub async fn run<F: Future>(&self, fut: F) -> Result<F::Output, Elapsed> {
        match tokio::time::timeout(self.limit, fut).await {
            Ok(v) => Ok(v),
            Err(_) => {
                telemetry::incr(telemetry::DEPENDENCY_TIMEOUT_TOTAL, &self.dependency);
                tracing::debug!(
                    dependency = &*self.dependency,
                    after = ?self.limit,
                    "call timed out"
                );
                Err(Elapsed::new(self.limit))
            }
        }
    }
}
