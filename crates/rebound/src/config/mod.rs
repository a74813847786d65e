//! Policies in configuration files: TOML and JSON, with human durations
//! (feature `serde`).
//!
//! Every policy has a plain serde type here, with the same field names as
//! its builder's setters and durations written as `"250ms"`, `"30s"`,
//! `"2m"`. A type is turned into the real object **through that builder**,
//! so a file is validated exactly as code is; an unset field keeps the
//! builder's default. A [`Policies`] file holds the policies of each
//! dependency a service calls:
//!
//! ```
//! use rebound::config::Policies;
//!
//! let file = r#"
//! [dependencies.inventory.retry]
//! max_attempts = 3
//! attempt_timeout = "300ms"
//! total_timeout = "2s"
//! backoff = { kind = "exponential", base = "100ms", max_delay = "1s", jitter = "full" }
//! budget = { kind = "ratio", ratio = 0.1 }
//!
//! [dependencies.inventory.breaker]
//! failure_ratio = 0.5
//! window = { kind = "time", duration = "30s", buckets = 10 }
//! break_duration = "15s"
//! "#;
//! let policies = Policies::from_toml_str(file)?;
//! let inventory = policies.dependency("inventory").unwrap();
//! let retry = inventory.retry_policy("inventory")?.unwrap();
//! assert_eq!(retry.max_attempts(), 3);
//! assert_eq!(retry.attempt_timeout(), Some(std::time::Duration::from_millis(300)));
//!
//! // A bad value names the field and the line.
//! let err = Policies::from_toml_str("[dependencies.x.retry]\nmax_attempts = 0\n").unwrap_err();
//! assert_eq!(err.line(), Some(2));
//! assert!(err.to_string().contains("max_attempts"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod file;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use file::{ConfigFileError, Policies};

use crate::backoff::{Backoff, Jitter};
use crate::breaker::{BreakGrowth, CircuitBreakerBuilder, SlidingWindow};
use crate::bulkhead::BulkheadBuilder;
use crate::hedge::HedgePolicyBuilder;
use crate::retry::RetryPolicyBuilder;
use crate::throttle::AdaptiveThrottleBuilder;
use crate::{Bulkhead, CircuitBreaker, ConfigError, RetryBudget, RetryPolicy};

/// How a backoff grows. `kind` is `exponential`, `linear` or `constant`.
///
/// ```toml
/// backoff = { kind = "exponential", base = "100ms", factor = 2.0, max_delay = "20s", jitter = "full" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// `exponential` (`base * factor^n`), `linear` (`base + step * n`) or
    /// `constant` (`base` every time).
    pub kind: BackoffKind,
    /// The first delay.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Exponential growth factor. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Linear step. Default zero.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub step: Option<Duration>,
    /// The cap on a single delay. Default 20 s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_delay: Option<Duration>,
    /// `none`, `full`, `equal`, `decorrelated` or `{ proportional = 0.2 }`.
    /// Default `full` (`none` for constant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<JitterConfig>,
}

/// The kind of a [`BackoffConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// `base * factor^n`.
    Exponential,
    /// `base + step * n`.
    Linear,
    /// `base`.
    Constant,
}

/// A [`Jitter`] in a file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterConfig {
    /// No jitter.
    None,
    /// `U(0, d)`.
    Full,
    /// `d/2 + U(0, d/2)`.
    Equal,
    /// Decorrelated.
    Decorrelated,
    /// `d * U(1 - x, 1 + x)`.
    Proportional(f64),
}

impl From<JitterConfig> for Jitter {
    fn from(j: JitterConfig) -> Self {
        match j {
            JitterConfig::None => Jitter::None,
            JitterConfig::Full => Jitter::Full,
            JitterConfig::Equal => Jitter::Equal,
            JitterConfig::Decorrelated => Jitter::Decorrelated,
            JitterConfig::Proportional(x) => Jitter::Proportional(x),
        }
    }
}

