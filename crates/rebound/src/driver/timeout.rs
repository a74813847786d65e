//! A standalone timeout: give up on a call that takes too long.
//!
//! A call without a timeout can wait forever, holding a thread, a socket and
//! a bulkhead slot while it does: every call needs a deadline. [`Timeout`]
//! wraps any future; when the time runs out the future is dropped (so the
//! call is cancelled), the caller gets [`Elapsed`], and
//! `dependency_timeout_total` is incremented.
//!
//! Inside a [`RetryPolicy`](crate::RetryPolicy), use its `attempt_timeout`
//! and `total_timeout` instead: they are the same mechanism, aware of the
//! retries. Use `Timeout` on its own for calls you do not retry.
//!
//! It waits on its [`Clock`] (tokio's by default, so
//! `#[tokio::test(start_paused = true)]` drives it in virtual time; a
//! manual clock cuts the call off when it is moved past the limit).
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

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{check, ConfigError};
use crate::telemetry;
use crate::Clock;

/// Cuts off a future after a fixed duration. Cheap to clone. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeout {
    limit: Duration,
    dependency: DependencyName,
    clock: Clock,
}

/// The name of the dependency a timeout guards: the `dependency` label of
/// `dependency_timeout_total`.
///
/// Made from a string by [`Timeout::dependency`] and by the tower layer's
/// `TimeoutLayer::dependency`. A `&'static str` (a literal, the usual case) is kept as it is, so
/// cloning the name — as the tower layer does for every call — copies a
/// pointer; a name made at run time (a `String`, an `Arc<str>`) is shared,
/// and a clone counts one more reference. Nothing is interned: a name made
/// per host lives as long as the timeouts holding it.
///
/// ```
/// use std::sync::Arc;
/// use rebound::timeout::DependencyName;
///
/// let literal = DependencyName::from("inventory");
/// let made = DependencyName::from(format!("inventory-{}", 2));
/// let shared = DependencyName::from(Arc::<str>::from("inventory"));
/// assert_eq!(literal.as_str(), "inventory");
/// assert_eq!(made.as_str(), "inventory-2");
/// assert_eq!(literal, shared);
/// ```
#[derive(Clone)]
pub struct DependencyName(Name);

#[derive(Clone)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl DependencyName {
    /// `"default"`, the name of a dependency nobody named.
    pub const DEFAULT: DependencyName = DependencyName(Name::Static("default"));

    /// The name.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }

    /// The name as a metrics label value, without copying the text.
    pub(crate) fn label(&self) -> metrics::SharedString {
        match &self.0 {
            Name::Static(s) => metrics::SharedString::const_str(s),
            Name::Shared(s) => metrics::SharedString::from(Arc::clone(s)),
        }
    }
}

impl Default for DependencyName {
    fn default() -> Self {
        DependencyName::DEFAULT
    }
}

impl From<&'static str> for DependencyName {
    fn from(name: &'static str) -> Self {
        DependencyName(Name::Static(name))
    }
}

impl From<Arc<str>> for DependencyName {
    fn from(name: Arc<str>) -> Self {
        DependencyName(Name::Shared(name))
    }
}

impl From<String> for DependencyName {
    fn from(name: String) -> Self {
        DependencyName(Name::Shared(name.into()))
    }
}

impl From<&String> for DependencyName {
    fn from(name: &String) -> Self {
        DependencyName(Name::Shared(name.as_str().into()))
    }
}

impl From<Box<str>> for DependencyName {
    fn from(name: Box<str>) -> Self {
        DependencyName(Name::Shared(name.into()))
    }
}

impl From<Cow<'static, str>> for DependencyName {
    fn from(name: Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(s) => s.into(),
            Cow::Owned(s) => s.into(),
        }
    }
}

impl AsRef<str> for DependencyName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for DependencyName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for DependencyName {}

impl fmt::Debug for DependencyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for DependencyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts a cut-off call: `dependency_timeout_total{dependency}` and a
/// tracing event. Out of line: only the time-out path comes here.
#[cold]
#[inline(never)]
pub(crate) fn record_timeout(dependency: &DependencyName, after: Duration) {
    metrics::counter!(
        telemetry::DEPENDENCY_TIMEOUT_TOTAL,
        telemetry::DEPENDENCY_LABEL => dependency.label()
    )
    .increment(1);
    tracing::debug!(dependency = dependency.as_str(), ?after, "call timed out");
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
            dependency: DependencyName::DEFAULT,
            clock: Clock::default(),
        })
    }

    /// Names the dependency for the `dependency` label of
    /// `dependency_timeout_total`: a literal, a `String` or an `Arc<str>`
    /// (see [`DependencyName`]). Default `"default"`.
    #[must_use]
    pub fn dependency(mut self, name: impl Into<DependencyName>) -> Self {
        self.dependency = name.into();
        self
    }

    /// Measures the limit on `clock`. Default [`Clock::default`].
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
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
        let cut = self.clock.timeout(Some(self.limit), fut).await;
        if let Err(elapsed) = &cut {
            record_timeout(&self.dependency, elapsed.after());
        }
        cut
    }
}
