//! Policies as data: what a simulated caller's retry behaviour is, written
//! the way the library's builders are written, and built into the **real**
//! [`rebound::RetryPolicy`] for each run.
//!
//! The field names are the builder's setter names (`max_attempts`,
//! `backoff`, `attempt_timeout`, `total_timeout`, `budget`,
//! `token_bucket`), so a policy tried here is copied into code unchanged:
//!
//! ```toml
//! max_attempts = 4
//! attempt_timeout = "1s"
//! backoff = { schedule = "exponential", base = "100ms", factor = 2.0, max_delay = "20s", jitter = "full" }
//! budget = { ratio = 0.1, min_retries_per_second = 0.0 }   # RetryBudget::ratio(0.1)...
//! # token_bucket = { max_tokens = 10.0, token_ratio = 0.1 } # RetryBudget::token_bucket(10.0, 0.1)
//! # breaker = { failure_ratio = 0.5, min_calls = 10, break_duration = "5s" }
//! # throttle = { k = 2.0, window = "120s" }  # AdaptiveThrottle::builder().k(2.0)...
//! scope = "client"   # one policy (and budget) per client; "shared": one for all
//! ```
//!
//! ```
//! use rebound_sim::{PolicySpec, engine::VirtualTime};
//!
//! let spec: PolicySpec = toml::from_str(r#"
//!     max_attempts = 4
//!     backoff = { schedule = "exponential", base = "10ms", jitter = "full" }
//!     budget = { ratio = 0.1 }
//! "#).unwrap();
//! let time = VirtualTime::new();
//! let policy = spec.build(&time, 7).unwrap();
//! assert_eq!(policy.max_attempts(), 4);
//! assert!(policy.budget().is_some());
//!
//! let throttled: PolicySpec = toml::from_str("throttle = { k = 1.1 }").unwrap();
//! assert!(throttled.build(&time, 7).unwrap().throttle().is_some());
//! let bad: PolicySpec = toml::from_str("throttle = { k = 0.5 }").unwrap();
//! assert_eq!(bad.build(&time, 7).unwrap_err().field(), "throttle.k");
//! ```

use std::time::Duration;

use rebound::throttle::AdaptiveThrottle;
use rebound::{Backoff, ConfigError, Jitter, RandomSource, RetryBudget, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::duration::Dur;
use crate::engine::VirtualTime;

/// A retry policy as data. See the [module docs](self).
///
/// # Default
/// The library's defaults: 3 attempts, [`BackoffSpec::default`], no
/// timeouts, no budget, one policy per client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySpec {
    /// Attempts including the first. Default 3.
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: BackoffSpec,
    /// Cuts off one attempt (the caller gives up on it; the server does
    /// not know and keeps working on it). Default: none.
    pub attempt_timeout: Option<Dur>,
    /// Limits the whole call, delays included. Default: none.
    pub total_timeout: Option<Dur>,
    /// A ratio retry budget ([`RetryBudget::ratio`]). Default: none.
    pub budget: Option<RatioBudgetSpec>,
    /// A gRPC token bucket ([`RetryBudget::token_bucket`]). Default: none.
    pub token_bucket: Option<TokenBucketSpec>,
    /// A circuit breaker ([`rebound::CircuitBreaker`]). Default: none.
    pub breaker: Option<BreakerSpec>,
    /// An adaptive client-side throttle (Google SRE,
    /// [`AdaptiveThrottle`]) every attempt goes through. Default: none.
    pub throttle: Option<ThrottleSpec>,
    /// Who shares one policy object (and so one budget and breaker).
    /// Default [`Scope::Client`].
    pub scope: Scope,
}

/// A circuit breaker as data; mirrors [`rebound::CircuitBreakerBuilder`].
/// Unset fields keep the library's defaults (ratio 0.5 over the last 100
/// calls, at least 20 calls, 30 s break, one half-open probe).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSpec {
    /// Open when this fraction of the window failed.
    pub failure_ratio: Option<f64>,
    /// Calls the window must hold before the ratio counts.
    pub min_calls: Option<u32>,
    /// Judge by the last this many calls.
    pub count_window: Option<u32>,
    /// Also open after this many failures in a row.
    pub consecutive_failures: Option<u32>,
    /// How long to stay open before probing.
    pub break_duration: Option<Dur>,
    /// Randomize each break by up to ± this fraction.
    pub break_jitter: Option<f64>,
    /// Probes let through when half-open.
    pub half_open_probes: Option<u32>,
}

