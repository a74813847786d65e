//! The reqwest middleware: a driver of rebound's [`RetryState`](rebound::RetryState).
//!
//! Every decision — whether to start an attempt, whether to retry, after how
//! long, whether a server's `Retry-After` is acceptable, whether the budget
//! allows it — is made by the core's sans-IO state machine, the same code
//! the closure executor and the simulator run. This module only sends
//! requests, waits on the policy's clock and reports.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::{Extensions, Method, StatusCode};
use rebound::retry::{Attempt, AttemptIo, RetryEvent};
use rebound::{
    CircuitBreakerBuilder, ConfigError, Decision, Failure, Outcome, Report, RetryBudget,
    RetryPolicy, RetryPolicyBuilder, Stop,
};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use tracing::instrument::{Instrument, Instrumented};

use crate::classify::{HttpClassifier, MethodRule};
use crate::error::{Error, NotRetried, RetryReport};
use crate::hosts::{Customize, Host, Registry};
use crate::telemetry;

/// The default name of the attempt-number header.
pub const DEFAULT_ATTEMPT_HEADER: HeaderName = HeaderName::from_static("x-attempt-count");
/// The default name of the idempotency key header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

type Hook = Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>;

/// What the rest of the middleware chain returns.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Retries, budgets and breakers for a reqwest client. Add it with
/// [`reqwest_middleware::ClientBuilder::with`].
///
/// Cheap to clone; clones (and every clone of the client it is in) share the
/// per-host state. See the [crate docs](crate) for an example and
/// [`RetryMiddlewareBuilder`] for every setting.
#[derive(Clone)]
pub struct RetryMiddleware {
    inner: Arc<Inner>,
}

struct Inner {
    hosts: Registry,
    classifier: HttpClassifier,
    key_header: HeaderName,
    generate_keys: bool,
    attempt_header: Option<HeaderName>,
    on_retry: Option<Hook>,
}

impl RetryMiddleware {
    /// A builder holding the defaults.
    pub fn builder() -> RetryMiddlewareBuilder {
        RetryMiddlewareBuilder::new()
    }

    /// The state kept for `authority` (`host` or `host:port`, as in the
    /// URL), if a request has gone there and it has not been evicted.
    pub fn host(&self, authority: &str) -> Option<Arc<Host>> {
        self.inner.hosts.peek(authority)
    }

    /// How many hosts have state right now.
    pub fn hosts_tracked(&self) -> usize {
        self.inner.hosts.len()
    }

    /// Drops the state of every host idle for longer than the idle timeout
    /// now (it also happens lazily as new hosts arrive); returns how many.
    pub fn evict_idle_hosts(&self) -> usize {
        self.inner.hosts.evict_idle()
    }
}

impl Default for RetryMiddleware {
    fn default() -> Self {
        RetryMiddlewareBuilder::new()
            .build()
            .expect("the default configuration is valid")
    }
}

impl fmt::Debug for RetryMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryMiddleware")
            .field("classifier", &self.inner.classifier)
            .field("idempotency_key_header", &self.inner.key_header)
            .field("generate_idempotency_keys", &self.inner.generate_keys)
            .field("attempt_header", &self.inner.attempt_header)
            .field("hosts_tracked", &self.inner.hosts.len())
            .finish_non_exhaustive()
    }
}

