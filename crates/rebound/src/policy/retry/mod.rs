//! Retrying: the policy, its builder, the executors.
//!
//! A [`RetryPolicy`] says how often and how long to retry; an executor runs
//! your operation under it:
//!
//! * [`RetryPolicy::retry`] — async, on tokio (feature `tokio`, on by default);
//! * [`RetryPolicy::retry_blocking`] — on the current thread;
//! * [`RetryState`] — the sans-IO core both are built on, for your own drivers.
//!
//! **Attempts, not retries.** `max_attempts` counts the first call: with
//! `max_attempts(3)` the operation runs at most three times — the first
//! attempt and two retries. A *retry* is an attempt after the first.
//!
//! **Time.** A total timeout covers the whole call, attempts and delays
//! alike, measured on the policy's [`Clock`]. The executor never sleeps past
//! it: if the next delay would cross it, it stops at once with
//! [`Stop::DeadlineExceeded`] (seed 001: fail fast). A per-attempt timeout
//! cuts off a single slow attempt (async only; a blocking call cannot be
//! interrupted) and is shortened to what is left of the total.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Backoff, RetryBudget, RetryPolicy, Stop};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::builder()
//!     .dependency("inventory")
//!     .max_attempts(4)
//!     .backoff(Backoff::exponential(Duration::from_millis(50)))
//!     .attempt_timeout(Duration::from_millis(500))
//!     .total_timeout(Duration::from_secs(3))
//!     .budget(RetryBudget::ratio(0.1).build()?)
//!     .build()?;
//!
//! let mut calls = 0;
//! let stock = policy
//!     .retry(|| {
//!         calls += 1;
//!         let n = calls;
//!         async move {
//!             if n < 3 {
//!                 Err(std::io::Error::other("connection reset"))
//!             } else {
//!                 Ok(42)
//!             }
//!         }
//!     })
//!     .await?;
//! assert_eq!((stock, calls), (42, 3));
//! # Ok(()) }
//! ```

mod exec;
mod report;
mod state;

use std::sync::Arc;
use std::time::Duration;

pub use exec::{NoHook, Retry, RetryEvent, RetryHook};
pub use report::{Failure, Report, RetryError, Stop};
pub use state::{Attempt, Next, RetryState};

use crate::backoff::Backoff;
use crate::breaker::CircuitBreaker;
use crate::budget::RetryBudget;
use crate::classify::RetryErrors;
use crate::error::ConfigError;
use crate::telemetry::CounterKey;
use crate::throttle::AdaptiveThrottle;
use crate::{Clock, RandomSource};

const COMPONENT: &str = "retry policy";

/// The policy's counter series, labelled once at build time.
#[derive(Debug)]
pub(crate) struct RetryMetrics {
    pub(crate) retries: CounterKey,
    pub(crate) timeouts: CounterKey,
    pub(crate) budget_exhausted: CounterKey,
    /// `retry_exhausted_total{reason}`, indexed by [`Stop::index`].
    pub(crate) exhausted: [CounterKey; Stop::NAMES.len()],
}

impl RetryMetrics {
    fn new(dependency: &Arc<str>) -> Self {
        use crate::telemetry::*;
        RetryMetrics {
            retries: CounterKey::new(RETRY_ATTEMPTS_TOTAL, dependency, None),
            timeouts: CounterKey::new(DEPENDENCY_TIMEOUT_TOTAL, dependency, None),
            budget_exhausted: CounterKey::new(RETRY_BUDGET_EXHAUSTED_TOTAL, dependency, None),
            exhausted: Stop::NAMES
                .map(|reason| CounterKey::new(RETRY_EXHAUSTED_TOTAL, dependency, Some(reason))),
        }
    }
}

/// How to retry: attempts, backoff, timeouts, budget. Cheap to clone and
/// share; build one per dependency with [`RetryPolicy::builder`].
///
/// See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) total_timeout: Option<Duration>,
    pub(crate) max_server_delay: Duration,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) breaker: Option<CircuitBreaker>,
    pub(crate) throttle: Option<AdaptiveThrottle>,
    pub(crate) dependency: Arc<str>,
    pub(crate) metrics: Arc<RetryMetrics>,
    pub(crate) clock: Clock,
    pub(crate) random: RandomSource,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicyBuilder::new()
            .build()
            .expect("the default retry policy is valid")
    }
}