impl BreakerSpec {
    /// Opens when half of the last `window` calls (at least `min_calls`)
    /// failed, for `break_duration`.
    pub fn ratio(window: u32, min_calls: u32, break_duration: Duration) -> Self {
        BreakerSpec {
            failure_ratio: Some(0.5),
            min_calls: Some(min_calls),
            count_window: Some(window),
            break_duration: Some(Dur(break_duration)),
            ..Self::default()
        }
    }

    /// The real breaker on the run's clock.
    pub fn build(
        &self,
        time: &VirtualTime,
        seed: u64,
    ) -> Result<rebound::CircuitBreaker, ConfigError> {
        let mut b = rebound::CircuitBreaker::builder()
            .clock(time.clock())
            .random(RandomSource::seeded(seed));
        if let Some(x) = self.failure_ratio {
            b = b.failure_ratio(x);
        }
        if let Some(x) = self.count_window {
            b = b.count_window(x);
        }
        if let Some(x) = self.min_calls {
            b = b.min_calls(x);
        }
        if let Some(x) = self.consecutive_failures {
            b = b.consecutive_failures(x);
        }
        if let Some(x) = self.break_duration {
            b = b.break_duration(x.0);
        }
        if let Some(x) = self.break_jitter {
            b = b.break_jitter(x);
        }
        if let Some(x) = self.half_open_probes {
            b = b.half_open_probes(x);
        }
        b.build()
    }
}

/// An adaptive throttle as data; mirrors
/// [`AdaptiveThrottle::builder`](rebound::throttle::AdaptiveThrottle::builder).
/// Unset fields keep the library's defaults (`k` 2, a 120 s window in 12
/// buckets: the SRE book's).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSpec {
    /// Requests allowed per accepted request in steady overload (`K`).
    pub k: Option<f64>,
    /// How far back requests and accepts are remembered.
    pub window: Option<Dur>,
    /// Slices the window slides by.
    pub buckets: Option<u32>,
}

impl ThrottleSpec {
    /// `K = k` with the library's window.
    pub fn k(k: f64) -> Self {
        ThrottleSpec {
            k: Some(k),
            ..Self::default()
        }
    }

    /// The real throttle on the run's clock, with seeded rejection draws.
    /// Errors name the field as `throttle.<field>`.
    pub fn build(&self, time: &VirtualTime, seed: u64) -> Result<AdaptiveThrottle, ConfigError> {
        let mut b = AdaptiveThrottle::builder()
            .clock(time.clock())
            .random(RandomSource::seeded(seed));
        if let Some(k) = self.k {
            b = b.k(k);
        }
        if let Some(w) = self.window {
            b = b.window(w.0);
        }
        if let Some(n) = self.buckets {
            b = b.buckets(n);
        }
        b.build().map_err(|e| {
            let field = match e.field() {
                "k" => "throttle.k",
                "window" => "throttle.window",
                "buckets" => "throttle.buckets",
                _ => "throttle",
            };
            ConfigError::new(e.component(), field, e.message())
        })
    }
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            max_attempts: 3,
            backoff: BackoffSpec::default(),
            attempt_timeout: None,
            total_timeout: None,
            budget: None,
            token_bucket: None,
            breaker: None,
            throttle: None,
            scope: Scope::Client,
        }
    }
}

/// Who shares a policy object: its budget is shared by everyone using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each client has its own policy and budget (a fleet of processes).
    #[default]
    Client,
    /// All clients share one policy and budget (one process, or a budget
    /// shared across the fleet).
    Shared,
}

/// How the delay grows; mirrors [`rebound::Schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// `base * factor^n` ([`Backoff::exponential`]).
    #[default]
    Exponential,
    /// `base + step * n` ([`Backoff::linear`]).
    Linear,
    /// `base` every time ([`Backoff::constant`]).
    Constant,
}

/// The jitter; mirrors [`rebound::Jitter`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterSpec {
    /// No randomness.
    None,
    /// `U(0, d)`.
    #[default]
    Full,
    /// `d/2 + U(0, d/2)`.
    Equal,
    /// `U(base, min(cap, 3 * previous))`.
    Decorrelated,
    /// `d * U(1 - x, 1 + x)`; written `jitter = { proportional = 0.2 }`.
    Proportional(f64),
}

