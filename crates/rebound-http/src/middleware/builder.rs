//! Building a [`RetryMiddleware`], validated.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use rebound::throttle::AdaptiveThrottleBuilder;
use rebound::{CircuitBreakerBuilder, ConfigError, RetryBudget, RetryPolicy, RetryPolicyBuilder};

use super::{Hook, Inner, RetryMiddleware, RetryNotice, DEFAULT_ATTEMPT_HEADER, IDEMPOTENCY_KEY};
use crate::classify::HttpClassifier;
use crate::hosts::{Customize, Names, Registry};

/// Builder for [`RetryMiddleware`]; [`build`](Self::build) validates every
/// setting and names the first bad one.
///
/// ```
/// use std::time::Duration;
/// use rebound::{Backoff, RetryBudget, RetryPolicy};
/// use rebound_http::{HttpClassifier, RetryMiddleware};
///
/// let middleware = RetryMiddleware::builder()
///     .policy(
///         RetryPolicy::builder()
///             .max_attempts(4)
///             .backoff(Backoff::exponential(Duration::from_millis(50)))
///             .attempt_timeout(Duration::from_secs(2))
///             .total_timeout(Duration::from_secs(10)),
///     )
///     .budget_per_host(|| RetryBudget::ratio(0.1).build())
///     .classifier(HttpClassifier::new())
///     .generate_idempotency_keys(true)
///     .build()
///     .unwrap();
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(middleware)
///     .build();
/// # let _ = client;
/// ```
#[must_use]
pub struct RetryMiddlewareBuilder {
    policy: RetryPolicyBuilder,
    dependency: Option<Arc<str>>,
    customize: Vec<Customize>,
    classifier: HttpClassifier,
    key_header: HeaderName,
    generate_keys: bool,
    attempt_header: Option<HeaderName>,
    max_hosts: usize,
    idle_timeout: Option<Duration>,
    on_retry: Option<Hook>,
    report_every_response: bool,
    error_on_give_up: bool,
}