impl BackoffConfig {
    /// The backoff, validated.
    pub fn build(&self) -> Result<Backoff, ConfigError> {
        let mut b = match self.kind {
            BackoffKind::Exponential => {
                Backoff::exponential(self.base).with_factor(self.factor.unwrap_or(2.0))
            }
            BackoffKind::Linear => Backoff::linear(self.base, self.step.unwrap_or_default()),
            BackoffKind::Constant => Backoff::constant(self.base),
        };
        if let Some(m) = self.max_delay {
            b = b.with_max_delay(m);
        }
        if let Some(j) = self.jitter {
            b = b.with_jitter(j.into());
        }
        b.validate()?;
        Ok(b)
    }
}

/// A [`RetryBudget`] in a file: `kind` is `ratio` or `token_bucket`.
///
/// ```toml
/// budget = { kind = "ratio", ratio = 0.1, min_retries_per_second = 10, window = "10s" }
/// budget = { kind = "token_bucket", max_tokens = 10, token_ratio = 0.1 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetConfig {
    /// Retries ≤ `ratio` × requests + a floor.
    Ratio {
        /// The ratio, in [0, 1].
        ratio: f64,
        /// The floor, per second. Default 10.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_retries_per_second: Option<f64>,
        /// The window. Default 10 s.
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        window: Option<Duration>,
        /// Slices of the window. Default 10.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        buckets: Option<u32>,
    },
    /// gRPC's token bucket.
    TokenBucket {
        /// Bucket size.
        max_tokens: f64,
        /// Refund per success.
        token_ratio: f64,
    },
}

impl BudgetConfig {
    /// The budget, validated.
    pub fn build(&self) -> Result<RetryBudget, ConfigError> {
        match *self {
            BudgetConfig::Ratio {
                ratio,
                min_retries_per_second,
                window,
                buckets,
            } => {
                let mut b = RetryBudget::ratio(ratio);
                if let Some(m) = min_retries_per_second {
                    b = b.min_retries_per_second(m);
                }
                if let Some(w) = window {
                    b = b.window(w);
                }
                if let Some(n) = buckets {
                    b = b.buckets(n);
                }
                b.build()
            }
            BudgetConfig::TokenBucket {
                max_tokens,
                token_ratio,
            } => RetryBudget::token_bucket(max_tokens, token_ratio),
        }
    }
}

/// A [`RetryPolicy`] in a file. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts, the first included. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The backoff. Default exponential from 100 ms, full jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffConfig>,
    /// Per-attempt timeout. Default none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempt_timeout: Option<Duration>,
    /// Total timeout. Default none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_timeout: Option<Duration>,
    /// Longest server-requested delay honoured. Default 60 s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_server_delay: Option<Duration>,
    /// A retry budget. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    /// A circuit breaker every attempt must pass (plugged into the retry
    /// executor, so an open breaker stops retrying at once). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// An adaptive client-side throttle every attempt must pass. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleConfig>,
}

impl RetryConfig {
    /// The policy's builder, set from the file (adjust the clock, breaker
    /// or budget sharing before building).
    pub fn builder(&self, dependency: &str) -> Result<RetryPolicyBuilder, ConfigError> {
        let mut b = RetryPolicy::builder().dependency(dependency);
        if let Some(n) = self.max_attempts {
            b = b.max_attempts(n);
        }
        if let Some(bo) = &self.backoff {
            b = b.backoff(bo.build()?);
        }
        if let Some(t) = self.attempt_timeout {
            b = b.attempt_timeout(t);
        }
        if let Some(t) = self.total_timeout {
            b = b.total_timeout(t);
        }
        if let Some(t) = self.max_server_delay {
            b = b.max_server_delay(t);
        }
        if let Some(cb) = &self.breaker {
            b = b.breaker(cb.build(dependency)?);
        }
        if let Some(t) = &self.throttle {
            b = b.throttle(t.builder(dependency).build()?);
        }
        if let Some(budget) = &self.budget {
            b = b.budget(budget.build()?);
        }
        Ok(b)
    }

