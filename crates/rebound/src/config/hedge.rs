//! A hedge policy in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BudgetConfig, BuildEnv};
use crate::hedge::HedgePolicyBuilder;
use crate::ConfigError;

/// A [`HedgePolicy`](crate::hedge::HedgePolicy) in a file: `delay` for a
/// fixed delay, or `percentile` (and `initial_delay`) for an adaptive one;
/// the same fields for a dependency's own `hedge` table and for a hedge
/// stage of a [`PipelineConfig`](super::PipelineConfig), where
/// `idempotent = true` is the promise that the pipeline's calls may be sent
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
/// assert_eq!(err.path(), "dependencies.catalog.pipeline.stages[2].idempotent", "{err}");
/// // So is a hedge the attempt timeout would always beat.
/// let err = Policies::from_toml_str(&file.replace("\"50ms\"", "\"500ms\"")).unwrap_err();
/// assert_eq!(err.path(), "dependencies.catalog.pipeline.stages[2].delay", "{err}");
/// assert_eq!(err.line(), Some(6), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    /// The calls may run twice at the same time: required `true` by a
    /// pipeline's hedge stage (default `false`, so a file that does not say
    /// so is refused). On a dependency's own `hedge` table it states the
    /// same of every call to the dependency.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
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

impl HedgeConfig {
    /// The policy's builder, set from the file.
    pub fn builder(&self, dependency: &str) -> Result<HedgePolicyBuilder, ConfigError> {
        self.builder_in(dependency, &BuildEnv::default())
    }

    /// The policy's builder, set from the file, with the clock of `env`
    /// for the policy and its budget.
    pub fn builder_in(
        &self,
        dependency: &str,
        env: &BuildEnv,
    ) -> Result<HedgePolicyBuilder, ConfigError> {
        let mut b = crate::hedge::HedgePolicy::builder()
            .dependency(dependency)
            .clock(env.clock.clone());
        if let Some(n) = self.max_attempts {
            b = b.max_attempts(n);
        }
        match (self.delay, self.percentile, self.initial_delay) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ConfigError::new(
                    "hedge policy",
                    "delay",
                    "is set with `percentile` or `initial_delay`: choose a fixed delay, or an adaptive one",
                ))
            }
            (Some(d), None, None) => b = b.fixed_delay(d),
            (None, p, initial) => {
                if let Some(p) = p {
                    b = b.percentile(p);
                }
                if let Some(d) = initial {
                    b = b.initial_delay(d);
                }
            }
        }
        if let Some(budget) = &self.budget {
            b = b.budget(budget.build_in(env).map_err(|e| e.within("budget"))?);
        }
        Ok(b)
    }
}
