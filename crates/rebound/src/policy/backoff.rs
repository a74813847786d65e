//! Backoff schedules and jitter.
//!
//! A [`Backoff`] answers one question: *how long to wait before retry number
//! `n`?* It is a small `Copy` value made of a [`Schedule`] (how the delay
//! grows), a cap (`max_delay`, applied **before** jitter) and a [`Jitter`]
//! (how the delay is randomized so that clients that failed together do not
//! retry together).
//!
//! Retries are numbered from 0: retry 0 is the second attempt.
//!
//! | schedule | delay before retry `n` |
//! |---|---|
//! | [`Schedule::Constant`] | `delay` |
//! | [`Schedule::Linear`] | `base + step * n` |
//! | [`Schedule::Exponential`] | `base * factor^n` |
//!
//! With `d = min(max_delay, schedule(n))`:
//!
//! | jitter | delay |
//! |---|---|
//! | [`Jitter::None`] | `d` |
//! | [`Jitter::Full`] | `U(0, d)` |
//! | [`Jitter::Equal`] | `d/2 + U(0, d/2)` |
//! | [`Jitter::Decorrelated`] | `U(base, min(max_delay, 3 * previous))`, previous starting at `base` |
//! | [`Jitter::Proportional(x)`](Jitter::Proportional) | `U(d * (1 - x), min(max_delay, d * (1 + x)))` |
//!
//! The default follows the AWS recommendation (Marc Brooker, "Exponential
//! Backoff And Jitter", AWS Architecture Blog, 2015): exponential from
//! 100 ms, factor 2, capped at 20 s, with full jitter.
//!
//! Decorrelated jitter (Brooker, 2015) is usually written
//! `min(cap, U(base, previous * 3))`. Once `previous * 3` passes the cap that
//! formula returns exactly `cap` most of the time, and the randomness that
//! was the point of it disappears — clients sitting at the cap retry in
//! lock-step. rebound draws from `U(base, min(cap, previous * 3))` instead:
//! identical below the cap, still spread out at it. Proportional jitter is
//! bounded the same way, so **no delay ever exceeds `max_delay`**.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Backoff, Jitter};
//!
//! let backoff = Backoff::exponential(Duration::from_millis(100))
//!     .with_max_delay(Duration::from_secs(5))
//!     .with_jitter(Jitter::None);
//! let delays: Vec<_> = backoff.delays(fastrand::Rng::with_seed(1)).take(4).collect();
//! assert_eq!(delays, [100, 200, 400, 800].map(Duration::from_millis));
//! ```

use std::time::Duration;

use crate::error::{check, ConfigError};

const COMPONENT: &str = "backoff";

/// How the delay grows from one retry to the next (before the cap and jitter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The same delay before every retry.
    Constant {
        /// The delay.
        delay: Duration,
    },
    /// `base + step * n` before retry `n`.
    Linear {
        /// Delay before the first retry.
        base: Duration,
        /// Added for each further retry.
        step: Duration,
    },
    /// `base * factor^n` before retry `n`.
    Exponential {
        /// Delay before the first retry.
        base: Duration,
        /// Growth factor, at least 1. Default 2.
        factor: f64,
    },
}

impl Schedule {
    /// The delay before the first retry (`base`, or `delay` when constant).
    pub const fn base(&self) -> Duration {
        match *self {
            Schedule::Constant { delay } => delay,
            Schedule::Linear { base, .. } | Schedule::Exponential { base, .. } => base,
        }
    }
}

/// How a delay is randomized. See the [module docs](self) for each formula.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Jitter {
    /// No randomness: `d`.
    None,
    /// `U(0, d)`: the most spread, the least total work (the default).
    #[default]
    Full,
    /// `d/2 + U(0, d/2)`: never waits less than half the schedule.
    Equal,
    /// `U(base, min(max_delay, 3 * previous))`, stateful per call; ignores the
    /// schedule's growth, using only its base and the cap.
    Decorrelated,
    /// `d * U(1 - x, 1 + x)` with `x` in `[0, 1]`, bounded by `max_delay`.
    /// gRPC uses `x = 0.2`.
    Proportional(f64),
}