    /// The policy, validated.
    pub fn build(&self, dependency: &str) -> Result<RetryPolicy, ConfigError> {
        self.builder(dependency)?.build()
    }
}

/// A breaker's [`SlidingWindow`] in a file: `kind` is `count` or `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowConfig {
    /// The last `size` calls.
    Count {
        /// Calls.
        size: u32,
    },
    /// The calls of the last `duration`.
    Time {
        /// How far back.
        #[serde(with = "humantime_serde")]
        duration: Duration,
        /// Slices. Default 10.
        #[serde(default = "ten")]
        buckets: u32,
    },
}

fn ten() -> u32 {
    10
}

impl From<WindowConfig> for SlidingWindow {
    fn from(w: WindowConfig) -> Self {
        match w {
            WindowConfig::Count { size } => SlidingWindow::Count { size },
            WindowConfig::Time { duration, buckets } => SlidingWindow::Time { duration, buckets },
        }
    }
}

/// A [`CircuitBreaker`] in a file. Every field is optional; defaults are
/// the builder's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failure ratio that opens it. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<f64>,
    /// Calls needed before a ratio can open it. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u32>,
    /// The window. Default the last 100 calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowConfig>,
    /// A call this slow counts as slow. Default: not tracked.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_call_duration: Option<Duration>,
    /// Slow-call ratio that opens it. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_call_ratio: Option<f64>,
    /// Failures in a row that open it. Default off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// How long it stays open. Default 30 s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub break_duration: Option<Duration>,
    /// The longest break. Default 10 × `break_duration`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_break_duration: Option<Duration>,
    /// Break growth: `none`, `linear`, or `{ exponential = 2.0 }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_growth: Option<GrowthConfig>,
    /// Break jitter, a fraction. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_jitter: Option<f64>,
    /// Half-open probes. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_probes: Option<u32>,
}

/// A [`BreakGrowth`] in a file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthConfig {
    /// Constant.
    None,
    /// `n × break_duration`.
    Linear,
    /// `break_duration × f^(n-1)`.
    Exponential(f64),
}

impl BreakerConfig {
    /// The breaker's builder, set from the file.
    pub fn builder(&self, dependency: &str) -> CircuitBreakerBuilder {
        let mut b = CircuitBreaker::builder().dependency(dependency);
        if let Some(v) = self.failure_ratio {
            b = b.failure_ratio(v);
        }
        if let Some(v) = self.min_calls {
            b = b.min_calls(v);
        }
        if let Some(w) = self.window {
            b = b.window(w.into());
        }
        if let Some(v) = self.slow_call_duration {
            b = b.slow_call_duration(v);
        }
        if let Some(v) = self.slow_call_ratio {
            b = b.slow_call_ratio(v);
        }
        if let Some(v) = self.consecutive_failures {
            b = b.consecutive_failures(v);
        }
        if let Some(v) = self.break_duration {
            b = b.break_duration(v);
        }
        if let Some(v) = self.max_break_duration {
            b = b.max_break_duration(v);
        }
        if let Some(g) = self.break_growth {
            b = b.break_growth(match g {
                GrowthConfig::None => BreakGrowth::None,
                GrowthConfig::Linear => BreakGrowth::Linear,
                GrowthConfig::Exponential(f) => BreakGrowth::Exponential(f),
            });
        }
        if let Some(v) = self.break_jitter {
            b = b.break_jitter(v);
        }
        if let Some(v) = self.half_open_probes {
            b = b.half_open_probes(v);
        }
        b
    }

    /// The breaker, validated.
    pub fn build(&self, dependency: &str) -> Result<CircuitBreaker, ConfigError> {
        self.builder(dependency).build()
    }
}

/// A [`Bulkhead`] in a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls at once. Default 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Waiting callers. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    /// Longest wait. Default none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

