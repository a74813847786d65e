//! Policies in configuration files: TOML and JSON, with human durations
//! (feature `serde`).
//!
//! Every policy has a plain serde type here, with the same field names as
//! its builder's setters and durations written as `"250ms"`, `"30s"`,
//! `"2m"`. A type is turned into the real object **through that builder**,
//! so a file is validated exactly as code is; an unset field keeps the
//! builder's default. A [`Policies`] file holds the policies of each
//! dependency a service calls (retry, breaker, bulkhead, timeout,
//! throttle, hedge, pipeline, and against a thundering herd: `coalesce`,
//! a [`CoalesceConfig`], and `cache`, a [`CacheConfig`] with the TTL, its
//! jitter and early refresh):
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
//!
//! **One place for each setting.** A dependency's breaker is
//! `[dependencies.NAME.breaker]` and its throttle
//! `[dependencies.NAME.throttle]`; with a `retry` table they guard every
//! attempt of it ([`DependencyConfig::retry_builder_in`]). `retry.breaker`
//! and `retry.throttle` are refused in a file, naming the table to move them
//! to ([`DependencyConfig::validate`]).
//!
//! **Ready objects.** [`DependencyConfig::retry_policy`] and the other
//! getters build one policy each; [`DependencyConfig::pipeline_in`] (and
//! `layer`, feature `tower`) builds every policy of a dependency as one
//! [`Pipeline`](crate::pipeline::Pipeline) or tower layer; rebound-http's
//! `RetryMiddlewareBuilder::from_policies` builds a reqwest client's
//! middleware.
//!
//! **Files on disk, reloaded live.** [`Policies::from_path`] reads a file
//! (errors name the file and line); [`LivePolicies`] keeps it in force
//! while it changes, swapping new versions in atomically, keeping the state
//! of breakers and budgets whose tables did not change, and refusing a bad
//! version while the old one stays.

mod backoff;
mod breaker;
mod budget;
mod bulkhead;
mod cache;
mod coalesce;
mod file;
mod hedge;
mod live;
mod path;
mod pipeline;
mod retry;
#[cfg(feature = "tokio")]
mod stack;
mod throttle;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use backoff::{BackoffConfig, BackoffKind, JitterConfig};
pub use breaker::{BreakerConfig, GrowthConfig, WindowConfig};
pub use budget::BudgetConfig;
pub use bulkhead::BulkheadConfig;
pub use cache::CacheConfig;
pub use coalesce::CoalesceConfig;
pub use file::{toml_line_of, ConfigFileError, Policies};
pub use hedge::HedgeConfig;
#[cfg(feature = "tokio")]
pub use live::Watch;
pub use live::{LiveDependency, LivePolicies, Reload, Snapshot};
pub use path::LoadError;
pub use pipeline::{PipelineConfig, StageConfig, StandardConfig};
pub use retry::RetryConfig;
pub use throttle::ThrottleConfig;

use crate::{Bulkhead, CircuitBreaker, Clock, ConfigError, RandomSource, RetryPolicy};

/// The clock and the source of randomness of the policies built from a
/// file, for the `*_in` builders ([`RetryConfig::builder_in`],
/// [`HedgeConfig::builder_in`], [`PipelineConfig::build_in`],
/// [`BudgetConfig::build_in`]): every policy they build, the ones nested
/// inside included (a retry policy's breaker, throttle and budget, a
/// pipeline's stages), reads `clock` and draws from `random`.
///
/// # Default
/// What each builder defaults to: [`Clock::default`] and
/// [`RandomSource::entropy`]. A test or a simulator passes a manual clock
/// and a seeded source, so a file's policies run in virtual time and
/// repeat.
///
/// ```
/// use rebound::config::{BuildEnv, RetryConfig};
/// use rebound::{Clock, RandomSource};
///
/// let (clock, _time) = Clock::manual();
/// let env = BuildEnv { clock, random: RandomSource::seeded(7) };
/// let retry: RetryConfig = toml::from_str("max_attempts = 2")?;
/// let policy = retry.builder_in("inventory", &env)?.build()?;
/// assert_eq!(policy.random().seed(), Some(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    /// The clock every policy reads.
    pub clock: Clock,
    /// The source every policy draws from (jitter, break jitter, the
    /// throttle's rejections).
    pub random: RandomSource,
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
    /// Request coalescing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<CoalesceConfig>,
    /// A read-through cache's freshness (TTL, jitter, early refresh) and
    /// stale-on-error age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
}

impl DependencyConfig {
    /// The retry policy, if configured, with the dependency's
    /// [`breaker`](Self::breaker) and [`throttle`](Self::throttle) inside
    /// it (see [`retry_builder_in`](Self::retry_builder_in)).
    pub fn retry_policy(&self, dependency: &str) -> Result<Option<RetryPolicy>, ConfigError> {
        self.retry_builder_in(dependency, &BuildEnv::default())?
            .map(|b| b.build().map_err(|e| e.within("retry")))
            .transpose()
    }