/// What the [`on_retry`](RetryMiddlewareBuilder::on_retry) hook is told
/// before each retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryNotice<'a> {
    /// The authority (`host` or `host:port`).
    pub host: &'a str,
    /// The request's method.
    pub method: &'a Method,
    /// The request's URL.
    pub url: &'a Url,
    /// The number of the attempt that just failed (1 for the first).
    pub attempt: u32,
    /// How long the middleware will wait before the next attempt: the
    /// backoff delay, or the server's requested delay if that is longer.
    pub delay: Duration,
    /// The delay the server asked for (`Retry-After` and friends), if any.
    pub server_delay: Option<Duration>,
    /// The failed attempt's status, if a response arrived.
    pub status: Option<StatusCode>,
    /// The failed attempt's error, if it returned one.
    pub error: Option<&'a reqwest_middleware::Error>,
    /// Whether the failed attempt timed out.
    pub timed_out: bool,
}

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
    customize: Vec<Customize>,
    classifier: HttpClassifier,
    key_header: HeaderName,
    generate_keys: bool,
    attempt_header: Option<HeaderName>,
    max_hosts: usize,
    idle_timeout: Option<Duration>,
    on_retry: Option<Hook>,
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
            customize: Vec::new(),
            classifier: HttpClassifier::new(),
            key_header: IDEMPOTENCY_KEY,
            generate_keys: false,
            attempt_header: Some(DEFAULT_ATTEMPT_HEADER),
            max_hosts: 10_000,
            idle_timeout: Some(Duration::from_secs(600)),
            on_retry: None,
        }
    }

    /// The retry policy every host starts from: attempts, backoff,
    /// per-attempt and total timeouts, `max_server_delay`, clock. Its
    /// `dependency` is replaced by each host's authority. A budget set here
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

    /// A retry budget for each host, made by `make` on the host's first
    /// request. Default: none. Build it on the same clock as the policy.
    pub fn budget_per_host<F>(self, make: F) -> Self
    where
        F: Fn() -> Result<RetryBudget, ConfigError> + Send + Sync + 'static,
    {
        self.per_host(move |_, policy| Ok(policy.budget(make()?)))
    }

    /// A circuit breaker for each host, built from `breaker` on the host's
    /// first request with its `dependency` set to the host's authority.
    /// Default: none. A dead host's breaker opens and its requests fail fast
    /// with [`Stop::BreakerOpen`] while other hosts carry on. Build it on the
    /// same clock as the policy.
    ///
    /// Outcomes are recorded as the core records them: transient failures
    /// (connection errors, timeouts, retryable statuses) count as failures,
    /// everything else — a 404 included — as a healthy host answering.
    pub fn breaker_per_host(self, breaker: CircuitBreakerBuilder) -> Self {
        self.per_host(move |host, policy| {
            Ok(policy.breaker(breaker.clone().dependency(host).build()?))
        })
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
        self.customize.push(Arc::new(customize));
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
        let clock = self.policy.clone().build()?.clock().clone();
        let hosts = Registry::new(
            self.policy,
            self.customize,
            clock,
            self.max_hosts,
            self.idle_timeout,
        )?;
        Ok(RetryMiddleware {
            inner: Arc::new(Inner {
                hosts,
                classifier: self.classifier,
                key_header: self.key_header,
                generate_keys: self.generate_keys,
                attempt_header: self.attempt_header,
                on_retry: self.on_retry,
            }),
        })
    }
}

#[async_trait::async_trait]
impl Middleware for RetryMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.inner.execute(req, extensions, next).await
    }
}

impl Inner {
    /// Applies the method rules (adding a key if asked to) and tells why the
    /// request may not be retried, if it may not.
    fn prepare(&self, req: &mut Request) -> Option<NotRetried> {
        let why = match self.classifier.method_rule(req.method()) {
            MethodRule::Retry => None,
            MethodRule::Never => Some(NotRetried::Method {
                method: req.method().clone(),
            }),
            MethodRule::RetryWithIdempotencyKey => {
                if req.headers().contains_key(&self.key_header) {
                    None
                } else if self.generate_keys {
                    req.headers_mut()
                        .insert(self.key_header.clone(), new_idempotency_key());
                    None
                } else {
                    Some(NotRetried::MissingIdempotencyKey {
                        method: req.method().clone(),
                        header: self.key_header.clone(),
                    })
                }
            }
        };
        if why.is_none() && req.body().is_some_and(|b| b.as_bytes().is_none()) {
            return Some(NotRetried::StreamingBody);
        }
        why
    }

    async fn execute<'a>(
        &'a self,
        mut req: Request,
        ext: &'a mut Extensions,
        next: Next<'a>,
    ) -> reqwest_middleware::Result<Response> {
        let started = self.hosts.clock().now();
        let host = self
            .hosts
            .get(req.url(), started)
            .map_err(reqwest_middleware::Error::middleware)?;
        let not_retried = self.prepare(&mut req);
        let policy = host.policy();
        let mut state = policy.start();
        if not_retried.is_some() {
            state.forbid_retries();
        }
        let mut io = HttpAttempts {
            inner: self,
            host: Arc::clone(&host),
            original: Some(req),
            next,
            extensions: Lent::new(std::mem::take(ext)),
            attempt_started: started,
        };
        let report = policy.drive(state, &mut io).await;
        // Give the request's extensions back, as the last attempt left them.
        *ext = io.extensions.take();
        let mut retry_report = self.report(&host, &report, started, not_retried);
        match report.into_last() {
            Some(Ok(mut response)) => {
                let status = response.status();
                if retry_report.stop == Stop::Succeeded
                    && (status.is_client_error() || status.is_server_error())
                {
                    // The core counts any accepted response as a healthy
                    // dependency (budget, breaker); the caller is told the
                    // request failed for good.
                    retry_report.stop = Stop::Permanent;
                }
                response.extensions_mut().insert(retry_report);
                Ok(response)
            }
            Some(Err(Failure::Error(e))) if retry_report.stop == Stop::Permanent => Err(e),
            last => Err(reqwest_middleware::Error::middleware(Error {
                report: retry_report,
                last: last.and_then(Result::err),
            })),
        }
    }

    fn report<T, E>(
        &self,
        host: &Host,
        report: &Report<T, E>,
        started: Instant,
        not_retried: Option<NotRetried>,
    ) -> RetryReport {
        let stop = report.stop();
        // "Not retried" matters only when a retry would otherwise have been
        // tried: a transient failure on the one attempt allowed (not a
        // success, a permanent failure, or a breaker refusing the first).
        let not_retried = not_retried.filter(|_| {
            report.attempts() > 0 && !matches!(stop, Stop::Succeeded | Stop::Permanent)
        });
        if let Some(why) = &not_retried {
            telemetry::not_retried(host.authority_arc(), why.as_str());
        }
        RetryReport {
            host: host.authority_arc().clone(),
            attempts: report.attempts(),
            stop,
            elapsed: host
                .policy()
                .clock()
                .now()
                .saturating_duration_since(started),
            not_retried,
        }
    }
}