impl BulkheadConfig {
    /// The bulkhead's builder, set from the file.
    pub fn builder(&self, dependency: &str) -> BulkheadBuilder {
        let mut b = Bulkhead::builder().dependency(dependency);
        if let Some(v) = self.max_concurrent {
            b = b.max_concurrent(v);
        }
        if let Some(v) = self.max_queue {
            b = b.max_queue(v);
        }
        if let Some(v) = self.max_wait {
            b = b.max_wait(v);
        }
        b
    }

    /// The bulkhead, validated.
    pub fn build(&self, dependency: &str) -> Result<Bulkhead, ConfigError> {
        self.builder(dependency).build()
    }
}

/// An [`AdaptiveThrottle`](crate::throttle::AdaptiveThrottle) in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// `K`. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<f64>,
    /// The window. Default 2 min.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
    /// Slices. Default 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
}

impl ThrottleConfig {
    /// The throttle's builder, set from the file.
    pub fn builder(&self, dependency: &str) -> AdaptiveThrottleBuilder {
        let mut b = crate::throttle::AdaptiveThrottle::builder().dependency(dependency);
        if let Some(v) = self.k {
            b = b.k(v);
        }
        if let Some(v) = self.window {
            b = b.window(v);
        }
        if let Some(v) = self.buckets {
            b = b.buckets(v);
        }
        b
    }
}

/// A [`HedgePolicy`](crate::hedge::HedgePolicy) in a file: `delay` for a
/// fixed delay, or `percentile` (and `initial_delay`) for an adaptive one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    /// Attempts, the first included. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// A fixed delay.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// The latency percentile to hedge at. Default 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// The delay until enough latencies were seen. Default 100 ms.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_delay: Option<Duration>,
    /// A retry budget for the hedges. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
}

impl HedgeConfig {
    /// The policy's builder, set from the file.
    pub fn builder(&self, dependency: &str) -> Result<HedgePolicyBuilder, ConfigError> {
        let mut b = crate::hedge::HedgePolicy::builder().dependency(dependency);
        if let Some(n) = self.max_attempts {
            b = b.max_attempts(n);
        }
        match (self.delay, self.percentile) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "hedge policy",
                    "delay",
                    "and `percentile` are both set: choose a fixed delay or a percentile",
                ))
            }
            (Some(d), None) => b = b.fixed_delay(d),
            (None, p) => {
                b = b.percentile_delay(
                    p.unwrap_or(0.95),
                    self.initial_delay.unwrap_or(Duration::from_millis(100)),
                )
            }
        }
        if let Some(budget) = &self.budget {
            b = b.budget(budget.build()?);
        }
        Ok(b)
    }
}

/// A hedge stage of a [`PipelineConfig`]: a [`HedgeConfig`]'s fields, and
/// `idempotent = true`, the promise that the pipeline's calls may be sent
/// twice at the same time (without it the pipeline is refused, naming
/// `idempotent`).
///
/// ```toml
/// { type = "hedge", idempotent = true, delay = "50ms", max_attempts = 2 }
/// ```
///
/// ```
/// use rebound::config::Policies;
///
/// let file = r#"
/// [dependencies.catalog.pipeline]
/// stages = [
///   { type = "timeout", timeout = "2s" },
///   { type = "retry", max_attempts = 2, backoff = { kind = "constant", base = "100ms" } },
///   { type = "hedge", idempotent = true, delay = "50ms" },
///   { type = "timeout", timeout = "500ms" },
/// ]
/// "#;
/// let policies = Policies::from_toml_str(file)?;
/// let catalog = policies.dependency("catalog").unwrap().pipeline("catalog")?.unwrap();
/// let names: Vec<_> = catalog.stages().iter().map(|s| s.name()).collect();
/// assert_eq!(names, ["timeout", "retry", "hedge", "timeout"]);
///
/// // Without the promise, the file is refused, naming the field.
/// let err = Policies::from_toml_str(&file.replace("idempotent = true, ", "")).unwrap_err();
/// assert_eq!(err.path(), "dependencies.catalog.idempotent", "{err}");
/// // So is a hedge the attempt timeout would always beat.
/// let err = Policies::from_toml_str(&file.replace("\"50ms\"", "\"500ms\"")).unwrap_err();
/// assert_eq!(err.path(), "dependencies.catalog.hedge_delay", "{err}");
/// assert_eq!(err.line(), Some(2), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeStageConfig {
    /// The calls are idempotent. Required `true` by a hedge stage; default
    /// `false`, so a file that does not say so is refused.
    #[serde(default)]
    pub idempotent: bool,
    /// Attempts, the first included. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// A fixed delay.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// The latency percentile to hedge at. Default 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// The delay until enough latencies were seen. Default 100 ms.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_delay: Option<Duration>,
    /// A retry budget for the hedges. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
}

