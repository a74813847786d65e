//! Added latency: a fixed delay or a draw from a distribution.

use std::fmt;
use std::time::Duration;

use crate::duration::format as dur;

/// How much delay a latency fault adds: fixed, or drawn per request from a
/// distribution.
///
/// | distribution | parameters | draws |
/// |---|---|---|
/// | [`fixed`](Self::fixed) | `delay` | always `delay` |
/// | [`uniform`](Self::uniform) | `min`, `max` | evenly in `[min, max]` |
/// | [`normal`](Self::normal) | `mean`, `std_dev` | a bell around `mean`, negative draws become 0 |
/// | [`lognormal`](Self::lognormal) | `median`, `sigma` | a long right tail, as real latencies have: half the draws below `median`, `sigma` the spread of the logarithm (0.5 is mild, 1.5 wild) |
///
/// [`with_max`](Self::with_max) caps the normal and lognormal draws; without
/// it no draw exceeds one hour. Draws come from the proxy's seeded random
/// source, so a seed repeats them.
///
/// ```
/// use std::time::Duration;
/// use rebound_chaos::Latency;
///
/// let slow = Latency::lognormal(Duration::from_millis(200), 0.5).with_max(Duration::from_secs(2));
/// let mut rng = fastrand::Rng::with_seed(7);
/// let draw = slow.sample(&mut rng);
/// assert!(draw <= Duration::from_secs(2));
/// assert_eq!(Latency::fixed(Duration::from_millis(50)).sample(&mut rng), Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    dist: Dist,
    max: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dist {
    Fixed(Duration),
    Uniform { min: Duration, max: Duration },
    Normal { mean: Duration, std_dev: Duration },
    LogNormal { median: Duration, sigma: f64 },
}

/// The ceiling of a draw when no `max` is given.
const CEILING: Duration = Duration::from_secs(3600);

impl Latency {
    /// Always `delay`.
    pub const fn fixed(delay: Duration) -> Self {
        Latency {
            dist: Dist::Fixed(delay),
            max: None,
        }
    }

    /// Evenly spread in `[min, max]`; `min` must not exceed `max`.
    pub const fn uniform(min: Duration, max: Duration) -> Self {
        Latency {
            dist: Dist::Uniform { min, max },
            max: None,
        }
    }

    /// Normally distributed around `mean` with standard deviation `std_dev`;
    /// a negative draw is 0.
    pub const fn normal(mean: Duration, std_dev: Duration) -> Self {
        Latency {
            dist: Dist::Normal { mean, std_dev },
            max: None,
        }
    }

    /// Log-normally distributed: `median` is the middle draw and `sigma`
    /// (finite, ≥ 0) the standard deviation of the draws' natural logarithm.
    /// The mean is `median * exp(sigma² / 2)`.
    pub const fn lognormal(median: Duration, sigma: f64) -> Self {
        Latency {
            dist: Dist::LogNormal { median, sigma },
            max: None,
        }
    }

    /// Caps every draw of a normal or lognormal latency at `max` (default:
    /// one hour). Fixed and uniform latencies have their own bounds and
    /// refuse a cap.
    pub const fn with_max(mut self, max: Duration) -> Self {
        self.max = Some(max);
        self
    }

    /// One delay.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        let draw = match self.dist {
            Dist::Fixed(d) => return d,
            Dist::Uniform { min, max } => {
                let (lo, hi) = (
                    min.as_nanos() as u64,
                    max.as_nanos().max(min.as_nanos()) as u64,
                );
                return Duration::from_nanos(rng.u64(lo..=hi));
            }
            Dist::Normal { mean, std_dev } => {
                mean.as_secs_f64() + std_dev.as_secs_f64() * standard_normal(rng)
            }
            Dist::LogNormal { median, sigma } => {
                let sigma = if sigma.is_finite() {
                    sigma.max(0.0)
                } else {
                    0.0
                };
                median.as_secs_f64() * (sigma * standard_normal(rng)).exp()
            }
        };
        let cap = self.max.unwrap_or(CEILING);
        if draw.is_nan() || draw <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(draw).map_or(cap, |d| d.min(cap))
    }

    /// The first parameter that is wrong: `(field, why)`.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        match self.dist {
            Dist::Fixed(_) | Dist::Uniform { .. } if self.max.is_some() => {
                return Err((
                    "max",
                    "only a normal or lognormal latency takes a cap (`max`); a uniform one takes `min` and `max` as its bounds".into(),
                ))
            }
            Dist::Uniform { min, max } if min > max => {
                return Err((
                    "min",
                    format!("min ({}) is greater than max ({})", dur(min), dur(max)),
                ))
            }
            Dist::LogNormal { sigma, .. } if !sigma.is_finite() || sigma < 0.0 => {
                return Err(("sigma", format!("{sigma} must be a finite number ≥ 0")))
            }
            _ => {}
        }
        Ok(())
    }

    /// The name of the distribution, as written in a spec.
    pub(crate) fn distribution(&self) -> &'static str {
        match self.dist {
            Dist::Fixed(_) => "fixed",
            Dist::Uniform { .. } => "uniform",
            Dist::Normal { .. } => "normal",
            Dist::LogNormal { .. } => "lognormal",
        }
    }

    /// The parameters as spec fields: `[("median", "200ms"), ("sigma", "0.5")]`.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Param)> {
        let mut out = match self.dist {
            Dist::Fixed(d) => vec![("delay", Param::Duration(d))],
            Dist::Uniform { min, max } => {
                vec![("min", Param::Duration(min)), ("max", Param::Duration(max))]
            }
            Dist::Normal { mean, std_dev } => vec![
                ("mean", Param::Duration(mean)),
                ("std_dev", Param::Duration(std_dev)),
            ],
            Dist::LogNormal { median, sigma } => vec![
                ("median", Param::Duration(median)),
                ("sigma", Param::Number(sigma)),
            ],
        };
        if let Some(max) = self.max {
            out.push(("max", Param::Duration(max)));
        }
        out
    }
}

