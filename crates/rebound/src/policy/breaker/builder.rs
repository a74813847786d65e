//! The breaker's builder: every setting, its default, and its validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{CircuitBreaker, Transition};
use crate::error::{check, ConfigError};
use crate::{Clock, RandomSource};

pub(crate) const COMPONENT: &str = "circuit breaker";

/// Largest count window (calls); counts are packed in 16 bits.
pub const MAX_COUNT_WINDOW: u32 = 65_535;
/// Largest number of buckets in a time window.
pub const MAX_BUCKETS: u32 = 1_000;
/// Largest number of half-open probes.
pub const MAX_PROBES: u32 = 1_000;
/// The slices of a time window when none are given.
pub const DEFAULT_TIME_BUCKETS: u32 = 10;

/// Which calls the breaker judges the dependency by.
///
/// ```
/// use std::time::Duration;
/// use rebound::breaker::SlidingWindow;
///
/// let last_100_calls = SlidingWindow::Count { size: 100 };
/// let last_minute = SlidingWindow::Time { duration: Duration::from_secs(60), buckets: 12 };
/// # let _ = (last_100_calls, last_minute);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `size` calls (resilience4j's `COUNT_BASED`).
    Count {
        /// Calls remembered, 1 to 65 535.
        size: u32,
    },
    /// The calls of the last `duration`, which slides in `buckets` steps
    /// (resilience4j's `TIME_BASED`, Polly's sampling duration). Each bucket
    /// counts up to 16 million calls of each kind.
    Time {
        /// How far back calls are remembered.
        duration: Duration,
        /// How many slices the window slides by, 1 to 1000.
        buckets: u32,
    },
}

/// How the break duration grows when the breaker opens again without having
/// closed in between (every failed half-open probe reopens it).
///
/// With base `b`, the `n`-th opening in a row (1 for the first) lasts:
///
/// | growth | break duration |
/// |---|---|
/// | `None` | `b` |
/// | `Linear` | `b × n` (Envoy's outlier ejection) |
/// | `Exponential(f)` | `b × f^(n-1)` |
///
/// always capped at `max_break_duration`. Closing resets `n`.
///
/// ```
/// use std::time::Duration;
/// use rebound::breaker::BreakGrowth;
/// use rebound::CircuitBreaker;
///
/// let cb = CircuitBreaker::builder()
///     .break_duration(Duration::from_secs(30))
///     .break_growth(BreakGrowth::Linear)
///     .max_break_duration(Duration::from_secs(300))
///     .build()
///     .unwrap();
/// # let _ = cb;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum BreakGrowth {
    /// Every opening lasts `break_duration` (the default).
    #[default]
    None,
    /// The `n`-th opening in a row lasts `n × break_duration`.
    Linear,
    /// The `n`-th opening in a row lasts `break_duration × factor^(n-1)`;
    /// `factor` must be at least 1.
    Exponential(f64),
}

pub(crate) type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// The validated settings of one breaker.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) dependency: Arc<str>,
    pub(crate) host: Option<Arc<str>>,
    pub(crate) failure_ratio: f64,
    pub(crate) min_calls: u32,
    pub(crate) window: SlidingWindow,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) slow_call_ratio: f64,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) break_duration: Duration,
    pub(crate) break_growth: BreakGrowth,
    pub(crate) max_break_duration: Duration,
    pub(crate) break_jitter: f64,
    pub(crate) half_open_probes: u32,
    pub(crate) clock: Clock,
    pub(crate) random: RandomSource,
    pub(crate) listeners: Vec<Listener>,
}

impl Config {
    /// The break duration of the `n`-th opening in a row (`n >= 1`), before
    /// jitter, capped at the maximum.
    pub(crate) fn break_for(&self, n: u32) -> Duration {
        let base = self.break_duration.as_secs_f64();
        let n = n.max(1);
        let secs = match self.break_growth {
            BreakGrowth::None => base,
            BreakGrowth::Linear => base * f64::from(n),
            BreakGrowth::Exponential(f) => base * f.powi(n.saturating_sub(1).min(1_000) as i32),
        };
        let max = self.max_break_duration.as_secs_f64();
        Duration::try_from_secs_f64(secs.min(max)).unwrap_or(self.max_break_duration)
    }