impl Default for RetryMiddlewareBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RetryMiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryMiddlewareBuilder")
            .field("policy", &self.policy)
            .field("classifier", &self.classifier)
            .field("max_hosts", &self.max_hosts)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl RetryMiddlewareBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        RetryMiddlewareBuilder {
            policy: RetryPolicy::builder(),
            dependency: None,
            customize: Vec::new(),
            classifier: HttpClassifier::new(),
            key_header: IDEMPOTENCY_KEY,
            generate_keys: false,
            attempt_header: Some(DEFAULT_ATTEMPT_HEADER),
            max_hosts: 10_000,
            idle_timeout: Some(Duration::from_secs(600)),
            on_retry: None,
            report_every_response: false,
            error_on_give_up: false,
        }
    }

    /// The retry policy every host starts from: attempts, backoff,
    /// per-attempt and total timeouts, `max_server_delay`, clock. A
    /// `dependency` named on it is the middleware's
    /// [`dependency`](Self::dependency) name (unless that is set too); each
    /// host's authority becomes its `host` label. A budget set here
    /// is shared by **all** hosts; use [`budget_per_host`](Self::budget_per_host)
    /// for one per host. Default [`RetryPolicy::builder`]'s defaults: 3
    /// attempts, exponential backoff from 100 ms with full jitter, no
    /// timeouts, server delays up to 60 s.
    ///
    /// The per-attempt timeout covers sending the request and receiving the
    /// response head; reading the body afterwards is the caller's (use
    /// reqwest's own `timeout` for that).
    pub fn policy(mut self, policy: RetryPolicyBuilder) -> Self {
        self.policy = policy;
        self
    }

    /// The name of the dependency this client calls: the `dependency` label
    /// of **every** series of every host — retries, timeouts, budget,
    /// breaker, throttle, `retry_not_allowed_total` — with the host's
    /// authority (`host` or `host:port`) as a separate `host` label, so
    /// they join with the series of a [`Fallback`](rebound::fallback::Fallback)
    /// or a bulkhead named the same. Default: a `dependency` named on the
    /// [`policy`](Self::policy), else each host's authority (both labels
    /// then carry it).
    ///
    /// ```
    /// use rebound_http::RetryMiddleware;
    /// let mw = RetryMiddleware::builder().dependency("inventory").build()?;
    /// assert_eq!(mw.dependency(), Some("inventory"));
    /// # Ok::<(), rebound::ConfigError>(())
    /// ```
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = Some(name.into());
        self
    }

    /// A retry budget for each host, made by `make` on the host's first
    /// request. Default: none. Build it on the same clock as the policy.
    pub fn budget_per_host<F>(self, make: F) -> Self
    where
        F: Fn() -> Result<RetryBudget, ConfigError> + Send + Sync + 'static,
    {
        self.per_host(move |_, policy| Ok(policy.budget(make()?)))
    }

    /// A circuit breaker for each host, built from `breaker` on the host's
    /// first request, labelled like the host's other series: `dependency`
    /// the middleware's [`dependency`](Self::dependency) name (or the
    /// authority), `host` the authority.
    /// Default: none. A dead host's breaker opens and its requests fail fast
    /// with [`Stop::BreakerOpen`](rebound::Stop::BreakerOpen) while other hosts carry on. Build it on the
    /// same clock as the policy.
    ///
    /// Outcomes are recorded as the core records them: transient failures
    /// (connection errors, timeouts, retryable statuses) count as failures,
    /// everything else — a 404 included — as a healthy host answering.
    pub fn breaker_per_host(mut self, breaker: CircuitBreakerBuilder) -> Self {
        self.customize
            .push(Arc::new(move |names: &Names<'_>, policy| {
                let breaker = breaker
                    .clone()
                    .dependency(Arc::clone(names.dependency))
                    .host(Arc::clone(names.authority));
                Ok(policy.breaker(breaker.build()?))
            }));
        self
    }

    /// An adaptive client-side throttle for each host, built from
    /// `throttle` on the host's first request and labelled like the host's
    /// other series. Default: none. Every attempt must pass it; under
    /// overload it refuses locally with
    /// [`Stop::Throttled`](rebound::Stop::Throttled). Build it on the same
    /// clock as the policy.
    pub fn throttle_per_host(mut self, throttle: AdaptiveThrottleBuilder) -> Self {
        self.customize
            .push(Arc::new(move |names: &Names<'_>, policy| {
                let throttle = throttle
                    .clone()
                    .dependency(Arc::clone(names.dependency))
                    .host(Arc::clone(names.authority));
                Ok(policy.throttle(throttle.build()?))
            }));
        self
    }

    /// A general hook run on each host's first request: adjusts the
    /// template policy for that host (its authority is passed), e.g. to give
    /// one host a longer timeout or to attach a per-host circuit breaker.
    /// Hooks run in the order added. Also run once by [`build`](Self::build)
    /// with the authority `validation.invalid`, so errors surface early.
    pub fn per_host<F>(mut self, customize: F) -> Self
    where
        F: Fn(&str, RetryPolicyBuilder) -> Result<RetryPolicyBuilder, ConfigError>
            + Send
            + Sync
            + 'static,
    {
        self.customize
            .push(Arc::new(move |names: &Names<'_>, policy| {
                customize(names.authority, policy)
            }));
        self
    }

    /// Transient-vs-permanent rules per status and per method. Default
    /// [`HttpClassifier::new`].
    pub fn classifier(mut self, classifier: HttpClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The header whose presence makes a POST or PATCH retryable. Default
    /// `Idempotency-Key`.
    pub fn idempotency_key_header(mut self, name: HeaderName) -> Self {
        self.key_header = name;
        self
    }

    /// Whether to add a fresh key (a random UUID, sent as an RFC 9651
    /// sf-string: `"3f2c…"`) to requests whose method needs one and that
    /// carry none. The key is added once, before the first attempt, so every
    /// attempt sends the same key. Default `false`: such requests are sent
    /// once.
    pub fn generate_idempotency_keys(mut self, generate: bool) -> Self {
        self.generate_keys = generate;
        self
    }

    /// The name of the header carrying the attempt number (1 for the first
    /// attempt), so servers can tell retries apart (like Envoy's
    /// `x-envoy-attempt-count`). Default `x-attempt-count`.
    pub fn attempt_header(mut self, name: HeaderName) -> Self {
        self.attempt_header = Some(name);
        self
    }

    /// Sends no attempt-number header.
    pub fn no_attempt_header(mut self) -> Self {
        self.attempt_header = None;
        self
    }

    /// The most hosts to keep state for; past it the least recently used
    /// are dropped. Default 10 000. Must be at least 1.
    pub fn max_hosts(mut self, max: usize) -> Self {
        self.max_hosts = max;
        self
    }

    /// Drops a host's state once unused this long (on the policy's clock).
    /// Default 10 minutes. Must be non-zero.
    pub fn host_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// Keeps hosts until `max_hosts` forces them out, however long idle.
    pub fn keep_idle_hosts(mut self) -> Self {
        self.idle_timeout = None;
        self
    }

    /// Called before each retry, after the delay is decided and before
    /// waiting it: to log, count or (in tests) record delays.
    pub fn on_retry<F>(mut self, hook: F) -> Self
    where
        F: Fn(&RetryNotice<'_>) + Send + Sync + 'static,
    {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Attaches a [`RetryReport`](crate::RetryReport) to every response,
    /// a clean one (a 2xx on the first attempt) included. Default `false`:
    /// a clean response carries none — attaching one allocates — and
    /// [`RetryReport::of`](crate::RetryReport::of) answers `None` for it.
    pub fn report_every_response(mut self, every: bool) -> Self {
        self.report_every_response = every;
        self
    }

    /// Turns a response the middleware gave up on — a retryable status
    /// (`503`, `429`, …) still there when the attempts, the deadline or the
    /// budget ran out, or when the request could not be retried — into an
    /// [`Error`](crate::Error) whose [`cause`](crate::Error::cause) says why
    /// and whose [`status`](crate::Error::status) is the last status. The
    /// response is dropped. Default `false`: it comes back as `Ok(response)`
    /// with its [`RetryReport`](crate::RetryReport).
    ///
    /// A status that is never retried (a `404`, a `501`) and a success are
    /// not give-ups and still come back as responses. With this on, every
    /// failure a fallback should stand in for arrives on one path; see
    /// [`give_up`](crate::give_up).
    pub fn error_on_give_up(mut self, on: bool) -> Self {
        self.error_on_give_up = on;
        self
    }

    /// Validates and builds the middleware.
    ///
    /// Rejected: anything the policy's own `build` rejects, errors from the
    /// per-host hooks, `max_hosts` 0, a zero `host_idle_timeout`.
    pub fn build(self) -> Result<RetryMiddleware, ConfigError> {
        const C: &str = "retry middleware";
        if self.max_hosts == 0 {
            return Err(ConfigError::new(C, "max_hosts", "must be at least 1"));
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                C,
                "host_idle_timeout",
                "must be greater than zero (use keep_idle_hosts to never evict idle hosts)",
            ));
        }
        let template = self.policy.clone().build()?;
        let clock = template.clock().clone();
        let dependency = self.dependency.or_else(|| {
            (template.dependency() != "default").then(|| Arc::from(template.dependency()))
        });
        let hosts = Registry::new(
            self.policy,
            dependency,
            self.customize,
            clock,
            self.max_hosts,
            self.idle_timeout,
        )?;
        Ok(RetryMiddleware {
            inner: Arc::new(Inner {
                dependency: hosts.dependency().cloned(),
                hosts,
                classifier: self.classifier,
                key_header: self.key_header,
                generate_keys: self.generate_keys,
                attempt_header: self.attempt_header,
                on_retry: self.on_retry,
                report_every_response: self.report_every_response,
                error_on_give_up: self.error_on_give_up,
            }),
        })
    }
}