/// A retry delay schedule: [`Schedule`] + cap + [`Jitter`].
///
/// # Default
/// `Backoff::exponential(100 ms)`: factor 2, `max_delay` 20 s, full jitter.
///
/// ```
/// use std::time::Duration;
/// use rebound::{Backoff, Jitter};
///
/// let b = Backoff::default();
/// assert_eq!(b, Backoff::exponential(Duration::from_millis(100)));
/// assert_eq!(b.jitter(), Jitter::Full);
/// assert_eq!(b.max_delay(), Duration::from_secs(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    schedule: Schedule,
    max_delay: Duration,
    jitter: Jitter,
    /// The schedule's base and the cap in whole nanoseconds, kept so that
    /// the common exponential step is one shift and one compare.
    base_nanos: u64,
    cap_nanos: u64,
}

/// Default cap on a single delay (the AWS SDKs' standard mode uses 20 s).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(20);

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100))
    }
}

impl Backoff {
    /// `base * 2^n`, capped at 20 s, full jitter.
    pub const fn exponential(base: Duration) -> Self {
        Backoff {
            schedule: Schedule::Exponential { base, factor: 2.0 },
            max_delay: DEFAULT_MAX_DELAY,
            jitter: Jitter::Full,
            base_nanos: nanos_u64(base),
            cap_nanos: nanos_u64(DEFAULT_MAX_DELAY),
        }
    }

    /// `base + step * n`, capped at 20 s, full jitter.
    pub const fn linear(base: Duration, step: Duration) -> Self {
        Backoff {
            schedule: Schedule::Linear { base, step },
            max_delay: DEFAULT_MAX_DELAY,
            jitter: Jitter::Full,
            base_nanos: nanos_u64(base),
            cap_nanos: nanos_u64(DEFAULT_MAX_DELAY),
        }
    }

    /// The same `delay` every time, capped at 20 s, **no** jitter (set one
    /// with [`with_jitter`](Self::with_jitter)).
    pub const fn constant(delay: Duration) -> Self {
        Backoff {
            schedule: Schedule::Constant { delay },
            max_delay: DEFAULT_MAX_DELAY,
            jitter: Jitter::None,
            base_nanos: nanos_u64(delay),
            cap_nanos: nanos_u64(DEFAULT_MAX_DELAY),
        }
    }

    /// Sets the growth factor of an exponential schedule (default 2; must be
    /// at least 1). Has no effect on other schedules.
    pub const fn with_factor(mut self, factor: f64) -> Self {
        if let Schedule::Exponential { base, .. } = self.schedule {
            self.schedule = Schedule::Exponential { base, factor };
        }
        self
    }

