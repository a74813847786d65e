//! Building a [`RetryPolicy`], validated.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::breaker::CircuitBreaker;
use crate::budget::RetryBudget;
use crate::error::ConfigError;
use crate::retry::{RetryMetrics, RetryPolicy};
use crate::throttle::AdaptiveThrottle;
use crate::{Clock, RandomSource};

const COMPONENT: &str = "retry policy";

/// Builder for [`RetryPolicy`]; [`build`](Self::build) validates every
/// setting and names the first bad one.
#[derive(Clone, Debug)]
#[must_use]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    backoff: Backoff,
    attempt_timeout: Option<Duration>,
    total_timeout: Option<Duration>,
    max_server_delay: Duration,
    budget: Option<RetryBudget>,
    breaker: Option<CircuitBreaker>,
    throttle: Option<AdaptiveThrottle>,
    dependency: Arc<str>,
    host: Option<Arc<str>>,
    clock: Clock,
    random: RandomSource,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicyBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        RetryPolicyBuilder {
            max_attempts: 3,
            backoff: Backoff::default(),
            attempt_timeout: None,
            total_timeout: None,
            max_server_delay: Duration::from_secs(60),
            budget: None,
            breaker: None,
            throttle: None,
            dependency: Arc::from("default"),
            host: None,
            clock: Clock::default(),
            random: RandomSource::entropy(),
        }
    }

    /// Maximum attempts **including the first** (so `3` = one call and up to
    /// two retries). Default 3. Must be at least 1.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The delay schedule between attempts. Default
    /// [`Backoff::default`]: exponential from 100 ms, ×2, capped at 20 s,
    /// full jitter.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Cuts off any single attempt after `timeout` (async executor only).
    /// Default: none. Must be non-zero.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The whole call — every attempt and delay — must finish within
    /// `timeout`, measured on the policy's clock. Default: none. Must be
    /// non-zero.
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// The longest server-requested delay (`Retry-After`) the executor will
    /// wait. A longer request is never shortened: the call stops at once with
    /// [`Stop::Throttled`](crate::Stop::Throttled) reporting it. Default 60 s.
    pub fn max_server_delay(mut self, max: Duration) -> Self {
        self.max_server_delay = max;
        self
    }

    /// A retry budget shared with other calls to the same dependency.
    /// Default: none (only `max_attempts` and the timeouts limit retries).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// A circuit breaker every attempt must pass, shared with other calls
    /// to the same dependency. Default: none.
    ///
    /// Before each attempt the executor asks the breaker for a permit; a
    /// refusal stops the call at once with [`Stop::BreakerOpen`](crate::Stop::BreakerOpen) (no
    /// waiting, no attempt). Each outcome is recorded before the retry
    /// decision: transient failures (as the classifier decides, timeouts
    /// included) as failures, everything else as successes (a permanent
    /// error such as a 404 is a healthy dependency answering). If that
    /// outcome opened the breaker, the call stops at once with
    /// `Stop::BreakerOpen` instead of waiting for a retry that would be
    /// refused: an open breaker means every request fails fast.
    /// An attempt dropped without an outcome gives its half-open probe slot
    /// back.
    ///
    /// ```
    /// use rebound::{CircuitBreaker, RetryPolicy, Stop};
    ///
    /// let breaker = CircuitBreaker::consecutive_failures(2).build()?;
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(5)
    ///     .backoff(rebound::Backoff::constant(std::time::Duration::ZERO))
    ///     .breaker(breaker.clone())
    ///     .build()?;
    /// let err = policy.retry_blocking(|| Err::<(), _>("503")).unwrap_err();
    /// assert_eq!((err.stop(), err.attempts()), (Stop::BreakerOpen, 2));
    /// # Ok::<(), rebound::ConfigError>(())
    /// ```
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// An adaptive client-side throttle (Google SRE) every attempt — first
    /// tries and retries alike — must pass. While the dependency rejects
    /// requests it sheds attempts locally with probability
    /// `max(0, (requests − K·accepts) / (requests + 1))`; a shed attempt
    /// stops the call with [`Stop::Throttled`](crate::Stop::Throttled). Attempts whose outcome the
    /// classifier does not retry count as accepted. Default: none.
    ///
    /// ```
    /// use rebound::{throttle::AdaptiveThrottle, RetryPolicy};
    /// let policy = RetryPolicy::builder()
    ///     .throttle(AdaptiveThrottle::builder().k(2.0).build().unwrap())
    ///     .build()
    ///     .unwrap();
    /// assert!(policy.throttle().is_some());
    /// ```
    pub fn throttle(mut self, throttle: AdaptiveThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// The name of the dependency this policy guards, used as the
    /// `dependency` label on every metric and in tracing events. Default
    /// `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The instance of the dependency this policy guards (for HTTP, the
    /// `host` or `host:port`), added as the `host` label on every metric
    /// beside `dependency`, so one dependency served by several hosts keeps
    /// one name on dashboards. Default: no `host` label.
    ///
    /// ```
    /// use rebound::RetryPolicy;
    /// let p = RetryPolicy::builder().dependency("inventory").host("10.0.0.7:3001").build()?;
    /// assert_eq!((p.dependency(), p.host()), ("inventory", Some("10.0.0.7:3001")));
    /// # Ok::<(), rebound::ConfigError>(())
    /// ```
    pub fn host(mut self, host: impl Into<Arc<str>>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The dependency name set so far (`"default"` unless
    /// [`dependency`](Self::dependency) was called).
    pub fn dependency_name(&self) -> &str {
        &self.dependency
    }

    /// The clock for deadlines and sleeping. Default [`Clock::default`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The source of jitter. Default [`RandomSource::entropy`].
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// Validates and builds the policy.
    ///
    /// Rejected: `max_attempts` 0; zero timeouts; an `attempt_timeout`
    /// longer than the `total_timeout`; any invalid [`Backoff`] setting.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "max_attempts",
                "must be at least 1 (it counts the first attempt)",
            ));
        }
        if self.attempt_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                COMPONENT,
                "attempt_timeout",
                "must be greater than zero",
            ));
        }
        if self.total_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                COMPONENT,
                "total_timeout",
                "must be greater than zero",
            ));
        }
        if let (Some(a), Some(t)) = (self.attempt_timeout, self.total_timeout) {
            if a > t {
                return Err(ConfigError::new(
                    COMPONENT,
                    "attempt_timeout",
                    format!("must not exceed total_timeout ({t:?}; got {a:?})"),
                ));
            }
        }
        self.backoff.validate()?;
        let policy = RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            attempt_timeout: self.attempt_timeout,
            total_timeout: self.total_timeout,
            max_server_delay: self.max_server_delay,
            budget: self.budget,
            breaker: self.breaker,
            throttle: self.throttle,
            metrics: Arc::new(RetryMetrics::new(&self.dependency, self.host.as_ref())),
            dependency: self.dependency,
            host: self.host,
            clock: self.clock,
            random: self.random,
        };
        policy.observe();
        Ok(policy)
    }
}
