//! A retry policy in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackoffConfig, BreakerConfig, BudgetConfig, BuildEnv, ThrottleConfig};
use crate::retry::RetryPolicyBuilder;
use crate::{ConfigError, RetryPolicy};

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
    /// executor, so an open breaker stops retrying at once), for a policy
    /// built in code or a simulator variant. Default none. **Refused in a
    /// policy file** ([`Policies`](super::Policies)): a dependency's breaker
    /// is written once, as `[dependencies.NAME.breaker]`, and guards its
    /// retries from there ([`DependencyConfig::retry_builder_in`](super::DependencyConfig::retry_builder_in)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// An adaptive client-side throttle every attempt must pass, for a
    /// policy built in code or a simulator variant. Default none. **Refused
    /// in a policy file**, like [`breaker`](Self::breaker): write
    /// `[dependencies.NAME.throttle]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleConfig>,
}

impl RetryConfig {
    /// The policy's builder, set from the file (adjust the clock, breaker
    /// or budget sharing before building).
    pub fn builder(&self, dependency: &str) -> Result<RetryPolicyBuilder, ConfigError> {
        self.builder_in(dependency, &BuildEnv::default())
    }

    /// The policy's builder, set from the file, with the clock and source
    /// of randomness of `env` for the policy and for the breaker, throttle
    /// and budget inside it.
    pub fn builder_in(
        &self,
        dependency: &str,
        env: &BuildEnv,
    ) -> Result<RetryPolicyBuilder, ConfigError> {
        let mut b = RetryPolicy::builder()
            .dependency(dependency)
            .clock(env.clock.clone())
            .random(env.random.clone());
        if let Some(n) = self.max_attempts {
            b = b.max_attempts(n);
        }
        if let Some(bo) = &self.backoff {
            b = b.backoff(bo.build().map_err(|e| e.within("backoff"))?);
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
            let breaker = cb
                .builder(dependency)
                .clock(env.clock.clone())
                .random(env.random.clone())
                .build();
            b = b.breaker(breaker.map_err(|e| e.within("breaker"))?);
        }
        if let Some(t) = &self.throttle {
            b = b.throttle(
                t.builder(dependency)
                    .clock(env.clock.clone())
                    .random(env.random.clone())
                    .build()
                    .map_err(|e| e.within("throttle"))?,
            );
        }
        if let Some(budget) = &self.budget {
            b = b.budget(budget.build_in(env).map_err(|e| e.within("budget"))?);
        }
        Ok(b)
    }

    /// The policy, validated.
    pub fn build(&self, dependency: &str) -> Result<RetryPolicy, ConfigError> {
        self.builder(dependency)?.build()
    }
}
