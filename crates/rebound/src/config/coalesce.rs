//! Request coalescing in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(feature = "tokio")]
use super::BuildEnv;
use crate::ConfigError;

/// A [`Coalescer`](crate::coalesce::Coalescer) in a file: how long
/// followers wait, and whether they share a leader's error.
///
/// ```toml
/// [dependencies.catalog.coalesce]
/// max_wait = "500ms"
/// share_errors = false
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoalesceConfig {
    /// The longest a follower waits for the call it follows. Default: no
    /// limit.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
    /// Whether followers share a failed leader's error. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_errors: Option<bool>,
}

impl CoalesceConfig {
    /// Checks the values: `max_wait`, when set, above zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_wait.is_some_and(|w| w.is_zero()) {
            return Err(ConfigError::new(
                "coalescer",
                "max_wait",
                "must be above zero (leave it out for no limit)",
            ));
        }
        Ok(())
    }

    /// The coalescer, validated, labelled `dependency`, on the clock of
    /// `env`.
    #[cfg(feature = "tokio")]
    pub fn build_in<K, T, E>(
        &self,
        dependency: &str,
        env: &BuildEnv,
    ) -> Result<crate::coalesce::Coalescer<K, T, E>, ConfigError>
    where
        K: std::hash::Hash + Eq + Clone,
        T: Clone,
    {
        self.validate()?;
        let mut c = crate::coalesce::Coalescer::new()
            .dependency(dependency)
            .with_clock(env.clock.clone());
        if let Some(w) = self.max_wait {
            c = c.max_wait(w);
        }
        if let Some(s) = self.share_errors {
            c = c.share_errors(s);
        }
        Ok(c)
    }
}
