//! The retry policy: how often and how long to retry.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::breaker::CircuitBreaker;
use crate::budget::RetryBudget;
use crate::classify::RetryErrors;
use crate::retry::{
    NoHook, Report, RetryError, RetryExecutor, RetryPolicyBuilder, RetryState, Stop,
};
use crate::telemetry::CounterKey;
use crate::throttle::AdaptiveThrottle;
use crate::{Clock, RandomSource};

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
    pub(crate) fn new(dependency: &Arc<str>, host: Option<&Arc<str>>) -> Self {
        use crate::telemetry::*;
        let key = |name, reason| CounterKey::hosted(name, dependency, host, reason);
        RetryMetrics {
            retries: key(RETRY_ATTEMPTS_TOTAL, None),
            timeouts: key(DEPENDENCY_TIMEOUT_TOTAL, None),
            budget_exhausted: key(RETRY_BUDGET_EXHAUSTED_TOTAL, None),
            exhausted: Stop::NAMES.map(|reason| key(RETRY_EXHAUSTED_TOTAL, Some(reason))),
        }
    }
}

/// How to retry: attempts, backoff, timeouts, budget. Cheap to clone and
/// share; build one per dependency with [`RetryPolicy::builder`].
///
/// See the [module docs](crate::retry) for an example.
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
    pub(crate) host: Option<Arc<str>>,
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
    /// Describes the metrics, registers at zero the series this policy can
    /// emit (the give-up reasons its settings allow) and lists its budget in
    /// [`crate::state`].
    pub(crate) fn observe(&self) {
        crate::telemetry::describe();
        let m = &self.metrics;
        m.retries.touch();
        let mut reasons = vec![
            Stop::AttemptsExhausted,
            Stop::Throttled { retry_after: None },
        ];
        if self.attempt_timeout.is_some() || self.total_timeout.is_some() {
            m.timeouts.touch();
        }
        if self.total_timeout.is_some() {
            reasons.push(Stop::DeadlineExceeded {
                requested_delay: None,
            });
        }
        if let Some(b) = &self.budget {
            m.budget_exhausted.touch();
            reasons.push(Stop::BudgetExhausted);
            b.observe(&self.dependency);
        }
        if self.breaker.is_some() {
            reasons.push(Stop::BreakerOpen);
        }
        for r in reasons {
            m.exhausted[r.index()].touch();
        }
    }

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

    /// The `host` label of its metrics, if one was set with
    /// [`RetryPolicyBuilder::host`].
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The policy's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The policy's source of randomness.
    pub fn random(&self) -> &RandomSource {
        &self.random
    }

    /// Keeps the policy for the rest of the program and returns it borrowed
    /// forever: for a policy built once at start-up and shared by every
    /// call, so holders copy a pointer instead of counting a reference
    /// (see `tower::retry::SharedPolicy`, feature `tower`). Its memory
    /// is never freed: do not leak policies made per request.
    ///
    /// ```
    /// use rebound::RetryPolicy;
    /// static_policy(RetryPolicy::builder().dependency("inventory").build()?.leak());
    /// fn static_policy(p: &'static RetryPolicy) { assert_eq!(p.dependency(), "inventory"); }
    /// # Ok::<(), rebound::ConfigError>(())
    /// ```
    pub fn leak(self) -> &'static RetryPolicy {
        Box::leak(Box::new(self))
    }

    /// Starts the sans-IO state of one call.
    #[inline]
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
    pub fn classify<C>(&self, classifier: C) -> RetryExecutor<'_, C, NoHook> {
        RetryExecutor::new(self, classifier, NoHook)
    }

    /// Binds a hook called before each retry; see [`Retry::on_retry`](crate::RetryExecutor::on_retry).
    pub fn on_retry<H>(&self, hook: H) -> RetryExecutor<'_, RetryErrors, H> {
        RetryExecutor::new(self, RetryErrors, hook)
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
        RetryExecutor::new(self, RetryErrors, NoHook)
            .retry(op)
            .await
    }

    /// Like [`retry`](Self::retry) but returns the full [`Report`].
    #[cfg(feature = "tokio")]
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Report<T, E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        RetryExecutor::new(self, RetryErrors, NoHook).run(op).await
    }

    /// Runs the blocking `op` on this thread until it succeeds or the policy
    /// says stop, sleeping on the policy's clock between attempts.
    pub fn retry_blocking<T, E, F>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Result<T, E>,
    {
        RetryExecutor::new(self, RetryErrors, NoHook).retry_blocking(op)
    }

    /// Like [`retry_blocking`](Self::retry_blocking) but returns the full
    /// [`Report`].
    pub fn run_blocking<T, E, F>(&self, op: F) -> Report<T, E>
    where
        F: FnMut() -> Result<T, E>,
    {
        RetryExecutor::new(self, RetryErrors, NoHook).run_blocking(op)
    }
}
