//! What a request that did not succeed carries back, and the report attached
//! to every response.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rebound::fallback::Cause;
use rebound::{Failure, Stop};

/// Why a request was sent only once although its failure was transient.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotRetried {
    /// The method is not idempotent and the request carried no
    /// `Idempotency-Key` (see [`MethodRule`](crate::MethodRule)).
    MissingIdempotencyKey {
        /// The request's method.
        method: Method,
        /// The header that would have made it retryable.
        header: http::HeaderName,
    },
    /// The method's rule is [`MethodRule::Never`](crate::MethodRule::Never).
    Method {
        /// The request's method.
        method: Method,
    },
    /// The body is a stream: it was consumed by the first attempt and cannot
    /// be sent again.
    StreamingBody,
}

impl NotRetried {
    /// A short, stable name: `missing_idempotency_key`, `method`,
    /// `streaming_body`. Used as the `reason` label of
    /// `retry_not_allowed_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotRetried::MissingIdempotencyKey { .. } => "missing_idempotency_key",
            NotRetried::Method { .. } => "method",
            NotRetried::StreamingBody => "streaming_body",
        }
    }
}

impl fmt::Display for NotRetried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRetried::MissingIdempotencyKey { method, header } => write!(
                f,
                "{method} is not idempotent and is retried only with an {header} header \
                 (send one, or enable generate_idempotency_keys)"
            ),
            NotRetried::Method { method } => {
                write!(f, "{method} requests are configured never to be retried")
            }
            NotRetried::StreamingBody => f.write_str(
                "the request body is a stream and cannot be sent twice \
                 (build it from bytes to make the request retryable)",
            ),
        }
    }
}

/// How a request went through the middleware: attempts, why it stopped,
/// and why it was not retried if it was not.
///
/// Attached to every response the middleware returns but a clean one (a 2xx
/// on the first attempt: nothing to report), and to every response with
/// [`report_every_response`](crate::RetryMiddlewareBuilder::report_every_response);
/// read it with [`RetryReport::of`].
///
/// ```no_run
/// # async fn f(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), Box<dyn std::error::Error>> {
/// use rebound_http::RetryReport;
/// let response = client.get("http://inventory.internal/stock/17").send().await?;
/// if let Some(report) = RetryReport::of(&response) {
///     if report.needed_retries() {
///         tracing::info!(attempts = report.attempts(), "inventory needed retries");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RetryReport {
    pub(crate) host: Arc<str>,
    pub(crate) dependency: Arc<str>,
    pub(crate) attempts: u32,
    pub(crate) stop: Stop,
    pub(crate) elapsed: Duration,
    pub(crate) not_retried: Option<NotRetried>,
}

impl RetryReport {
    /// The report attached to `response`: `None` when the response did not
    /// go through the middleware, or came clean from its first attempt (see
    /// [`report_every_response`](crate::RetryMiddlewareBuilder::report_every_response)).
    pub fn of(response: &reqwest::Response) -> Option<&RetryReport> {
        response.extensions().get::<RetryReport>()
    }

    /// The authority the request went to (`host` or `host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The `dependency` label of the request's series: the middleware's
    /// dependency name, else the authority.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the middleware stopped: [`Stop::Succeeded`] for an accepted
    /// response, [`Stop::Permanent`] for a status that is not retried, or why
    /// it gave up on a transient one (attempts, deadline, budget, throttled).
    pub fn stop(&self) -> Stop {
        self.stop
    }

    /// Time from the first attempt to the stop, on the policy's clock.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Why the request was sent at most once, when it was.
    pub fn not_retried(&self) -> Option<&NotRetried> {
        self.not_retried.as_ref()
    }

    /// Whether the request succeeded only after one or more retries.
    pub fn needed_retries(&self) -> bool {
        self.stop.is_success() && self.attempts > 1
    }

    /// Why the request failed, as a [`Fallback`](rebound::fallback::Fallback)
    /// sees it, or `None` when it succeeded: a response that came back after
    /// the middleware gave up (a `503` when the attempts, the budget or the
    /// deadline ran out) has the matching cause; a status that is not
    /// retried (a `404`, a `501`) is [`Cause::Failed`].
    ///
    /// ```no_run
    /// # async fn f(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), Box<dyn std::error::Error>> {
    /// use rebound::fallback::Fallback;
    /// use rebound_http::RetryReport;
    /// let fallback = Fallback::builder().dependency("inventory").build();
    /// let response = client.get("http://inventory.internal/stock/17").send().await?;
    /// if let Some(cause) = RetryReport::of(&response).and_then(RetryReport::cause) {
    ///     if fallback.covers(cause) {
    ///         fallback.record_use(cause);
    ///         // ... show the cached stock instead
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        Cause::from_stop(self.stop, false)
    }
}