/// The middleware's side of the core's attempt loop: one request, the
/// rest of the chain, and what each attempt needs.
struct HttpAttempts<'a> {
    inner: &'a Inner,
    host: Arc<Host>,
    /// The request as it came in: copied for each attempt but the last,
    /// which sends it.
    original: Option<Request>,
    next: Next<'a>,
    /// The request's extensions, lent to each attempt in turn.
    extensions: Lent,
    /// When the attempt in flight started, on the policy's clock: a
    /// timeout of the client's own is reported as the time since then.
    attempt_started: Instant,
}

impl<'a> AttemptIo<Response, reqwest_middleware::Error> for HttpAttempts<'a> {
    type Attempt = HttpAttempt<'a>;

    fn start(&mut self, attempt: &Attempt) -> HttpAttempt<'a> {
        let number = attempt.number();
        // The last possible attempt sends the original; earlier ones a
        // copy (cheap: the body is shared `Bytes`).
        let request = if attempt.is_last() {
            self.original.take()
        } else {
            self.original.as_ref().and_then(Request::try_clone)
        };
        let span = tracing::info_span!(
            "rebound_http.attempt",
            dependency = self.host.authority(),
            http.method = request
                .as_ref()
                .map(|r| tracing::field::display(r.method())),
            attempt = number,
            http.status = tracing::field::Empty,
        );
        self.attempt_started = self.host.policy().clock().now();
        let sent: BoxFuture<'a, reqwest_middleware::Result<Response>> = match request {
            Some(mut request) => {
                if let Some(name) = &self.inner.attempt_header {
                    request
                        .headers_mut()
                        .insert(name.clone(), attempt_number(number));
                }
                let next = self.next.clone();
                let mut lent = self.extensions.lend();
                Box::pin(async move { next.run(request, lent.get()).await })
            }
            // Unreachable: only the last attempt takes the original, and
            // only requests with replayable bodies get more than one.
            None => Box::pin(std::future::ready(Err(
                reqwest_middleware::Error::middleware(Unreplayable),
            ))),
        };
        HttpAttempt {
            sent: sent.instrument(span),
        }
    }

    fn outcome<'r>(
        &self,
        result: &'r Result<Response, Failure<reqwest_middleware::Error>>,
    ) -> Outcome<'r, Response, reqwest_middleware::Error> {
        match result {
            // reqwest's own timeout counts as a timeout too, of the attempt.
            Err(Failure::Error(e)) if e.is_timeout() => Outcome::Timeout(
                self.host
                    .policy()
                    .clock()
                    .now()
                    .saturating_duration_since(self.attempt_started),
            ),
            other => Outcome::of(other),
        }
    }

    fn classify(&self, outcome: Outcome<'_, Response, reqwest_middleware::Error>) -> Decision {
        let classifier = &self.inner.classifier;
        match outcome {
            Outcome::Ok(r) if classifier.may_retry(r.status()) => classifier.classify_response(
                r.status(),
                r.headers(),
                self.host.policy().clock().wall(),
            ),
            // The common case: no need to read the wall clock.
            Outcome::Ok(_) => Decision::DoNotRetry,
            Outcome::Err(e) => classifier.classify_error(e),
            Outcome::Timeout(_) => Decision::Retry,
        }
    }

    fn on_retry(&mut self, event: &RetryEvent<'_, Response, reqwest_middleware::Error>) {
        let (Some(hook), Some(original)) = (&self.inner.on_retry, &self.original) else {
            return;
        };
        hook(&RetryNotice {
            host: self.host.authority(),
            method: original.method(),
            url: original.url(),
            attempt: event.attempt,
            delay: event.delay,
            server_delay: match event.decision {
                Decision::RetryAfter(d) => Some(d),
                _ => None,
            },
            status: match event.outcome {
                Outcome::Ok(r) => Some(r.status()),
                _ => None,
            },
            error: match event.outcome {
                Outcome::Err(e) => Some(e),
                _ => None,
            },
            timed_out: matches!(event.outcome, Outcome::Timeout(_)),
        });
    }

    /// Frees a failed response (and its connection) before waiting; keeps
    /// an error for the report.
    fn keep(
        &mut self,
        result: Result<Response, Failure<reqwest_middleware::Error>>,
    ) -> Option<Result<Response, Failure<reqwest_middleware::Error>>> {
        result.err().map(Err)
    }
}