impl HedgeStageConfig {
    /// The hedge policy's settings, without the stage's `idempotent`.
    pub fn policy(&self) -> HedgeConfig {
        HedgeConfig {
            max_attempts: self.max_attempts,
            delay: self.delay,
            percentile: self.percentile,
            initial_delay: self.initial_delay,
            budget: self.budget.clone(),
        }
    }
}

/// One stage of a [`PipelineConfig`], tagged by `type`.
///
/// ```toml
/// stages = [
///   { type = "timeout", timeout = "10s" },
///   { type = "retry", max_attempts = 3 },
///   { type = "hedge", idempotent = true, delay = "50ms" },
///   { type = "circuit_breaker", failure_ratio = 0.1 },
///   { type = "timeout", timeout = "2s" },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StageConfig {
    /// A timeout.
    Timeout {
        /// The limit.
        #[serde(with = "humantime_serde")]
        timeout: Duration,
    },
    /// A retry.
    Retry(Box<RetryConfig>),
    /// A circuit breaker.
    CircuitBreaker(BreakerConfig),
    /// A bulkhead.
    Bulkhead(BulkheadConfig),
    /// An adaptive throttle.
    Throttle(ThrottleConfig),
    /// Hedging (only for idempotent calls: see [`HedgeStageConfig`]).
    Hedge(HedgeStageConfig),
}

/// The standard preset in a file, every field optional (see
/// [`StandardBuilder`](crate::pipeline::StandardBuilder) for defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardConfig {
    /// Total timeout.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_timeout: Option<Duration>,
    /// Attempt timeout.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempt_timeout: Option<Duration>,
    /// Attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffConfig>,
    /// Breaker failure ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<f64>,
    /// Breaker minimum calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u32>,
    /// Breaker sampling window.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub sampling_window: Option<Duration>,
    /// Breaker break duration.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub break_duration: Option<Duration>,
}

/// A [`Pipeline`](crate::pipeline::Pipeline) in a file: the `standard`
/// preset (with overrides), or explicit `stages`, outermost first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PipelineConfig {
    /// The standard preset.
    Standard(StandardConfig),
    /// Stages, outermost first.
    Stages(Vec<StageConfig>),
}