impl From<JitterSpec> for Jitter {
    fn from(j: JitterSpec) -> Jitter {
        match j {
            JitterSpec::None => Jitter::None,
            JitterSpec::Full => Jitter::Full,
            JitterSpec::Equal => Jitter::Equal,
            JitterSpec::Decorrelated => Jitter::Decorrelated,
            JitterSpec::Proportional(x) => Jitter::Proportional(x),
        }
    }
}

/// A backoff as data; mirrors [`Backoff`].
///
/// # Default
/// The library's: exponential from 100 ms, factor 2, capped at 20 s, full
/// jitter. `jitter` defaults to `none` for a constant schedule, as in the
/// library.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffSpec {
    /// The schedule. Default exponential.
    pub schedule: ScheduleKind,
    /// First delay (the constant delay for `constant`). Default 100 ms.
    pub base: Dur,
    /// Growth factor for `exponential`. Default 2.
    pub factor: f64,
    /// Increment for `linear`. Default: `base`.
    pub step: Option<Dur>,
    /// Cap on one delay. Default 20 s.
    pub max_delay: Dur,
    /// Jitter. Default full (none for `constant`).
    pub jitter: Option<JitterSpec>,
}

impl Default for BackoffSpec {
    fn default() -> Self {
        BackoffSpec {
            schedule: ScheduleKind::Exponential,
            base: Dur(Duration::from_millis(100)),
            factor: 2.0,
            step: None,
            max_delay: Dur(rebound::backoff::DEFAULT_MAX_DELAY),
            jitter: None,
        }
    }
}

impl BackoffSpec {
    /// No delay at all between attempts.
    pub fn immediate() -> Self {
        BackoffSpec {
            schedule: ScheduleKind::Constant,
            base: Dur(Duration::ZERO),
            ..Self::default()
        }
    }

    /// `base * 2^n` capped at `max_delay` with `jitter`.
    pub fn exponential(base: Duration, max_delay: Duration, jitter: JitterSpec) -> Self {
        BackoffSpec {
            schedule: ScheduleKind::Exponential,
            base: Dur(base),
            factor: 2.0,
            step: None,
            max_delay: Dur(max_delay),
            jitter: Some(jitter),
        }
    }

    /// The library value.
    pub fn to_backoff(&self) -> Backoff {
        let b = match self.schedule {
            ScheduleKind::Exponential => Backoff::exponential(self.base.0).with_factor(self.factor),
            ScheduleKind::Linear => Backoff::linear(self.base.0, self.step.unwrap_or(self.base).0),
            ScheduleKind::Constant => Backoff::constant(self.base.0),
        };
        let b = b.with_max_delay(self.max_delay.0);
        match self.jitter {
            Some(j) => b.with_jitter(j.into()),
            None => b,
        }
    }
}

/// A ratio budget as data; mirrors [`RetryBudget::ratio`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioBudgetSpec {
    /// Retries allowed per request (first attempt), in `[0, 1]`.
    pub ratio: f64,
    /// Floor of retries per second. Default 10 (the library's).
    #[serde(default = "default_min_per_second")]
    pub min_retries_per_second: f64,
    /// Sliding window. Default 10 s.
    #[serde(default = "default_window")]
    pub window: Dur,
}

fn default_min_per_second() -> f64 {
    10.0
}
fn default_window() -> Dur {
    Dur(Duration::from_secs(10))
}

/// A token bucket as data; mirrors [`RetryBudget::token_bucket`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucketSpec {
    /// Bucket size, in `(0, 1000]`; retries stop at half.
    pub max_tokens: f64,
    /// Refund per success.
    pub token_ratio: f64,
}

impl PolicySpec {
    /// A policy with `max_attempts` and no delay between attempts.
    pub fn attempts(max_attempts: u32) -> Self {
        PolicySpec {
            max_attempts,
            backoff: BackoffSpec::immediate(),
            ..Self::default()
        }
    }

    /// Sets the backoff.
    pub fn with_backoff(mut self, backoff: BackoffSpec) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_attempt_timeout(mut self, t: Duration) -> Self {
        self.attempt_timeout = Some(Dur(t));
        self
    }

    /// Adds a ratio budget with no floor (`min_retries_per_second` 0).
    pub fn with_ratio_budget(mut self, ratio: f64) -> Self {
        self.budget = Some(RatioBudgetSpec {
            ratio,
            min_retries_per_second: 0.0,
            window: default_window(),
        });
        self
    }