pin_project_lite::pin_project! {
    /// One attempt in flight: the rest of the chain, in the attempt's span.
    struct HttpAttempt<'s> {
        #[pin]
        sent: Instrumented<BoxFuture<'s, reqwest_middleware::Result<Response>>>,
    }
}

impl std::future::Future for HttpAttempt<'_> {
    type Output = Result<Response, Failure<reqwest_middleware::Error>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut sent = self.project().sent;
        let result = std::task::ready!(sent.as_mut().poll(cx));
        if let Ok(r) = &result {
            let span = sent.as_ref().get_ref().span();
            if !span.is_disabled() {
                span.record("http.status", r.status().as_u16());
            }
        }
        std::task::Poll::Ready(result.map_err(Failure::Error))
    }
}

/// A request's extensions, lent to one attempt at a time: an attempt's
/// future holds them while it runs (the rest of the chain may read and
/// change them) and gives them back when it ends or is dropped, so the
/// next attempt, and the caller, see them as it left them.
#[derive(Clone)]
struct Lent(Arc<std::sync::Mutex<Extensions>>);

impl Lent {
    fn new(ext: Extensions) -> Self {
        Lent(Arc::new(std::sync::Mutex::new(ext)))
    }

    /// The extensions, taken out for one attempt.
    fn lend(&self) -> Loan {
        let ext = std::mem::take(&mut *self.lock());
        Loan {
            home: self.clone(),
            ext,
        }
    }

    fn take(&self) -> Extensions {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Extensions> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One attempt's hold on the extensions: given back on drop.
struct Loan {
    home: Lent,
    ext: Extensions,
}

impl Loan {
    fn get(&mut self) -> &mut Extensions {
        &mut self.ext
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        *self.home.lock() = std::mem::take(&mut self.ext);
    }
}

/// A request whose body cannot be copied reached a second attempt: never
/// happens (such requests get one attempt), reported if it did.
#[derive(Debug)]
struct Unreplayable;

impl fmt::Display for Unreplayable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request could not be copied for another attempt")
    }
}

impl std::error::Error for Unreplayable {}

/// The attempt number as a header value; small ones without allocating.
fn attempt_number(n: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match SMALL.get(n as usize) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(n),
    }
}

/// A fresh idempotency key: a random (v4) UUID as an RFC 9651 sf-string.
fn new_idempotency_key() -> HeaderValue {
    let mut buf = [0u8; 38];
    buf[0] = b'"';
    buf[37] = b'"';
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buf[1..37]);
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_numbers() {
        for n in [1u32, 9, 10, 123] {
            assert_eq!(attempt_number(n), HeaderValue::from(n));
        }
    }

    #[test]
    fn generated_keys_are_quoted_uuids_and_differ() {
        let a = new_idempotency_key();
        let b = new_idempotency_key();
        assert_ne!(a, b);
        let s = a.to_str().unwrap();
        assert_eq!(s.len(), 38);
        assert!(s.starts_with('"') && s.ends_with('"'));
        assert!(uuid::Uuid::parse_str(&s[1..37]).is_ok());
    }

    #[test]
    fn build_rejects_bad_settings_by_name() {
        let e = RetryMiddleware::builder().max_hosts(0).build().unwrap_err();
        assert_eq!(e.field(), "max_hosts");
        let e = RetryMiddleware::builder()
            .host_idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "host_idle_timeout");
        let e = RetryMiddleware::builder()
            .policy(RetryPolicy::builder().max_attempts(0))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "max_attempts");
        let e = RetryMiddleware::builder()
            .budget_per_host(|| RetryBudget::ratio(2.0).build())
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "ratio");
    }
}