#[cfg(feature = "tokio")]
impl PipelineConfig {
    /// The pipeline, validated (each policy by its builder, then the
    /// combination by the pipeline's rules).
    pub fn build(&self, dependency: &str) -> Result<crate::pipeline::Pipeline, ConfigError> {
        use crate::pipeline::Pipeline;
        match self {
            PipelineConfig::Standard(s) => {
                let mut b = Pipeline::standard().dependency(dependency);
                if let Some(v) = s.total_timeout {
                    b = b.total_timeout(v);
                }
                if let Some(v) = s.attempt_timeout {
                    b = b.attempt_timeout(v);
                }
                if let Some(v) = s.max_attempts {
                    b = b.max_attempts(v);
                }
                if let Some(v) = &s.backoff {
                    b = b.backoff(v.build()?);
                }
                if let Some(v) = s.failure_ratio {
                    b = b.failure_ratio(v);
                }
                if let Some(v) = s.min_calls {
                    b = b.min_calls(v);
                }
                if let Some(v) = s.sampling_window {
                    b = b.sampling_window(v);
                }
                if let Some(v) = s.break_duration {
                    b = b.break_duration(v);
                }
                b.build()
            }
            PipelineConfig::Stages(stages) => {
                let mut b = Pipeline::builder().dependency(dependency);
                for s in stages {
                    b = match s {
                        StageConfig::Timeout { timeout } => b.timeout(*timeout),
                        StageConfig::Retry(r) => b.retry(r.build(dependency)?),
                        StageConfig::CircuitBreaker(c) => b.circuit_breaker(c.build(dependency)?),
                        StageConfig::Bulkhead(h) => b.bulkhead(h.build(dependency)?),
                        StageConfig::Throttle(t) => b.throttle(t.builder(dependency).build()?),
                        StageConfig::Hedge(h) => {
                            if h.idempotent {
                                b = b.idempotent();
                            }
                            b.hedge(h.policy().builder(dependency)?.build()?)
                        }
                    };
                }
                b.build()
            }
        }
    }
}

/// Every policy of one dependency; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyConfig {
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// Bulkhead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<BulkheadConfig>,
    /// A standalone timeout.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Adaptive throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleConfig>,
    /// Hedging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<HedgeConfig>,
    /// A pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineConfig>,
}

impl DependencyConfig {
    /// The retry policy, if configured.
    pub fn retry_policy(&self, dependency: &str) -> Result<Option<RetryPolicy>, ConfigError> {
        self.retry.as_ref().map(|r| r.build(dependency)).transpose()
    }

    /// The circuit breaker, if configured.
    pub fn circuit_breaker(&self, dependency: &str) -> Result<Option<CircuitBreaker>, ConfigError> {
        self.breaker
            .as_ref()
            .map(|b| b.build(dependency))
            .transpose()
    }

    /// The bulkhead, if configured.
    pub fn bulkhead(&self, dependency: &str) -> Result<Option<Bulkhead>, ConfigError> {
        self.bulkhead
            .as_ref()
            .map(|b| b.build(dependency))
            .transpose()
    }

    /// The adaptive throttle, if configured.
    pub fn throttle(
        &self,
        dependency: &str,
    ) -> Result<Option<crate::throttle::AdaptiveThrottle>, ConfigError> {
        self.throttle
            .as_ref()
            .map(|t| t.builder(dependency).build())
            .transpose()
    }

    /// The hedge policy, if configured.
    pub fn hedge_policy(
        &self,
        dependency: &str,
    ) -> Result<Option<crate::hedge::HedgePolicy>, ConfigError> {
        self.hedge
            .as_ref()
            .map(|h| h.builder(dependency)?.build())
            .transpose()
    }

    /// The pipeline, if configured.
    #[cfg(feature = "tokio")]
    pub fn pipeline(
        &self,
        dependency: &str,
    ) -> Result<Option<crate::pipeline::Pipeline>, ConfigError> {
        self.pipeline
            .as_ref()
            .map(|p| p.build(dependency))
            .transpose()
    }

    /// Builds every configured policy, to check them all.
    pub fn validate(&self, dependency: &str) -> Result<(), ConfigError> {
        self.retry_policy(dependency)?;
        self.circuit_breaker(dependency)?;
        self.bulkhead(dependency)?;
        if let Some(t) = self.timeout {
            #[cfg(feature = "tokio")]
            crate::Timeout::new(t)?;
            #[cfg(not(feature = "tokio"))]
            let _ = t;
        }
        self.throttle(dependency)?;
        self.hedge_policy(dependency)?;
        #[cfg(feature = "tokio")]
        self.pipeline(dependency)?;
        Ok(())
    }
}