    /// Adds a token bucket.
    pub fn with_token_bucket(mut self, max_tokens: f64, token_ratio: f64) -> Self {
        self.token_bucket = Some(TokenBucketSpec {
            max_tokens,
            token_ratio,
        });
        self
    }

    /// Adds a circuit breaker.
    pub fn with_breaker(mut self, breaker: BreakerSpec) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Adds an adaptive throttle.
    pub fn with_throttle(mut self, throttle: ThrottleSpec) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Sets the scope.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Builds the real policy on the run's virtual clock, with a seeded
    /// source of jitter. Fails with the library's [`ConfigError`], which
    /// names the field.
    pub fn build(&self, time: &VirtualTime, seed: u64) -> Result<RetryPolicy, ConfigError> {
        let mut b = RetryPolicy::builder()
            .max_attempts(self.max_attempts)
            .backoff(self.backoff.to_backoff())
            .clock(time.clock())
            .random(RandomSource::seeded(seed));
        if let Some(t) = self.attempt_timeout {
            b = b.attempt_timeout(t.0);
        }
        if let Some(t) = self.total_timeout {
            b = b.total_timeout(t.0);
        }
        if self.budget.is_some() && self.token_bucket.is_some() {
            return Err(ConfigError::new(
                "retry policy",
                "token_bucket",
                "a policy takes one budget: set `budget` or `token_bucket`, not both",
            ));
        }
        if let Some(r) = self.budget {
            b = b.budget(
                RetryBudget::ratio(r.ratio)
                    .min_retries_per_second(r.min_retries_per_second)
                    .window(r.window.0)
                    .clock(time.clock())
                    .build()?,
            );
        }
        if let Some(t) = self.token_bucket {
            b = b.budget(RetryBudget::token_bucket(t.max_tokens, t.token_ratio)?);
        }
        if let Some(cb) = &self.breaker {
            b = b.breaker(cb.build(time, crate::seed::splitmix64(seed))?);
        }
        if let Some(th) = &self.throttle {
            b = b.throttle(th.build(time, crate::seed::derive(seed, &[0x7405]))?);
        }
        b.build()
    }

    /// A short human description, e.g. `4 attempts, exponential 10ms..2s full jitter, ratio budget 10%`.
    pub fn describe(&self) -> String {
        let b = &self.backoff;
        let mut s = format!("{} attempts", self.max_attempts);
        let jitter = match b.jitter.unwrap_or(if b.schedule == ScheduleKind::Constant {
            JitterSpec::None
        } else {
            JitterSpec::Full
        }) {
            JitterSpec::None => "no jitter".to_string(),
            JitterSpec::Full => "full jitter".into(),
            JitterSpec::Equal => "equal jitter".into(),
            JitterSpec::Decorrelated => "decorrelated jitter".into(),
            JitterSpec::Proportional(x) => format!("±{:.0}% jitter", x * 100.0),
        };
        match b.schedule {
            ScheduleKind::Constant if b.base.0.is_zero() => s.push_str(", no backoff"),
            ScheduleKind::Constant => s.push_str(&format!(", constant {} {jitter}", b.base)),
            ScheduleKind::Linear => s.push_str(&format!(", linear from {} {jitter}", b.base)),
            ScheduleKind::Exponential => s.push_str(&format!(
                ", exponential {}..{} {jitter}",
                b.base, b.max_delay
            )),
        }
        if let Some(t) = self.attempt_timeout {
            s.push_str(&format!(", timeout {t}"));
        }
        if let Some(r) = self.budget {
            s.push_str(&format!(", ratio budget {:.0}%", r.ratio * 100.0));
        }
        if let Some(t) = self.token_bucket {
            s.push_str(&format!(
                ", token bucket {}/{}",
                t.max_tokens, t.token_ratio
            ));
        }
        if self.breaker.is_some() {
            s.push_str(", circuit breaker");
        }
        if let Some(th) = self.throttle {
            s.push_str(&format!(", adaptive throttle K = {}", th.k.unwrap_or(2.0)));
        }
        if self.scope == Scope::Shared
            && (self.budget.is_some()
                || self.token_bucket.is_some()
                || self.breaker.is_some()
                || self.throttle.is_some())
        {
            s.push_str(" (shared)");
        }
        s
    }
}