impl RetryPolicy {
    /// A builder with the defaults listed on each setter.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::new()
    }

    /// Maximum attempts, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The per-attempt timeout.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// The total timeout.
    pub fn total_timeout(&self) -> Option<Duration> {
        self.total_timeout
    }

    /// The longest server-requested delay the executor will wait.
    pub fn max_server_delay(&self) -> Duration {
        self.max_server_delay
    }

    /// The shared retry budget, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// The adaptive client-side throttle every attempt goes through, if any.
    pub fn throttle(&self) -> Option<&AdaptiveThrottle> {
        self.throttle.as_ref()
    }

    /// The circuit breaker every attempt goes through, if any.
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// The dependency name used as the metrics label.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// The policy's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The policy's source of randomness.
    pub fn random(&self) -> &RandomSource {
        &self.random
    }

    /// Starts the sans-IO state of one call.
    pub fn start(&self) -> RetryState {
        RetryState::new(self)
    }

    /// Binds a classifier: which outcomes are transient, which permanent,
    /// and any server-requested delay. The default ([`RetryErrors`]) retries
    /// every error and timeout.
    ///
    /// ```
    /// # use rebound::{RetryPolicy, Decision, Outcome, Stop};
    /// let policy = RetryPolicy::default();
    /// let err = policy
    ///     .classify(|o: Outcome<'_, (), u16>| match o {
    ///         Outcome::Err(404) => Decision::DoNotRetry,
    ///         _ => Decision::Retry,
    ///     })
    ///     .retry_blocking(|| Err(404))
    ///     .unwrap_err();
    /// assert_eq!((err.stop(), err.attempts()), (Stop::Permanent, 1));
    /// ```
    pub fn classify<C>(&self, classifier: C) -> Retry<'_, C, NoHook> {
        Retry::new(self, classifier, NoHook)
    }

    /// Binds a hook called before each retry; see [`Retry::on_retry`].
    pub fn on_retry<H>(&self, hook: H) -> Retry<'_, RetryErrors, H> {
        Retry::new(self, RetryErrors, hook)
    }

    /// Runs `op` until it succeeds or the policy says stop, retrying every
    /// error and timeout. Returns the value, or why it stopped with the last
    /// error.
    #[cfg(feature = "tokio")]
    pub async fn retry<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        Retry::new(self, RetryErrors, NoHook).retry(op).await
    }

    /// Like [`retry`](Self::retry) but returns the full [`Report`].
    #[cfg(feature = "tokio")]
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Report<T, E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        Retry::new(self, RetryErrors, NoHook).run(op).await
    }

    /// Runs the blocking `op` on this thread until it succeeds or the policy
    /// says stop, sleeping on the policy's clock between attempts.
    pub fn retry_blocking<T, E, F>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Result<T, E>,
    {
        Retry::new(self, RetryErrors, NoHook).retry_blocking(op)
    }

    /// Like [`retry_blocking`](Self::retry_blocking) but returns the full
    /// [`Report`].
    pub fn run_blocking<T, E, F>(&self, op: F) -> Report<T, E>
    where
        F: FnMut() -> Result<T, E>,
    {
        Retry::new(self, RetryErrors, NoHook).run_blocking(op)
    }
}