/// A request the middleware gave up on, returned inside
/// [`reqwest_middleware::Error::Middleware`].
///
/// Says why it stopped ([`stop`](Self::stop)), how many attempts were made,
/// why it was not retried when it was not, and carries the last attempt's
/// error as its [`source`](StdError::source).
///
/// ```no_run
/// # async fn f(client: reqwest_middleware::ClientWithMiddleware) {
/// match client.get("http://inventory.internal/stock/17").send().await {
///     Ok(response) => { /* any status, retried as configured */ }
///     Err(reqwest_middleware::Error::Middleware(e)) => {
///         if let Some(gave_up) = e.downcast_ref::<rebound_http::Error>() {
///             eprintln!("{gave_up}"); // e.g. "inventory.internal: attempts exhausted after 3 attempts; last failure: ..."
///         }
///     }
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
pub struct Error {
    pub(crate) report: RetryReport,
    pub(crate) last: Option<Failure<reqwest_middleware::Error>>,
    /// The last response's status, when
    /// [`error_on_give_up`](crate::RetryMiddlewareBuilder::error_on_give_up)
    /// turned a response into this error.
    pub(crate) status: Option<http::StatusCode>,
}

impl Error {
    /// Why the middleware stopped.
    pub fn stop(&self) -> Stop {
        self.report.stop
    }

    /// Attempts made, the first included (0 when a breaker refused the
    /// first).
    pub fn attempts(&self) -> u32 {
        self.report.attempts
    }

    /// The authority the request went to.
    pub fn host(&self) -> &str {
        &self.report.host
    }

    /// Why the request was not retried, when that is why it failed.
    pub fn not_retried(&self) -> Option<&NotRetried> {
        self.report.not_retried.as_ref()
    }

    /// The whole report.
    pub fn report(&self) -> &RetryReport {
        &self.report
    }

    /// Why the request failed, as a [`Fallback`](rebound::fallback::Fallback)
    /// sees it: an open breaker, an exhausted budget, a throttle (the
    /// client's, or the server's `Retry-After` beyond `max_server_delay`),
    /// a timeout, or a plain failure. Also available through
    /// [`HasCause`](rebound::fallback::HasCause), so `fallback.call(result, ...)`
    /// takes a `Result<_, rebound_http::Error>` as it is.
    pub fn cause(&self) -> Cause {
        Cause::from_stop(self.report.stop, self.is_timeout()).unwrap_or(Cause::Failed)
    }

    /// The status of the last response, when the request got one and
    /// [`error_on_give_up`](crate::RetryMiddlewareBuilder::error_on_give_up)
    /// turned it into this error (`503 Service Unavailable` after the last
    /// attempt, say); `None` when no response came back.
    pub fn status(&self) -> Option<http::StatusCode> {
        self.status
    }

    /// Whether the last attempt was cut off by the per-attempt or total
    /// timeout (or reqwest's own timeout).
    pub fn is_timeout(&self) -> bool {
        match &self.last {
            Some(Failure::Timeout(_)) => true,
            Some(Failure::Error(e)) => e.is_timeout(),
            None => false,
        }
    }

    /// The last attempt's error, if it returned one (not a timeout).
    pub fn last_error(&self) -> Option<&reqwest_middleware::Error> {
        self.last.as_ref().and_then(Failure::error)
    }

    /// The last attempt's error, by value.
    pub fn into_last_error(self) -> Option<reqwest_middleware::Error> {
        self.last.and_then(Failure::into_error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("report", &self.report)
            .field("last", &self.last)
            .field("status", &self.status)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        if r.dependency == r.host {
            write!(f, "{}: ", r.host)?;
        } else {
            write!(f, "{} ({}): ", r.dependency, r.host)?;
        }
        match &r.not_retried {
            Some(why) => write!(f, "not retried: {why}")?,
            None if r.attempts == 0 => write!(f, "{}; no attempt was made", r.stop)?,
            None => {
                let s = if r.attempts == 1 { "" } else { "s" };
                write!(f, "{} after {} attempt{s}", r.stop, r.attempts)?;
            }
        }
        if let Some(last) = &self.last {
            write!(f, "; last failure: {last}")?;
        }
        if let Some(status) = self.status {
            write!(f, "; last response: {status}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.last_error().map(|e| e as &(dyn StdError + 'static))
    }
}
