//! A pipeline in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(feature = "tokio")]
use super::BuildEnv;
use super::{
    BackoffConfig, BreakerConfig, BulkheadConfig, HedgeConfig, RetryConfig, ThrottleConfig,
};
#[cfg(feature = "tokio")]
use crate::ConfigError;

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
    /// Hedging (only for idempotent calls: see [`HedgeConfig`]).
    Hedge(HedgeConfig),
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
    /// combination by the pipeline's rules). An error's
    /// [`path`](ConfigError::path) is where the field is written under the
    /// dependency: `pipeline.stages[2].delay`, `pipeline.standard.max_attempts`,
    /// or `pipeline.stages` for a rule about the combination.
    pub fn build(&self, dependency: &str) -> Result<crate::pipeline::Pipeline, ConfigError> {
        self.build_in(dependency, &BuildEnv::default())
    }

    /// The pipeline, validated as [`build`](Self::build) does, with the
    /// clock and source of randomness of `env` for the pipeline and every
    /// policy in its stages.
    pub fn build_in(
        &self,
        dependency: &str,
        env: &BuildEnv,
    ) -> Result<crate::pipeline::Pipeline, ConfigError> {
        match self {
            PipelineConfig::Standard(s) => {
                s.build(dependency, env).map_err(|e| e.within("pipeline"))
            }
            PipelineConfig::Stages(stages) => build_stages(stages, dependency, env),
        }
    }
}

#[cfg(feature = "tokio")]
impl StandardConfig {
    /// The preset with the file's settings; errors name the field under
    /// `standard`.
    fn build(
        &self,
        dependency: &str,
        env: &BuildEnv,
    ) -> Result<crate::pipeline::Pipeline, ConfigError> {
        let mut b = crate::pipeline::Pipeline::standard()
            .dependency(dependency)
            .clock(env.clock.clone())
            .random(env.random.clone());
        if let Some(v) = self.total_timeout {
            b = b.total_timeout(v);
        }
        if let Some(v) = self.attempt_timeout {
            b = b.attempt_timeout(v);
        }
        if let Some(v) = self.max_attempts {
            b = b.max_attempts(v);
        }
        if let Some(v) = &self.backoff {
            b = b.backoff(
                v.build()
                    .map_err(|e| e.within("backoff").within("standard"))?,
            );
        }
        if let Some(v) = self.failure_ratio {
            b = b.failure_ratio(v);
        }
        if let Some(v) = self.min_calls {
            b = b.min_calls(v);
        }
        if let Some(v) = self.sampling_window {
            b = b.sampling_window(v);
        }
        if let Some(v) = self.break_duration {
            b = b.break_duration(v);
        }
        b.build().map_err(|e| e.within("standard"))
    }
}

/// A pipeline from its stages; see [`PipelineConfig::build`].
#[cfg(feature = "tokio")]
fn build_stages(
    stages: &[StageConfig],
    dependency: &str,
    env: &BuildEnv,
) -> Result<crate::pipeline::Pipeline, ConfigError> {
    let mut b = crate::pipeline::Pipeline::builder()
        .dependency(dependency)
        .clock(env.clock.clone());
    for (i, s) in stages.iter().enumerate() {
        let at = |e: ConfigError| e.within(format_args!("stages[{i}]")).within("pipeline");
        b = match s {
            StageConfig::Timeout { timeout } => {
                crate::Timeout::new(*timeout).map_err(at)?;
                b.timeout(*timeout)
            }
            StageConfig::Retry(r) => b.retry(
                r.builder_in(dependency, env)
                    .and_then(|r| r.build())
                    .map_err(at)?,
            ),
            StageConfig::CircuitBreaker(c) => {
                let breaker = c
                    .builder(dependency)
                    .clock(env.clock.clone())
                    .random(env.random.clone())
                    .build();
                b.circuit_breaker(breaker.map_err(at)?)
            }
            StageConfig::Bulkhead(h) => {
                let bulkhead = h.builder(dependency).clock(env.clock.clone()).build();
                b.bulkhead(bulkhead.map_err(at)?)
            }
            StageConfig::Throttle(t) => {
                let throttle = t
                    .builder(dependency)
                    .clock(env.clock.clone())
                    .random(env.random.clone())
                    .build();
                b.throttle(throttle.map_err(at)?)
            }
            StageConfig::Hedge(h) => {
                if h.idempotent {
                    b = b.idempotent();
                }
                let policy = h.builder_in(dependency, env).and_then(|p| p.build());
                b.hedge(policy.map_err(at)?)
            }
        };
    }
    b.build().map_err(|e| {
        // A rule about one stage names the key of that stage it is about;
        // a rule about the combination, the stages.
        let Some(i) = e.stage() else {
            return e.placed_at("pipeline.stages");
        };
        let key = match (e.field(), &stages[i]) {
            ("idempotent", _) => Some("idempotent"),
            ("sampling_window", _) => Some("window"),
            ("hedge_delay", StageConfig::Hedge(h)) if h.delay.is_some() => Some("delay"),
            ("hedge_delay", StageConfig::Hedge(h)) if h.initial_delay.is_some() => {
                Some("initial_delay")
            }
            _ => None,
        };
        match key {
            Some(k) => e.placed_at(format!("pipeline.stages[{i}].{k}")),
            None => e.placed_at(format!("pipeline.stages[{i}]")),
        }
    })
}
