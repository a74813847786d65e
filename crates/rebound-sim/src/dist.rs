//! Distributions of durations: service times, network hops, think times.
//!
//! Every draw comes from the run's seeded [`SimRng`], so a run is a pure
//! function of its seed.
//!
//! ```
//! use std::time::Duration;
//! use rebound_sim::{Dist, SimRng};
//!
//! let hop = Dist::normal(Duration::from_millis(10), Duration::from_millis(2));
//! let mut rng = SimRng::new(7);
//! let d = hop.sample(&mut rng);
//! assert!(d < Duration::from_millis(30));
//! assert_eq!(hop.sample_nanos(&mut SimRng::new(7)), d.as_nanos() as u64);
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rng::SimRng;

/// A distribution of durations.
///
/// In a TOML config: `{ constant = "5ms" }`, `{ exponential = "3.3ms" }`
/// (the mean), `{ normal = { mean = "10ms", sd = "2ms" } }` (drawn as
/// `|N(mean, sd)|`, as in Brooker's simulator) or
/// `{ uniform = { low = "1ms", high = "4ms" } }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Dist {
    /// Always the same duration.
    Constant(#[serde(with = "humantime_serde")] Duration),
    /// Exponential with this mean (memoryless: M/M/1 service times,
    /// Poisson inter-arrival times).
    Exponential(#[serde(with = "humantime_serde")] Duration),
    /// `|N(mean, sd)|`: the absolute value of a normal draw.
    Normal {
        /// Mean.
        #[serde(with = "humantime_serde")]
        mean: Duration,
        /// Standard deviation.
        #[serde(with = "humantime_serde")]
        sd: Duration,
    },
    /// Uniform between `low` and `high`, both included.
    Uniform {
        /// Smallest value.
        #[serde(with = "humantime_serde")]
        low: Duration,
        /// Largest value.
        #[serde(with = "humantime_serde")]
        high: Duration,
    },
}

impl Default for Dist {
    fn default() -> Self {
        Dist::Constant(Duration::ZERO)
    }
}

impl Dist {
    /// Always `d`.
    pub const fn constant(d: Duration) -> Self {
        Dist::Constant(d)
    }

    /// Exponential with mean `mean`.
    pub const fn exponential(mean: Duration) -> Self {
        Dist::Exponential(mean)
    }

    /// `|N(mean, sd)|`.
    pub const fn normal(mean: Duration, sd: Duration) -> Self {
        Dist::Normal { mean, sd }
    }

    /// Uniform in `[low, high]`.
    pub const fn uniform(low: Duration, high: Duration) -> Self {
        Dist::Uniform { low, high }
    }

    /// The mean of the distribution (for `Normal`, the mean before the
    /// absolute value, which is what matters when `sd` is small).
    pub fn mean(&self) -> Duration {
        match *self {
            Dist::Constant(d) | Dist::Exponential(d) => d,
            Dist::Normal { mean, .. } => mean,
            Dist::Uniform { low, high } => (low + high) / 2,
        }
    }

    /// Whether this is always zero (so the engine can skip a draw).
    pub fn is_zero(&self) -> bool {
        matches!(self, Dist::Constant(d) if d.is_zero())
    }

    /// One draw.
    pub fn sample(&self, rng: &mut SimRng) -> Duration {
        Duration::from_nanos(self.sample_nanos(rng))
    }

    /// One draw in whole nanoseconds (the engine's unit of time).
    #[inline]
    pub fn sample_nanos(&self, rng: &mut SimRng) -> u64 {
        match *self {
            Dist::Constant(d) => nanos(d),
            Dist::Exponential(m) => rng.exponential(nanos(m) as f64) as u64,
            Dist::Normal { mean, sd } => {
                let x = nanos(mean) as f64 + nanos(sd) as f64 * rng.normal();
                x.abs() as u64
            }
            Dist::Uniform { low, high } => {
                let (lo, hi) = (nanos(low), nanos(high));
                if hi <= lo {
                    lo
                } else {
                    rng.u64_in(lo, hi)
                }
            }
        }
    }

    /// Checks the parameters: `Uniform` needs `low <= high`.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Dist::Uniform { low, high } if low > high => Err(format!(
                "uniform: low ({low:?}) must not exceed high ({high:?})"
            )),
            _ => Ok(()),
        }
    }
}

/// A duration in whole nanoseconds, saturating.
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_right() {
        let mut rng = SimRng::new(1);
        let n = 200_000;
        let e = Dist::exponential(Duration::from_millis(100));
        let mean = (0..n).map(|_| e.sample_nanos(&mut rng) as f64).sum::<f64>() / n as f64;
        assert!((mean / 1e8 - 1.0).abs() < 0.01, "{mean}");
        let g = Dist::normal(Duration::from_millis(10), Duration::from_millis(2));
        let xs: Vec<f64> = (0..n).map(|_| g.sample_nanos(&mut rng) as f64).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((m / 1e7 - 1.0).abs() < 0.01, "{m}");
        assert!((sd / 2e6 - 1.0).abs() < 0.02, "{sd}");
    }
}
