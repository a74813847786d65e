//! The standard pipeline preset.

use std::sync::Arc;
use std::time::Duration;

use super::Pipeline;
use crate::backoff::{Backoff, Jitter};
use crate::breaker::{SlidingWindow, DEFAULT_TIME_BUCKETS};
use crate::error::ConfigError;
use crate::{CircuitBreaker, Clock, RandomSource, RetryBudget, RetryPolicy};

/// The standard pipeline, adjustable: total timeout → retry (exponential
/// backoff with full jitter, a ratio retry budget) → circuit breaker →
/// attempt timeout. Each setter states its default.
///
/// ```
/// use std::time::Duration;
/// use rebound::pipeline::Pipeline;
///
/// let p = Pipeline::standard().dependency("search").max_attempts(2).build()?;
/// let names: Vec<_> = p.stages().iter().map(|s| s.name()).collect();
/// assert_eq!(names, ["timeout", "retry", "circuit_breaker", "timeout"]);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StandardBuilder {
    dependency: Arc<str>,
    total_timeout: Duration,
    attempt_timeout: Duration,
    max_attempts: u32,
    backoff: Backoff,
    budget_ratio: f64,
    min_retries_per_second: f64,
    failure_ratio: f64,
    min_calls: u32,
    sampling_window: Duration,
    break_duration: Duration,
    clock: Clock,
    random: RandomSource,
}

impl Default for StandardBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StandardBuilder {
    /// The preset's defaults.
    pub fn new() -> Self {
        StandardBuilder {
            dependency: Arc::from("default"),
            total_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter(Jitter::Full),
            budget_ratio: 0.1,
            min_retries_per_second: 10.0,
            failure_ratio: 0.1,
            min_calls: 100,
            sampling_window: Duration::from_secs(30),
            break_duration: Duration::from_secs(5),
            clock: Clock::default(),
            random: RandomSource::entropy(),
        }
    }

    /// The dependency label of every stage. Default `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The whole call's time, retries included. Default 10 s.
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.total_timeout = d;
        self
    }

    /// One attempt's time. Default 2 s.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// Attempts, the first included. Default 3.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The backoff. Default exponential from 200 ms, ×2, capped at 5 s,
    /// full jitter.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The retry budget: retries ≤ `ratio` × requests + `min_per_second`
    /// per second, over 10 s. Default 0.1 and 10.
    pub fn budget(mut self, ratio: f64, min_per_second: f64) -> Self {
        self.budget_ratio = ratio;
        self.min_retries_per_second = min_per_second;
        self
    }

    /// The breaker opens when this share of the attempts in its window
    /// failed. Default 0.1 (Polly's).
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.failure_ratio = ratio;
        self
    }

    /// Attempts the breaker's window must hold before it may open. Default
    /// 100 (Polly's minimum throughput).
    pub fn min_calls(mut self, n: u32) -> Self {
        self.min_calls = n;
        self
    }

    /// The breaker's sampling window (time-based, 10 buckets). Default
    /// 30 s. Must be at least twice the attempt timeout.
    pub fn sampling_window(mut self, d: Duration) -> Self {
        self.sampling_window = d;
        self
    }

    /// How long the breaker stays open. Default 5 s.
    pub fn break_duration(mut self, d: Duration) -> Self {
        self.break_duration = d;
        self
    }

    /// The clock of the budget, retry and breaker. Default [`Clock::default`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The source of jitter. Default [`RandomSource::entropy`].
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// Builds the policies with their own builders (so their validation
    /// applies), then the pipeline (so its rules apply).
    pub fn build(self) -> Result<Pipeline, ConfigError> {
        let budget = RetryBudget::ratio(self.budget_ratio)
            .min_retries_per_second(self.min_retries_per_second)
            .clock(self.clock.clone())
            .build()?;
        let retry = RetryPolicy::builder()
            .dependency(Arc::clone(&self.dependency))
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .budget(budget)
            .clock(self.clock.clone())
            .random(self.random.clone())
            .build()?;
        let window = SlidingWindow::Time {
            duration: self.sampling_window,
            buckets: DEFAULT_TIME_BUCKETS,
        };
        let breaker = CircuitBreaker::builder()
            .dependency(Arc::clone(&self.dependency))
            .failure_ratio(self.failure_ratio)
            .min_calls(self.min_calls)
            .window(window)
            .break_duration(self.break_duration)
            .clock(self.clock.clone())
            .random(self.random)
            .build()?;
        Pipeline::builder()
            .dependency(self.dependency)
            .clock(self.clock)
            .timeout(self.total_timeout)
            .retry(retry)
            .circuit_breaker(breaker)
            .timeout(self.attempt_timeout)
            .build()
    }
}
