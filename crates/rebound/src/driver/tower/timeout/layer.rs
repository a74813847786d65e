use std::time::Duration;

use tower_layer::Layer;

use crate::Clock;

use super::Timeout;
use crate::timeout::DependencyName;
use crate::ConfigError;

/// Applies a [`Timeout`] to a service.
///
/// ```
/// use std::time::Duration;
/// use rebound::tower::timeout::TimeoutLayer;
/// let layer = TimeoutLayer::new(Duration::from_millis(250))?.dependency("inventory");
/// assert_eq!(layer.limit(), Duration::from_millis(250));
/// assert_eq!(TimeoutLayer::new(Duration::ZERO).unwrap_err().field(), "timeout");
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    limit: Duration,
    dependency: DependencyName,
    clock: Clock,
}

impl TimeoutLayer {
    /// A layer cutting calls off after `limit`, validated as
    /// [`rebound::Timeout::new`](crate::Timeout::new) does: a zero limit is
    /// rejected (field `timeout`).
    pub fn new(limit: Duration) -> Result<Self, ConfigError> {
        crate::Timeout::new(limit)?;
        Ok(TimeoutLayer {
            limit,
            dependency: DependencyName::DEFAULT,
            clock: Clock::default(),
        })
    }

    /// The `dependency` label of `dependency_timeout_total`: a literal, a
    /// `String` or an `Arc<str>` (see [`DependencyName`]; a literal costs
    /// no reference count per call). Default `"default"`.
    #[must_use]
    pub fn dependency(mut self, name: impl Into<DependencyName>) -> Self {
        self.dependency = name.into();
        self
    }

    /// Measures the limit on `clock`. Default [`Clock::default`] (tokio's
    /// clock, which paused tests advance).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.limit, self.dependency.clone()).with_clock(self.clock.clone())
    }
}