    /// Sets the cap on any single delay, applied before jitter and never
    /// exceeded after it. Default 20 s.
    pub const fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self.cap_nanos = nanos_u64(max_delay);
        self
    }

    /// Sets the jitter. Default [`Jitter::Full`] (none for `constant`).
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The schedule.
    pub const fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The cap on a single delay.
    pub const fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The jitter.
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// Checks every setting; policies call this when they are built.
    ///
    /// Rejected: an exponential factor below 1 (or NaN/infinite), a
    /// `max_delay` below the base, a proportional jitter outside `[0, 1]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Schedule::Exponential { factor, .. } = self.schedule {
            if !(factor.is_finite() && factor >= 1.0) {
                return Err(ConfigError::new(
                    COMPONENT,
                    "factor",
                    format!("must be a finite number of at least 1 (got {factor})"),
                ));
            }
        }
        if self.max_delay < self.schedule.base() {
            return Err(ConfigError::new(
                COMPONENT,
                "max_delay",
                format!(
                    "must be at least the base delay ({:?}; got {:?})",
                    self.schedule.base(),
                    self.max_delay
                ),
            ));
        }
        if let Jitter::Proportional(x) = self.jitter {
            check::ratio(COMPONENT, "jitter", x)?;
        }
        Ok(())
    }

    /// The capped, un-jittered delay before retry `n` (`min(max_delay, schedule(n))`).
    #[inline]
    pub fn capped(&self, n: u32) -> Duration {
        let cap = self.max_delay;
        match self.schedule {
            Schedule::Constant { delay } => delay.min(cap),
            Schedule::Linear { base, step } => step
                .checked_mul(n)
                .and_then(|s| s.checked_add(base))
                .map_or(cap, |d| d.min(cap)),
            Schedule::Exponential { base, factor } => {
                if factor == 2.0 {
                    return match self.doubled_nanos(n) {
                        Some(d) => Duration::from_nanos(d),
                        None => cap,
                    };
                }
                let nanos = nanos_f64(base) * factor.powi(n.min(i32::MAX as u32) as i32);
                // NaN and overflow both land on the cap.
                if nanos < nanos_f64(cap) {
                    Duration::from_nanos(nanos as u64)
                } else {
                    cap
                }
            }
        }
    }

    /// `base × 2^n` in nanoseconds when the schedule doubles and that is
    /// within the cap (`None` when the cap applies) — exactly and without
    /// floating point: `b << n ≤ cap` exactly when `b ≤ cap >> n`.
    #[inline]
    fn doubled_nanos(&self, n: u32) -> Option<u64> {
        let b = self.base_nanos;
        match self.cap_nanos.checked_shr(n) {
            Some(c) if b <= c => Some(b << n),
            _ => None,
        }
    }

    /// [`capped`](Self::capped) in whole nanoseconds, without a round trip
    /// through `Duration` in the common doubling case.
    #[inline]
    fn capped_nanos(&self, n: u32) -> u64 {
        match self.schedule {
            Schedule::Exponential { factor: 2.0, .. } => {
                self.doubled_nanos(n).unwrap_or(self.cap_nanos)
            }
            _ => nanos_u64(self.capped(n)),
        }
    }

    /// The longest delay the jitter can draw before retry `n` (0 for the
    /// first retry): [`capped`](Self::capped) for no, full and equal
    /// jitter, `capped × (1 + x)` within the cap for proportional jitter,
    /// and `min(max_delay, base × 3^(n+1))` for decorrelated jitter (each
    /// delay at most three times the one before). What a worst-case
    /// latency adds up (`rebound check`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::{Backoff, Jitter};
    ///
    /// let ms = Duration::from_millis;
    /// let b = Backoff::exponential(ms(100)).with_max_delay(ms(1000));
    /// assert_eq!(b.longest_delay(0), ms(100));
    /// assert_eq!(b.longest_delay(9), ms(1000));
    /// let b = b.with_jitter(Jitter::Proportional(0.2));
    /// assert_eq!(b.longest_delay(1), ms(240));
    /// assert_eq!(b.longest_delay(9), ms(1000));
    /// let b = b.with_jitter(Jitter::Decorrelated);
    /// assert_eq!(b.longest_delay(0), ms(300));
    /// assert_eq!(b.longest_delay(1), ms(900));
    /// ```
    pub fn longest_delay(&self, n: u32) -> Duration {
        let cap = self.cap_nanos;
        let nanos = match self.jitter {
            Jitter::None | Jitter::Full | Jitter::Equal => self.capped_nanos(n),
            Jitter::Proportional(x) => {
                let x = if x.is_finite() {
                    x.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = self.capped_nanos(n);
                let hi = nanos_f64(Duration::from_nanos(d)) * (1.0 + x);
                if hi < cap as f64 {
                    hi as u64
                } else {
                    cap.max(d)
                }
            }
            Jitter::Decorrelated => {
                let base = self.base_nanos.min(cap);
                let mut hi = base;
                for _ in 0..=n.min(64) {
                    hi = hi.saturating_mul(3).min(cap).max(base);
                }
                hi
            }
        };
        Duration::from_nanos(nanos)
    }

    /// The delay before the next retry, advancing `state`.
    ///
    /// `rng` is only drawn from when the jitter needs it.
    #[inline]
    pub fn next_delay(&self, state: &mut BackoffState, rng: &mut fastrand::Rng) -> Duration {
        let n = state.retries;
        state.retries = state.retries.saturating_add(1);
        let cap = self.max_delay;
        let delay = match self.jitter {
            Jitter::None => self.capped(n),
            Jitter::Full => Duration::from_nanos(rng.u64(0..=self.capped_nanos(n))),
            Jitter::Equal => {
                let d = self.capped_nanos(n);
                let half = d / 2;
                Duration::from_nanos(half + rng.u64(0..=d - half))
            }
            Jitter::Decorrelated => {
                // `base_nanos` is the schedule's base, whatever the schedule.
                let base = self.base_nanos.min(self.cap_nanos);
                let prev = state.previous.map_or(base, nanos_u64);
                let hi = prev.saturating_mul(3).min(self.cap_nanos).max(base);
                Duration::from_nanos(rng.u64(base..=hi))
            }
            Jitter::Proportional(x) => {
                let d = self.capped(n);
                let x = if x.is_finite() {
                    x.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let spread = nanos_f64(d) * x;
                let lo = d.saturating_sub(Duration::from_nanos(spread as u64));
                let hi = d
                    .saturating_add(Duration::from_nanos(spread as u64))
                    .min(cap)
                    .max(lo);
                uniform(rng, lo, hi)
            }
        };
        state.previous = Some(delay);
        delay
    }

    /// An endless iterator of delays (retry 0, 1, 2, ...). Bound it with
    /// `take(n)`; executors bound it with `max_attempts` and the deadline.
    pub fn delays(self, rng: fastrand::Rng) -> Delays {
        Delays {
            backoff: self,
            state: BackoffState::new(),
            rng,
        }
    }
}

/// A duration in nanoseconds as `f64`, without a slow `u128` conversion.
#[inline]
fn nanos_f64(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + d.subsec_nanos() as f64
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (584 years).
#[inline]
const fn nanos_u64(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(d.subsec_nanos() as u64)
}

/// `U(lo, hi)` over whole nanoseconds, both ends included.
#[inline]
fn uniform(rng: &mut fastrand::Rng, lo: Duration, hi: Duration) -> Duration {
    let lo_n = nanos_u64(lo);
    let hi_n = nanos_u64(hi);
    if hi_n <= lo_n {
        return lo;
    }
    Duration::from_nanos(rng.u64(lo_n..=hi_n))
}

/// Per-call backoff state: how many delays were handed out, and the last one
/// (for decorrelated jitter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackoffState {
    retries: u32,
    previous: Option<Duration>,
}

impl BackoffState {
    /// A fresh state: the next delay is for retry 0.
    pub const fn new() -> Self {
        BackoffState {
            retries: 0,
            previous: None,
        }
    }

    /// A state restored from its two parts, as saved from
    /// [`retries`](Self::retries) and [`previous`](Self::previous): for
    /// schedules that outlive a process (a job retried over hours keeps them
    /// with the job).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::{Backoff, BackoffState, Jitter};
    ///
    /// let b = Backoff::exponential(Duration::from_secs(1)).with_jitter(Jitter::Decorrelated);
    /// let mut rng = fastrand::Rng::with_seed(7);
    /// let mut st = BackoffState::new();
    /// b.next_delay(&mut st, &mut rng);
    /// let saved = (st.retries(), st.previous());
    /// let mut restored = BackoffState::from_parts(saved.0, saved.1);
    /// assert_eq!(restored, st);
    /// let mut again = rng.clone();
    /// assert_eq!(b.next_delay(&mut restored, &mut again), b.next_delay(&mut st, &mut rng));
    /// ```
    pub const fn from_parts(retries: u32, previous: Option<Duration>) -> Self {
        BackoffState { retries, previous }
    }

    /// How many delays were handed out so far.
    pub const fn retries(&self) -> u32 {
        self.retries
    }

    /// The last delay handed out.
    pub const fn previous(&self) -> Option<Duration> {
        self.previous
    }
}

/// Iterator returned by [`Backoff::delays`].
#[derive(Debug)]
pub struct Delays {
    backoff: Backoff,
    state: BackoffState,
    rng: fastrand::Rng,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.backoff.next_delay(&mut self.state, &mut self.rng))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubling_fast_path_is_exact() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..100_000 {
            let (s1, s2) = (rng.u32(0..64), rng.u32(0..64));
            let base = rng.u64(1..=u64::MAX >> s1);
            let cap = base.saturating_add(rng.u64(0..=u64::MAX >> s2));
            let n = rng.u32(0..80);
            let b = Backoff::exponential(Duration::from_nanos(base))
                .with_max_delay(Duration::from_nanos(cap));
            let exact = (u128::from(base) << n.min(100)).min(u128::from(cap));
            assert_eq!(b.capped(n).as_nanos(), exact, "base {base} cap {cap} n {n}");
        }
    }

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn schedules_without_jitter() {
        let mut rng = fastrand::Rng::with_seed(0);
        let exp = Backoff::exponential(10 * MS)
            .with_factor(3.0)
            .with_max_delay(100 * MS)
            .with_jitter(Jitter::None);
        let got: Vec<_> = exp.delays(rng.clone()).take(4).collect();
        assert_eq!(got, [10 * MS, 30 * MS, 90 * MS, 100 * MS]);

        let lin = Backoff::linear(10 * MS, 5 * MS).with_jitter(Jitter::None);
        let got: Vec<_> = lin.delays(rng.clone()).take(3).collect();
        assert_eq!(got, [10 * MS, 15 * MS, 20 * MS]);

        let c = Backoff::constant(7 * MS);
        let mut st = BackoffState::new();
        assert_eq!(c.next_delay(&mut st, &mut rng), 7 * MS);
        assert_eq!(c.next_delay(&mut st, &mut rng), 7 * MS);
        assert_eq!(st.retries(), 2);
    }

    #[test]
    fn huge_retry_numbers_saturate_at_the_cap() {
        let b = Backoff::exponential(MS).with_jitter(Jitter::None);
        assert_eq!(b.capped(u32::MAX), DEFAULT_MAX_DELAY);
        let l = Backoff::linear(MS, Duration::MAX).with_jitter(Jitter::None);
        assert_eq!(l.capped(u32::MAX), DEFAULT_MAX_DELAY);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = [
            (Backoff::exponential(MS).with_factor(0.5), "factor"),
            (Backoff::exponential(MS).with_factor(f64::NAN), "factor"),
            (
                Backoff::exponential(10 * MS).with_max_delay(MS),
                "max_delay",
            ),
            (
                Backoff::exponential(MS).with_jitter(Jitter::Proportional(1.5)),
                "jitter",
            ),
            (
                Backoff::exponential(MS).with_jitter(Jitter::Proportional(-0.1)),
                "jitter",
            ),
        ];
        for (b, field) in bad {
            assert_eq!(b.validate().unwrap_err().field(), field, "{b:?}");
        }
        assert!(Backoff::default().validate().is_ok());
    }

    #[test]
    fn decorrelated_stays_random_at_the_cap() {
        let b = Backoff::exponential(10 * MS)
            .with_max_delay(100 * MS)
            .with_jitter(Jitter::Decorrelated);
        let delays: Vec<_> = b.delays(fastrand::Rng::with_seed(3)).take(2000).collect();
        let tail = &delays[100..];
        let at_cap = tail.iter().filter(|d| **d == 100 * MS).count();
        // The textbook clamp would put ~2/3 of these exactly on the cap.
        assert!(
            at_cap < tail.len() / 50,
            "{at_cap} of {} at cap",
            tail.len()
        );
        assert!(tail.iter().all(|d| *d >= 10 * MS && *d <= 100 * MS));
    }
}
