//! A cache's freshness in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BuildEnv;
use crate::fallback::StaleCache;
use crate::freshness::Freshness;
use crate::ConfigError;

/// A [`StaleCache`] with a [`Freshness`] in a file: the TTL, its jitter,
/// early refresh, and how long a stale value may stand in for a failure.
///
/// ```toml
/// [dependencies.catalog.cache]
/// ttl = "60s"
/// jitter = 0.1           # each entry lives 54–60 s
/// early_refresh = 1.0    # XFetch, β = 1
/// stale_while_loading = true
/// max_age = "10m"        # serve up to 10 minutes old on error
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a value is served without calling.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// The jitter fraction *x* in [0, 1]: TTLs are `ttl × U(1 − x, 1)`.
    /// Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
    /// The early refresh factor β > 0. Default: no early refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_refresh: Option<f64>,
    /// Serve the stale value while another caller loads. Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_while_loading: Option<bool>,
    /// The oldest value served in place of a failure. Default: `ttl`
    /// (nothing stale is served).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_age: Option<Duration>,
    /// The most entries kept. Default 10 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<usize>,
}

impl CacheConfig {
    /// The freshness rules, validated by [`Freshness`]'s builder.
    pub fn freshness(&self) -> Result<Freshness, ConfigError> {
        let mut f = Freshness::builder(self.ttl);
        if let Some(x) = self.jitter {
            f = f.jitter(x);
        }
        if let Some(b) = self.early_refresh {
            f = f.early_refresh(b);
        }
        if let Some(s) = self.stale_while_loading {
            f = f.stale_while_loading(s);
        }
        f.build()
    }

    /// Checks every value: the freshness rules, `max_age` above zero,
    /// `max_entries` at least 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.freshness()?;
        if self.max_age.is_some_and(|a| a.is_zero()) {
            return Err(ConfigError::new("cache", "max_age", "must be above zero"));
        }
        if self.max_entries == Some(0) {
            return Err(ConfigError::new(
                "cache",
                "max_entries",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The cache, validated, on the clock and randomness of `env` (TTL
    /// jitter and early-refresh draws).
    pub fn build_in<K, V>(&self, env: &BuildEnv) -> Result<StaleCache<K, V>, ConfigError>
    where
        K: std::hash::Hash + Eq,
        V: Clone,
    {
        self.validate()?;
        let mut c = StaleCache::new(self.max_age.unwrap_or(self.ttl))
            .with_freshness(self.freshness()?)
            .with_random(env.random.clone())
            .with_clock(env.clock.clone());
        if let Some(n) = self.max_entries {
            c = c.with_max_entries(n);
        }
        Ok(c)
    }
}