/// Builder for [`RetryPolicy`]; [`build`](Self::build) validates every
/// setting and names the first bad one.
#[derive(Clone, Debug)]
#[must_use]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    backoff: Backoff,
    attempt_timeout: Option<Duration>,
    total_timeout: Option<Duration>,
    max_server_delay: Duration,
    budget: Option<RetryBudget>,
    breaker: Option<CircuitBreaker>,
    throttle: Option<AdaptiveThrottle>,
    dependency: Arc<str>,
    clock: Clock,
    random: RandomSource,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicyBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        RetryPolicyBuilder {
            max_attempts: 3,
            backoff: Backoff::default(),
            attempt_timeout: None,
            total_timeout: None,
            max_server_delay: Duration::from_secs(60),
            budget: None,
            breaker: None,
            throttle: None,
            dependency: Arc::from("default"),
            clock: Clock::default(),
            random: RandomSource::entropy(),
        }
    }

    /// Maximum attempts **including the first** (so `3` = one call and up to
    /// two retries). Default 3. Must be at least 1.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The delay schedule between attempts. Default
    /// [`Backoff::default`]: exponential from 100 ms, ×2, capped at 20 s,
    /// full jitter.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Cuts off any single attempt after `timeout` (async executor only).
    /// Default: none. Must be non-zero.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The whole call — every attempt and delay — must finish within
    /// `timeout`, measured on the policy's clock. Default: none. Must be
    /// non-zero.
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// The longest server-requested delay (`Retry-After`) the executor will
    /// wait. A longer request is never shortened: the call stops at once with
    /// [`Stop::Throttled`] reporting it. Default 60 s.
    pub fn max_server_delay(mut self, max: Duration) -> Self {
        self.max_server_delay = max;
        self
    }

    /// A retry budget shared with other calls to the same dependency.
    /// Default: none (only `max_attempts` and the timeouts limit retries).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// A circuit breaker every attempt must pass, shared with other calls
    /// to the same dependency. Default: none.
    ///
    /// Before each attempt the executor asks the breaker for a permit; a
    /// refusal stops the call at once with [`Stop::BreakerOpen`] (no
    /// waiting, no attempt). Each outcome is recorded before the retry
    /// decision: transient failures (as the classifier decides, timeouts
    /// included) as failures, everything else as successes (a permanent
    /// error such as a 404 is a healthy dependency answering). If that
    /// outcome opened the breaker, the call stops at once with
    /// `Stop::BreakerOpen` instead of waiting for a retry that would be
    /// refused (seed 001: "circuit breaker opens, all requests fail fast").
    /// An attempt dropped without an outcome gives its half-open probe slot
    /// back.
    ///
    /// ```
    /// use rebound::{CircuitBreaker, RetryPolicy, Stop};
    ///
    /// let breaker = CircuitBreaker::consecutive_failures(2).build()?;
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(5)
    ///     .backoff(rebound::Backoff::constant(std::time::Duration::ZERO))
    ///     .breaker(breaker.clone())
    ///     .build()?;
    /// let err = policy.retry_blocking(|| Err::<(), _>("503")).unwrap_err();
    /// assert_eq!((err.stop(), err.attempts()), (Stop::BreakerOpen, 2));
    /// # Ok::<(), rebound::ConfigError>(())
    /// ```
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// An adaptive client-side throttle (Google SRE) every attempt — first
    /// tries and retries alike — must pass. While the dependency rejects
    /// requests it sheds attempts locally with probability
    /// `max(0, (requests − K·accepts) / (requests + 1))`; a shed attempt
    /// stops the call with [`Stop::Throttled`]. Attempts whose outcome the
    /// classifier does not retry count as accepted. Default: none.
    ///
    /// ```
    /// use rebound::{throttle::AdaptiveThrottle, RetryPolicy};
    /// let policy = RetryPolicy::builder()
    ///     .throttle(AdaptiveThrottle::builder().k(2.0).build().unwrap())
    ///     .build()
    ///     .unwrap();
    /// assert!(policy.throttle().is_some());
    /// ```
    pub fn throttle(mut self, throttle: AdaptiveThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// The name of the dependency this policy guards, used as the
    /// `dependency` label on every metric and in tracing events. Default
    /// `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The clock for deadlines and sleeping. Default [`Clock::default`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The source of jitter. Default [`RandomSource::entropy`].
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// Validates and builds the policy.
    ///
    /// Rejected: `max_attempts` 0; zero timeouts; an `attempt_timeout`
    /// longer than the `total_timeout`; any invalid [`Backoff`] setting.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "max_attempts",
                "must be at least 1 (it counts the first attempt)",
            ));
        }
        if self.attempt_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                COMPONENT,
                "attempt_timeout",
                "must be greater than zero",
            ));
        }
        if self.total_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                COMPONENT,
                "total_timeout",
                "must be greater than zero",
            ));
        }
        if let (Some(a), Some(t)) = (self.attempt_timeout, self.total_timeout) {
            if a > t {
                return Err(ConfigError::new(
                    COMPONENT,
                    "attempt_timeout",
                    format!("must not exceed total_timeout ({t:?}; got {a:?})"),
                ));
            }
        }
        self.backoff.validate()?;
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            attempt_timeout: self.attempt_timeout,
            total_timeout: self.total_timeout,
            max_server_delay: self.max_server_delay,
            budget: self.budget,
            breaker: self.breaker,
            throttle: self.throttle,
            metrics: Arc::new(RetryMetrics::new(&self.dependency)),
            dependency: self.dependency,
            clock: self.clock,
            random: self.random,
        })
    }
}