/// A parameter's value, for writing a latency back out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param {
    Duration(Duration),
    Number(f64),
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !matches!(self.dist, Dist::Fixed(_)) {
            write!(f, "distribution={}", self.distribution())?;
        }
        for (i, (name, value)) in self.fields().into_iter().enumerate() {
            if i > 0 || !matches!(self.dist, Dist::Fixed(_)) {
                f.write_str(" ")?;
            }
            match value {
                Param::Duration(d) => write!(f, "{name}={}", dur(d))?,
                Param::Number(x) => write!(f, "{name}={x}")?,
            }
        }
        Ok(())
    }
}

/// One draw of a standard normal variable (Box–Muller).
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    // 1 - [0, 1) is (0, 1]: the logarithm never sees 0.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(l: Latency, n: usize) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(2015);
        let mut v: Vec<f64> = (0..n).map(|_| l.sample(&mut rng).as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn uniform_draws_cover_the_range_evenly() {
        let v = draws(Latency::uniform(ms(100), ms(300)), 20_000);
        assert!(v[0] >= 0.1 && v[v.len() - 1] <= 0.3);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean - 0.2).abs() < 0.003, "{mean}");
        assert!((v[v.len() / 4] - 0.15).abs() < 0.005, "{}", v[v.len() / 4]);
    }

    #[test]
    fn normal_draws_have_the_mean_and_spread_asked() {
        let v = draws(Latency::normal(ms(500), ms(100)), 20_000);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        assert!((sd - 0.1).abs() < 0.005, "{sd}");
    }

    #[test]
    fn normal_draws_below_zero_are_zero() {
        let v = draws(Latency::normal(ms(10), ms(100)), 2_000);
        assert_eq!(v[0], 0.0);
        assert!(v.iter().all(|x| *x >= 0.0));
    }

    #[test]
    fn lognormal_draws_have_the_median_and_a_long_tail() {
        let v = draws(Latency::lognormal(ms(200), 0.5), 20_000);
        let median = v[v.len() / 2];
        assert!((median - 0.2).abs() < 0.006, "{median}");
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        // exp(sigma^2 / 2) = 1.133
        assert!((mean / 0.2 - 1.133).abs() < 0.02, "{mean}");
        // p99 = median * exp(2.326 * sigma) = 0.640 s
        let p99 = v[v.len() * 99 / 100];
        assert!((p99 - 0.640).abs() < 0.03, "{p99}");
    }

    #[test]
    fn a_cap_bounds_every_draw() {
        let v = draws(Latency::lognormal(ms(200), 2.0).with_max(ms(400)), 5_000);
        assert_eq!(v[v.len() - 1], 0.4);
        let v = draws(Latency::lognormal(Duration::from_secs(1000), 50.0), 1_000);
        assert!(v[v.len() - 1] <= 3600.0);
    }

    #[test]
    fn fixed_is_fixed_and_seeds_repeat() {
        assert!(draws(Latency::fixed(ms(42)), 10)
            .iter()
            .all(|x| *x == 0.042));
        assert_eq!(
            draws(Latency::normal(ms(10), ms(3)), 50),
            draws(Latency::normal(ms(10), ms(3)), 50)
        );
    }

    #[test]
    fn bad_parameters_name_their_field() {
        assert_eq!(Latency::uniform(ms(3), ms(1)).check().unwrap_err().0, "min");
        assert_eq!(
            Latency::lognormal(ms(3), -1.0).check().unwrap_err().0,
            "sigma"
        );
        assert_eq!(
            Latency::lognormal(ms(3), f64::NAN).check().unwrap_err().0,
            "sigma"
        );
        assert_eq!(
            Latency::fixed(ms(3)).with_max(ms(1)).check().unwrap_err().0,
            "max"
        );
        assert!(Latency::normal(ms(3), ms(1))
            .with_max(ms(9))
            .check()
            .is_ok());
    }

    #[test]
    fn writes_itself_as_spec_fields() {
        assert_eq!(Latency::fixed(ms(200)).to_string(), "delay=200ms");
        assert_eq!(
            Latency::lognormal(ms(200), 0.5)
                .with_max(Duration::from_secs(2))
                .to_string(),
            "distribution=lognormal median=200ms sigma=0.5 max=2s"
        );
    }
}
