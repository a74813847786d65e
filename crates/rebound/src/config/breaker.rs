//! A circuit breaker in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::{BreakGrowth, CircuitBreakerBuilder, SlidingWindow, DEFAULT_TIME_BUCKETS};
use crate::{CircuitBreaker, ConfigError};

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
        /// Slices. Default [`DEFAULT_TIME_BUCKETS`] (10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        buckets: Option<u32>,
    },
}

impl From<WindowConfig> for SlidingWindow {
    fn from(w: WindowConfig) -> Self {
        match w {
            WindowConfig::Count { size } => SlidingWindow::Count { size },
            WindowConfig::Time { duration, buckets } => SlidingWindow::Time {
                duration,
                buckets: buckets.unwrap_or(DEFAULT_TIME_BUCKETS),
            },
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
