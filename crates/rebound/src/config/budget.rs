//! A retry budget in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BuildEnv;
use crate::{ConfigError, RetryBudget};

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
        self.build_in(&BuildEnv::default())
    }

    /// The budget, validated, on the clock of `env` (a ratio budget's
    /// window reads it).
    pub fn build_in(&self, env: &BuildEnv) -> Result<RetryBudget, ConfigError> {
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
                b.clock(env.clock.clone()).build()
            }
            BudgetConfig::TokenBucket {
                max_tokens,
                token_ratio,
            } => RetryBudget::token_bucket(max_tokens, token_ratio),
        }
    }
}
