//! Building a [`HedgePolicy`], validated.

use std::sync::Arc;
use std::time::Duration;

use crate::budget::RetryBudget;
use crate::error::{check, ConfigError};
use crate::hedge::{HedgeDelay, HedgePolicy, LatencyTracker, MAX_HEDGE_ATTEMPTS};
use crate::Clock;

const COMPONENT: &str = "hedge policy";

/// Builder for [`HedgePolicy`]; [`build`](Self::build) validates every
/// setting and names the first bad one.
#[derive(Debug, Clone)]
#[must_use]
pub struct HedgePolicyBuilder {
    delay: HedgeDelay,
    max_attempts: u32,
    budget: Option<RetryBudget>,
    dependency: Arc<str>,
    clock: Clock,
}

impl Default for HedgePolicyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HedgePolicyBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        HedgePolicyBuilder {
            delay: HedgeDelay::ADAPTIVE,
            max_attempts: 2,
            budget: None,
            dependency: Arc::from("default"),
            clock: Clock::default(),
        }
    }

    /// Hedge after a fixed delay. Default: adaptive, see
    /// [`percentile_delay`](Self::percentile_delay). Must be non-zero.
    pub fn fixed_delay(mut self, delay: Duration) -> Self {
        self.delay = HedgeDelay::Fixed(delay);
        self
    }

    /// Hedge at the `percentile` of recent latencies (the default, at
    /// 0.95), using `initial` until 20 latencies were recorded, never below
    /// 1 ms. `percentile` must be in (0, 1); `initial` non-zero.
    pub fn percentile_delay(self, percentile: f64, initial: Duration) -> Self {
        self.percentile(percentile).initial_delay(initial)
    }

    /// Hedge at the `percentile` of recent latencies, keeping the other
    /// settings of an adaptive delay (the defaults of
    /// [`HedgeDelay::ADAPTIVE`] after a fixed one). Default 0.95. Must be
    /// in (0, 1).
    pub fn percentile(mut self, p: f64) -> Self {
        if let HedgeDelay::Percentile { percentile, .. } = &mut self.adaptive() {
            *percentile = p;
        }
        self
    }

    /// The adaptive delay used until enough latencies were recorded,
    /// keeping its other settings (as [`percentile`](Self::percentile)
    /// does). Default 100 ms. Must be non-zero.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        if let HedgeDelay::Percentile { initial, .. } = &mut self.adaptive() {
            *initial = d;
        }
        self
    }

    /// The delay, made adaptive if it was fixed.
    fn adaptive(&mut self) -> &mut HedgeDelay {
        if let HedgeDelay::Fixed(_) = self.delay {
            self.delay = HedgeDelay::ADAPTIVE;
        }
        &mut self.delay
    }

    /// Sets the delay directly; see [`HedgeDelay`].
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// Attempts at most for one call, **the first included** (so 2 = one
    /// hedge). Default 2. Must be between 1 and 10.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The retry budget hedges withdraw from, shared with the retries of the
    /// same dependency. Default: none.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The `dependency` label. Default `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The clock latencies are measured on. Default [`Clock::default`]
    /// (follows tokio's paused time).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates and builds.
    ///
    /// Rejected: `max_attempts` 0 or above 10; a zero fixed or initial
    /// delay; a percentile outside (0, 1).
    pub fn build(self) -> Result<HedgePolicy, ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_HEDGE_ATTEMPTS {
            return Err(ConfigError::new(
                COMPONENT,
                "max_attempts",
                format!(
                    "must be between 1 and {MAX_HEDGE_ATTEMPTS} (it counts the first attempt; got {})",
                    self.max_attempts
                ),
            ));
        }
        match self.delay {
            HedgeDelay::Fixed(d) => {
                check::non_zero_duration(COMPONENT, "delay", d)?;
            }
            HedgeDelay::Percentile {
                percentile,
                initial,
                ..
            } => {
                if !(percentile.is_finite() && percentile > 0.0 && percentile < 1.0) {
                    return Err(ConfigError::new(
                        COMPONENT,
                        "percentile",
                        format!("must be in (0, 1), e.g. 0.95 (got {percentile})"),
                    ));
                }
                check::non_zero_duration(COMPONENT, "initial_delay", initial)?;
            }
        }
        crate::telemetry::register_all(&[crate::telemetry::HEDGE_ATTEMPTS_TOTAL], &self.dependency);
        if let Some(b) = &self.budget {
            crate::telemetry::register_counter(
                crate::telemetry::RETRY_BUDGET_EXHAUSTED_TOTAL,
                &self.dependency,
                None,
            );
            b.observe(&self.dependency);
        }
        Ok(HedgePolicy {
            delay: self.delay,
            max_attempts: self.max_attempts,
            budget: self.budget,
            dependency: self.dependency,
            clock: self.clock,
            latency: Arc::new(LatencyTracker::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_the_field() {
        let e = HedgePolicy::builder().max_attempts(0).build().unwrap_err();
        assert_eq!(e.field(), "max_attempts");
        let e = HedgePolicy::builder()
            .percentile_delay(1.0, Duration::from_millis(5))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "percentile");
        let e = HedgePolicy::builder()
            .fixed_delay(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "delay");
    }
}