    /// The retry policy's builder, if a `retry` is configured, on the clock
    /// and randomness of `env`, with the dependency's `breaker` and
    /// `throttle` plugged in: one breaker per dependency, which every
    /// attempt must pass (an open breaker stops retrying at once), and the
    /// same for the throttle. An error's path is where the field is written
    /// under the dependency (`retry.backoff.base`, `breaker.min_calls`).
    ///
    /// ```
    /// use rebound::config::{BuildEnv, Policies};
    /// let file = r#"
    /// [dependencies.inventory.retry]
    /// max_attempts = 3
    /// [dependencies.inventory.breaker]
    /// consecutive_failures = 5
    /// "#;
    /// let policies = Policies::from_toml_str(file)?;
    /// let inventory = policies.dependency("inventory").unwrap();
    /// let retry = inventory.retry_builder_in("inventory", &BuildEnv::default())?.unwrap().build()?;
    /// assert_eq!(retry.breaker().unwrap().dependency(), "inventory");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_builder_in(
        &self,
        dependency: &str,
        env: &BuildEnv,
    ) -> Result<Option<crate::retry::RetryPolicyBuilder>, ConfigError> {
        let Some(r) = &self.retry else {
            return Ok(None);
        };
        let mut b = r
            .builder_in(dependency, env)
            .map_err(|e| e.within("retry"))?;
        if let Some(cb) = &self.breaker {
            let breaker = cb
                .builder(dependency)
                .clock(env.clock.clone())
                .random(env.random.clone())
                .build();
            b = b.breaker(breaker.map_err(|e| e.within("breaker"))?);
        }
        if let Some(t) = &self.throttle {
            let throttle = t
                .builder(dependency)
                .clock(env.clock.clone())
                .random(env.random.clone())
                .build();
            b = b.throttle(throttle.map_err(|e| e.within("throttle"))?);
        }
        Ok(Some(b))
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

    /// Builds every configured policy, to check them all. The error's
    /// [`path`](ConfigError::path) is where the field is written under the
    /// dependency, e.g. `retry.backoff.base`.
    ///
    /// Also refused: `retry.breaker` and `retry.throttle` in a file. Each
    /// setting has one place: a dependency's breaker is
    /// `[dependencies.NAME.breaker]` and its throttle
    /// `[dependencies.NAME.throttle]`, retried or not; with a `retry`
    /// policy they guard every attempt of it (see
    /// [`retry_builder_in`](Self::retry_builder_in)).
    ///
    /// ```
    /// use rebound::config::Policies;
    /// let file = "[dependencies.inventory.retry]\nmax_attempts = 3\n\n[dependencies.inventory.retry.breaker]\nfailure_ratio = 0.5\n";
    /// let err = Policies::from_toml_str(file).unwrap_err();
    /// assert_eq!(err.path(), "dependencies.inventory.retry.breaker");
    /// assert_eq!(err.line(), Some(4));
    /// assert!(err.message().contains("[dependencies.inventory.breaker]"), "{err}");
    /// ```
    pub fn validate(&self, dependency: &str) -> Result<(), ConfigError> {
        if let Some(r) = &self.retry {
            for (set, field) in [
                (r.breaker.is_some(), "breaker"),
                (r.throttle.is_some(), "throttle"),
            ] {
                if set {
                    return Err(ConfigError::new(
                        "dependency",
                        field,
                        format!(
                            "a dependency's {field} is written once, as \
                             `[dependencies.{dependency}.{field}]`, where it also guards every \
                             attempt of the retry policy: move this table there"
                        ),
                    )
                    .within("retry"));
                }
            }
        }
        self.retry_policy(dependency)?;
        self.circuit_breaker(dependency)
            .map_err(|e| e.within("breaker"))?;
        self.bulkhead(dependency)
            .map_err(|e| e.within("bulkhead"))?;
        if let Some(t) = self.timeout {
            #[cfg(feature = "tokio")]
            crate::Timeout::new(t)?;
            #[cfg(not(feature = "tokio"))]
            let _ = t;
        }
        self.throttle(dependency)
            .map_err(|e| e.within("throttle"))?;
        self.hedge_policy(dependency)
            .map_err(|e| e.within("hedge"))?;
        #[cfg(feature = "tokio")]
        self.pipeline(dependency)?;
        if let Some(c) = &self.coalesce {
            c.validate().map_err(|e| e.within("coalesce"))?;
        }
        if let Some(c) = &self.cache {
            c.validate().map_err(|e| e.within("cache"))?;
        }
        Ok(())
    }
}
