//! A backoff in a file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::{Backoff, Jitter};
use crate::ConfigError;

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
    /// Linear step; required by `linear`.
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
        let mut b = match (self.kind, self.step) {
            (BackoffKind::Exponential, _) => Backoff::exponential(self.base),
            (BackoffKind::Linear, Some(step)) => Backoff::linear(self.base, step),
            (BackoffKind::Linear, None) => {
                return Err(ConfigError::new(
                    "backoff",
                    "step",
                    "is required for a linear backoff (`base + step × n`)",
                ))
            }
            (BackoffKind::Constant, _) => Backoff::constant(self.base),
        };
        if self.factor.is_some() && self.kind != BackoffKind::Exponential {
            return Err(ConfigError::new(
                "backoff",
                "factor",
                "applies to an exponential backoff only",
            ));
        }
        if self.step.is_some() && self.kind != BackoffKind::Linear {
            return Err(ConfigError::new(
                "backoff",
                "step",
                "applies to a linear backoff only",
            ));
        }
        if let Some(f) = self.factor {
            b = b.with_factor(f);
        }
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