    /// `d` with jitter `U(d × (1 - j), d × (1 + j))`, never above the maximum.
    pub(crate) fn jittered(&self, d: Duration, rng: &mut fastrand::Rng) -> Duration {
        if self.break_jitter == 0.0 {
            return d;
        }
        let factor = 1.0 + self.break_jitter * (2.0 * rng.f64() - 1.0);
        let secs = (d.as_secs_f64() * factor).min(self.max_break_duration.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(d)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("dependency", &self.dependency)
            .field("failure_ratio", &self.failure_ratio)
            .field("min_calls", &self.min_calls)
            .field("window", &self.window)
            .field("slow_call_duration", &self.slow_call_duration)
            .field("slow_call_ratio", &self.slow_call_ratio)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("break_duration", &self.break_duration)
            .field("break_growth", &self.break_growth)
            .field("max_break_duration", &self.max_break_duration)
            .field("break_jitter", &self.break_jitter)
            .field("half_open_probes", &self.half_open_probes)
            .field("clock", &self.clock)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

/// Builder for [`CircuitBreaker`]; [`build`](Self::build) validates every
/// setting and names the first bad one.
///
/// The defaults sit between resilience4j's and Polly v8's: open when at
/// least half of the last 100 calls failed, once 20 calls are in the
/// window; stay open 30 s; then let one probe through.
///
/// ```
/// use std::time::Duration;
/// use rebound::CircuitBreaker;
///
/// let cb = CircuitBreaker::builder()
///     .dependency("inventory")
///     .failure_ratio(0.5)
///     .min_calls(10)
///     .time_window(Duration::from_secs(30), 10)
///     .slow_call_duration(Duration::from_secs(2))
///     .slow_call_ratio(0.8)
///     .break_duration(Duration::from_secs(15))
///     .half_open_probes(3)
///     .build()?;
/// assert!(cb.try_acquire().is_ok());
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct CircuitBreakerBuilder {
    dependency: Arc<str>,
    host: Option<Arc<str>>,
    failure_ratio: f64,
    min_calls: u32,
    window: SlidingWindow,
    slow_call_duration: Option<Duration>,
    slow_call_ratio: f64,
    consecutive_failures: Option<u32>,
    break_duration: Duration,
    break_growth: BreakGrowth,
    max_break_duration: Option<Duration>,
    break_jitter: f64,
    half_open_probes: u32,
    clock: Clock,
    random: RandomSource,
    listeners: Vec<Listener>,
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("dependency", &self.dependency)
            .field("failure_ratio", &self.failure_ratio)
            .field("min_calls", &self.min_calls)
            .field("window", &self.window)
            .field("break_duration", &self.break_duration)
            .field("half_open_probes", &self.half_open_probes)
            .finish_non_exhaustive()
    }
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerBuilder {
    /// A builder holding the defaults (see each setter).
    pub fn new() -> Self {
        CircuitBreakerBuilder {
            dependency: Arc::from("default"),
            host: None,
            failure_ratio: 0.5,
            min_calls: 20,
            window: SlidingWindow::Count { size: 100 },
            slow_call_duration: None,
            slow_call_ratio: 1.0,
            consecutive_failures: None,
            break_duration: Duration::from_secs(30),
            break_growth: BreakGrowth::None,
            max_break_duration: None,
            break_jitter: 0.0,
            half_open_probes: 1,
            clock: Clock::default(),
            random: RandomSource::entropy(),
            listeners: Vec::new(),
        }
    }

    /// A breaker that opens on `n` failures in a row and on nothing else
    /// (Envoy's `consecutive_5xx`, Finagle's `FailureAccrual`): the ratio
    /// trigger is switched off (`failure_ratio(1.0)` over a 1-call window).
    /// Other settings keep their defaults and can still be changed.
    ///
    /// ```
    /// use rebound::{CircuitBreaker, breaker::State};
    /// let cb = CircuitBreaker::consecutive_failures(3).build().unwrap();
    /// for _ in 0..3 {
    ///     cb.try_acquire().unwrap().failure();
    /// }
    /// assert_eq!(cb.state(), State::Open);
    /// ```
    pub fn consecutive(n: u32) -> Self {
        Self::new()
            .failure_ratio(1.0)
            .count_window(1)
            .min_calls(1)
            .consecutive_failures(n)
            .ratio_trigger(false)
    }

    fn ratio_trigger(mut self, on: bool) -> Self {
        if !on {
            // A ratio above 1 can never be reached; only `consecutive` sets it,
            // after validation would reject it from a user.
            self.failure_ratio = f64::INFINITY;
        }
        self
    }

    /// The name of the dependency this breaker guards, used as the
    /// `dependency` label on every metric and in tracing events. Default
    /// `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The instance of the dependency this breaker guards (for HTTP, the
    /// `host` or `host:port`), added as the `host` label on every metric
    /// beside `dependency`. Default: no `host` label.
    pub fn host(mut self, host: impl Into<Arc<str>>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Open when at least this fraction of the calls in the window failed
    /// (`failures / calls >= ratio`, once [`min_calls`](Self::min_calls) are
    /// in the window). Default 0.5. Must be in [0, 1].
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.failure_ratio = ratio;
        self
    }

    /// Calls the window must hold before either ratio can open the breaker,
    /// so three failures out of the first four calls of the day do not.
    /// Default 20. Must be at least 1 and, for a count window, at most its
    /// size.
    pub fn min_calls(mut self, n: u32) -> Self {
        self.min_calls = n;
        self
    }

    /// Judge by the last `size` calls. This is the default, with size 100.
    /// Must be between 1 and 65 535.
    pub fn count_window(mut self, size: u32) -> Self {
        self.window = SlidingWindow::Count { size };
        self
    }

    /// Judge by the calls of the last `duration`, sliding in `buckets` steps.
    /// Default: a count window of 100 calls instead. `duration` must be
    /// non-zero and `buckets` between 1 and 1000.
    pub fn time_window(mut self, duration: Duration, buckets: u32) -> Self {
        self.window = SlidingWindow::Time { duration, buckets };
        self
    }

    /// Sets the window directly; see [`SlidingWindow`]. Default
    /// `SlidingWindow::Count { size: 100 }`.
    pub fn window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// A call that took at least this long counts as **slow**, whether it
    /// succeeded or failed. Default: none (slow calls are not tracked). Must
    /// be non-zero. A slow half-open probe counts as a failed probe.
    pub fn slow_call_duration(mut self, threshold: Duration) -> Self {
        self.slow_call_duration = Some(threshold);
        self
    }

    /// Open when at least this fraction of the calls in the window were slow
    /// (once `min_calls` are in the window). Only used with
    /// [`slow_call_duration`](Self::slow_call_duration). Default 1.0 (all of
    /// them, as resilience4j). Must be in [0, 1].
    pub fn slow_call_ratio(mut self, ratio: f64) -> Self {
        self.slow_call_ratio = ratio;
        self
    }

    /// Also open after `n` failed calls in a row, whatever the window says
    /// (Envoy / Finagle style); a success resets the run. Default: off. Must
    /// be at least 1.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }

    /// How long the breaker stays open before it lets a probe through.
    /// Default 30 s. Must be non-zero.
    pub fn break_duration(mut self, d: Duration) -> Self {
        self.break_duration = d;
        self
    }

    /// How the break duration grows when the breaker reopens without having
    /// closed; see [`BreakGrowth`]. Default [`BreakGrowth::None`].
    pub fn break_growth(mut self, growth: BreakGrowth) -> Self {
        self.break_growth = growth;
        self
    }

    /// The longest break, growth and jitter included. Default: 10 ×
    /// `break_duration`. Must be at least `break_duration`.
    pub fn max_break_duration(mut self, d: Duration) -> Self {
        self.max_break_duration = Some(d);
        self
    }

    /// Randomizes each break by up to ± this fraction, so breakers of many
    /// clients that opened together do not probe together. Default 0 (no
    /// jitter). Must be in [0, 1].
    pub fn break_jitter(mut self, fraction: f64) -> Self {
        self.break_jitter = fraction;
        self
    }

    /// How many probes the half-open breaker lets through. They are reserved
    /// atomically, so no more than this many are ever in flight; one failed
    /// (or slow) probe reopens the breaker, and it closes once all of them
    /// succeeded. A probe cancelled without an outcome gives its slot back.
    /// Default 1 (Polly v8's; one probe request decides). Must be
    /// between 1 and 1000.
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n;
        self
    }

    /// The clock for break durations, slow calls and time windows. Default
    /// [`Clock::default`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The source of break jitter. Default [`RandomSource::entropy`].
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// Calls `f` after every state change, outside the breaker's lock (so
    /// `f` may call back into the breaker). Two transitions racing on
    /// different threads may reach `f` out of order; use
    /// [`Transition::generation`] to order them. Default: none; may be
    /// called more than once to add several.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use rebound::CircuitBreaker;
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let cb = CircuitBreaker::builder()
    ///     .on_state_change(move |t| log.lock().unwrap().push((t.from(), t.to())))
    ///     .build()
    ///     .unwrap();
    /// cb.isolate();
    /// use rebound::breaker::State::*;
    /// assert_eq!(*seen.lock().unwrap(), [(Closed, Isolated)]);
    /// ```
    pub fn on_state_change<F>(mut self, f: F) -> Self
    where
        F: Fn(&Transition) + Send + Sync + 'static,
    {
        self.listeners.push(Arc::new(f));
        self
    }

    /// Validates and builds the breaker.
    ///
    /// Rejected, naming the field: ratios outside [0, 1]; `min_calls` 0 or
    /// larger than a count window; a zero or oversized window; zero buckets;
    /// zero durations; `max_break_duration` below `break_duration`; an
    /// exponential growth factor below 1; `half_open_probes` 0 or above
    /// 1000; `consecutive_failures` 0.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        const C: &str = COMPONENT;
        // `consecutive(n)` switches the ratio trigger off with an unreachable
        // ratio; anything else must be a real ratio.
        let ratio_off = self.failure_ratio == f64::INFINITY && self.consecutive_failures.is_some();
        if !ratio_off {
            check::ratio(C, "failure_ratio", self.failure_ratio)?;
        }
        check::ratio(C, "slow_call_ratio", self.slow_call_ratio)?;
        if self.min_calls == 0 {
            return Err(ConfigError::new(C, "min_calls", "must be at least 1"));
        }
        match self.window {
            SlidingWindow::Count { size } => {
                if size == 0 || size > MAX_COUNT_WINDOW {
                    return Err(ConfigError::new(
                        C,
                        "count_window",
                        format!("must be between 1 and {MAX_COUNT_WINDOW} calls (got {size})"),
                    ));
                }
                if self.min_calls > size {
                    return Err(ConfigError::new(
                        C,
                        "min_calls",
                        format!(
                            "must not exceed the count window ({size} calls; got {}): \
                             the breaker could never open",
                            self.min_calls
                        ),
                    ));
                }
            }
            SlidingWindow::Time { duration, buckets } => {
                check::non_zero_duration(C, "time_window", duration)?;
                if buckets == 0 || buckets > MAX_BUCKETS {
                    return Err(ConfigError::new(
                        C,
                        "buckets",
                        format!("must be between 1 and {MAX_BUCKETS} (got {buckets})"),
                    ));
                }
                if duration.as_nanos() < u128::from(buckets) {
                    return Err(ConfigError::new(
                        C,
                        "time_window",
                        format!("must be at least one nanosecond per bucket (got {duration:?})"),
                    ));
                }
            }
        }
        if let Some(d) = self.slow_call_duration {
            check::non_zero_duration(C, "slow_call_duration", d)?;
        }
        if self.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                C,
                "consecutive_failures",
                "must be at least 1",
            ));
        }
        check::non_zero_duration(C, "break_duration", self.break_duration)?;
        let max_break = match self.max_break_duration {
            Some(m) if m < self.break_duration => {
                return Err(ConfigError::new(
                    C,
                    "max_break_duration",
                    format!(
                        "must be at least break_duration ({:?}; got {m:?})",
                        self.break_duration
                    ),
                ))
            }
            Some(m) => m,
            None => self.break_duration.saturating_mul(10),
        };
        if let BreakGrowth::Exponential(f) = self.break_growth {
            if !(f.is_finite() && f >= 1.0) {
                return Err(ConfigError::new(
                    C,
                    "break_growth",
                    format!("exponential factor must be a finite number of at least 1 (got {f})"),
                ));
            }
        }
        check::ratio(C, "break_jitter", self.break_jitter)?;
        if self.half_open_probes == 0 || self.half_open_probes > MAX_PROBES {
            return Err(ConfigError::new(
                C,
                "half_open_probes",
                format!(
                    "must be between 1 and {MAX_PROBES} (got {})",
                    self.half_open_probes
                ),
            ));
        }
        Ok(CircuitBreaker::from_config(Config {
            dependency: self.dependency,
            host: self.host,
            failure_ratio: self.failure_ratio,
            min_calls: self.min_calls,
            window: self.window,
            slow_call_duration: self.slow_call_duration,
            slow_call_ratio: self.slow_call_ratio,
            consecutive_failures: self.consecutive_failures,
            break_duration: self.break_duration,
            break_growth: self.break_growth,
            max_break_duration: max_break,
            break_jitter: self.break_jitter,
            half_open_probes: self.half_open_probes,
            clock: self.clock,
            random: self.random,
            listeners: self.listeners,
        }))
    }
}
