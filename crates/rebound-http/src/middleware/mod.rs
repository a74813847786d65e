//! The reqwest middleware: a driver of rebound's [`RetryState`](rebound::RetryState).
//!
//! Every decision — whether to start an attempt, whether to retry, after how
//! long, whether a server's `Retry-After` is acceptable, whether the budget
//! allows it — is made by the core's sans-IO state machine, the same code
//! the closure executor and the simulator run. This module only sends
//! requests, waits on the policy's clock and reports.

mod attempt;
mod builder;
#[cfg(feature = "config")]
mod from_config;
#[cfg(feature = "config")]
mod live;
// The crate's one module with `unsafe` code: see its docs.
#[allow(unsafe_code)]
mod loan;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::{Extensions, Method, StatusCode};
use rebound::{Failure, Stop};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};

pub use builder::RetryMiddlewareBuilder;
#[cfg(feature = "config")]
pub use live::LiveRetryMiddleware;

use crate::classify::{HttpClassifier, MethodRule};
use crate::error::{Error, NotRetried, RetryReport};
use crate::hosts::{Host, Registry};
use crate::telemetry;
use attempt::{BoxFuture, HttpAttempts};
use loan::SerialLoan;

/// The default name of the attempt-number header.
pub const DEFAULT_ATTEMPT_HEADER: HeaderName = HeaderName::from_static("x-attempt-count");
/// The default name of the idempotency key header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

type Hook = Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>;

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
    dependency: Option<Arc<str>>,
    hosts: Registry,
    classifier: HttpClassifier,
    key_header: HeaderName,
    generate_keys: bool,
    attempt_header: Option<HeaderName>,
    on_retry: Option<Hook>,
    report_every_response: bool,
    error_on_give_up: bool,
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

    /// The explicit dependency name of every series, if one was given (see
    /// [`RetryMiddlewareBuilder::dependency`]).
    pub fn dependency(&self) -> Option<&str> {
        self.inner.dependency.as_deref()
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

// Written out rather than with `#[async_trait]`: the lookup of the host and
// the method rules run before the future is made, so it holds the request
// once (an `async fn` would keep its arguments beside the state they move
// into) and costs less to move into its box.
impl Middleware for RetryMiddleware {
    fn handle<'s, 'e, 'n, 'f>(
        &'s self,
        req: Request,
        extensions: &'e mut Extensions,
        next: Next<'n>,
    ) -> BoxFuture<'f, reqwest_middleware::Result<Response>>
    where
        's: 'f,
        'e: 'f,
        'n: 'f,
        Self: 'f,
    {
        match self.inner.call(req, next) {
            Ok(call) => Box::pin(call.run(extensions)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

/// One request through the middleware, up to its first attempt: its host,
/// the request as it came in, and whether it may be retried.
struct Call<'a> {
    inner: &'a Inner,
    host: Arc<Host>,
    /// The request as it came in, lent to the attempts (see
    /// [`HttpAttempts::original`]).
    original: Option<Request>,
    next: Next<'a>,
    not_retried: Option<NotRetried>,
    started: Instant,
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

    /// Finds the request's host and applies the method rules.
    fn call<'a>(
        &'a self,
        mut req: Request,
        next: Next<'a>,
    ) -> reqwest_middleware::Result<Call<'a>> {
        let started = self.hosts.clock().now();
        let host = self
            .hosts
            .get(req.url(), started)
            .map_err(reqwest_middleware::Error::middleware)?;
        let not_retried = self.prepare(&mut req);
        Ok(Call {
            inner: self,
            host,
            original: Some(req),
            next,
            not_retried,
            started,
        })
    }
}

impl<'a> Call<'a> {
    /// Runs the attempts through the core's attempt loop and answers as the
    /// middleware's settings say.
    ///
    /// Not an `async fn`: that would keep the call twice in the future, as
    /// the argument and as the local it is moved into.
    #[allow(clippy::manual_async_fn)]
    fn run(
        mut self,
        ext: &'a mut Extensions,
    ) -> impl std::future::Future<Output = reqwest_middleware::Result<Response>> + 'a {
        async move {
            // Only what the attempts need lives across the wait (see
            // `RetryPolicy::drive`): the future stays small.
            let report = {
                let policy = self.host.policy();
                let mut state = policy.start();
                if self.not_retried.is_some() {
                    state.forbid_retries();
                }
                policy.drive(
                    state,
                    &mut HttpAttempts {
                        inner: self.inner,
                        host: &self.host,
                        original: &mut self.original,
                        next: self.next.clone(),
                        extensions: SerialLoan::new(ext),
                        attempt_started: self.started,
                    },
                )
            }
            .await;
            let (stop, attempts) = (report.stop(), report.attempts());
            // The common case: answered on the first attempt. No report (an
            // entry in the response's extensions is an allocation).
            let clean =
                stop == Stop::Succeeded && attempts == 1 && !self.inner.report_every_response;
            match report.into_last() {
                Some(Ok(response)) if clean && response.status().is_success() => Ok(response),
                last => self.answer(stop, attempts, last),
            }
        }
    }

    /// The answer to a call that did not end cleanly on its first attempt
    /// (or whose every response gets a report): the response with its
    /// report, or the error.
    #[cold]
    fn answer(
        &mut self,
        stop: Stop,
        attempts: u32,
        last: Option<Result<Response, Failure<reqwest_middleware::Error>>>,
    ) -> reqwest_middleware::Result<Response> {
        let inner = self.inner;
        let mut retry_report = self.report(stop, attempts);
        match last {
            Some(Ok(response)) if inner.error_on_give_up && retry_report.gave_up() => {
                Err(reqwest_middleware::Error::middleware(Error {
                    status: Some(response.status()),
                    report: retry_report,
                    last: None,
                }))
            }
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
                status: None,
            })),
        }
    }

    /// The report of a call that did not end cleanly on its first attempt.
    fn report(&mut self, stop: Stop, attempts: u32) -> RetryReport {
        let host = &*self.host;
        // "Not retried" matters only when a retry would otherwise have been
        // tried: a transient failure on the one attempt allowed (not a
        // success, a permanent failure, or a breaker refusing the first).
        let not_retried = self
            .not_retried
            .take()
            .filter(|_| attempts > 0 && !matches!(stop, Stop::Succeeded | Stop::Permanent));
        if let Some(why) = &not_retried {
            telemetry::not_retried(host, why.as_str());
        }
        RetryReport {
            host: host.authority_arc().clone(),
            dependency: host.dependency_arc().clone(),
            attempts,
            stop,
            elapsed: host
                .policy()
                .clock()
                .now()
                .saturating_duration_since(self.started),
            not_retried,
        }
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
    use super::attempt::attempt_number;
    use super::*;
    use rebound::{RetryBudget, RetryPolicy};

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
