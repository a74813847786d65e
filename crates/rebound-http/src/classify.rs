//! Which HTTP outcomes are transient, which permanent, and which methods may
//! be sent twice.
//!
//! Seed 001: "Not all failures deserve a retry." A transient failure may go
//! away if you wait; a permanent one never will, and retrying it only adds
//! load. [`HttpClassifier`] holds the defaults below, each overridable.
//!
//! | outcome | default |
//! |---|---|
//! | connection refused / reset / closed before the response, connect errors, timeouts | retry |
//! | 408, 429, 500, 502, 503, 504 | retry (after `Retry-After` if given) |
//! | 409 with a `Retry-After` (e.g. an Idempotency-Key still in progress) | retry after it |
//! | 409 without one, 400, 401, 403, 404, 422 and every other status | do not retry |
//! | body, decode, redirect and builder errors, errors from other middleware | do not retry |
//!
//! And [`MethodRule`]s say whether a request may be sent more than once at
//! all (never retry an operation unless it is idempotent):
//!
//! | method | default |
//! |---|---|
//! | GET, HEAD, OPTIONS, PUT, DELETE, TRACE | [`MethodRule::Retry`] (idempotent by RFC 9110 §9.2.2) |
//! | POST, PATCH and extension methods | [`MethodRule::RetryWithIdempotencyKey`] |
//! | CONNECT | [`MethodRule::Never`] |
//!
//! ```
//! use http::{Method, StatusCode};
//! use rebound_http::{HttpClassifier, MethodRule};
//!
//! let classifier = HttpClassifier::new()
//!     .retry_status(StatusCode::NOT_IMPLEMENTED, true) // our gateway says 501 while deploying
//!     .retry_status(StatusCode::INTERNAL_SERVER_ERROR, false)
//!     .method(Method::POST, MethodRule::Retry); // this API's POSTs are idempotent
//! assert!(classifier.is_retryable_status(StatusCode::NOT_IMPLEMENTED));
//! assert!(!classifier.is_retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
//! assert_eq!(classifier.method_rule(&Method::POST), MethodRule::Retry);
//! assert_eq!(classifier.method_rule(&Method::PATCH), MethodRule::RetryWithIdempotencyKey);
//! ```

use std::error::Error as StdError;
use std::io;
use std::time::SystemTime;

use http::{Method, StatusCode};
use rebound::Decision;

use crate::retry_after;

/// Whether requests with a given method may be sent more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MethodRule {
    /// Retry transient failures: the method is idempotent.
    Retry,
    /// Retry only when the request carries an `Idempotency-Key` header (or
    /// the middleware generates one), so the server can deduplicate.
    RetryWithIdempotencyKey,
    /// Send once, never retry.
    Never,
}

/// Transient-vs-permanent rules for HTTP. See the [module docs](self) for
/// the defaults; every setter documents its own.
#[derive(Debug, Clone)]
pub struct HttpClassifier {
    /// Bit `n` set: status `n` is transient.
    statuses: [u64; 16],
    conflict_when_marked: bool,
    methods: Vec<(Method, MethodRule)>,
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::new()
    }
}

const DEFAULT_TRANSIENT: [u16; 6] = [408, 429, 500, 502, 503, 504];

impl HttpClassifier {
    /// The defaults from the [module docs](self).
    pub fn new() -> Self {
        let mut c = HttpClassifier {
            statuses: [0; 16],
            conflict_when_marked: true,
            methods: Vec::new(),
        };
        for s in DEFAULT_TRANSIENT {
            c.set(s, true);
        }
        c
    }

    fn set(&mut self, status: u16, retry: bool) {
        let (word, bit) = (usize::from(status / 64), status % 64);
        if let Some(w) = self.statuses.get_mut(word) {
            if retry {
                *w |= 1 << bit;
            } else {
                *w &= !(1 << bit);
            }
        }
    }

    /// Marks `status` transient (`true`) or permanent (`false`), replacing
    /// the default for it. Default transient: 408, 429, 500, 502, 503, 504.
    #[must_use]
    pub fn retry_status(mut self, status: StatusCode, retry: bool) -> Self {
        self.set(status.as_u16(), retry);
        if status == StatusCode::CONFLICT && !retry {
            self.conflict_when_marked = false;
        }
        self
    }

    /// Whether a `409 Conflict` carrying `Retry-After` is retried after the
    /// delay. An Idempotency-Key server answers a duplicate of a request it
    /// is still running this way (IETF idempotency-key draft). Default `true`.
    #[must_use]
    pub fn retry_conflict_with_retry_after(mut self, retry: bool) -> Self {
        self.conflict_when_marked = retry;
        self
    }

    /// Sets the rule for `method`, replacing its default.
    #[must_use]
    pub fn method(mut self, method: Method, rule: MethodRule) -> Self {
        self.methods.retain(|(m, _)| *m != method);
        self.methods.push((method, rule));
        self
    }

    /// The rule for `method`.
    pub fn method_rule(&self, method: &Method) -> MethodRule {
        if let Some((_, rule)) = self.methods.iter().find(|(m, _)| m == method) {
            return *rule;
        }
        match *method {
            Method::GET
            | Method::HEAD
            | Method::OPTIONS
            | Method::PUT
            | Method::DELETE
            | Method::TRACE => MethodRule::Retry,
            Method::CONNECT => MethodRule::Never,
            _ => MethodRule::RetryWithIdempotencyKey,
        }
    }

    /// Whether `status` is transient on its own (a 409 also needs
    /// `Retry-After`; see [`retry_conflict_with_retry_after`](Self::retry_conflict_with_retry_after)).
    pub fn is_retryable_status(&self, status: StatusCode) -> bool {
        let s = status.as_u16();
        self.statuses
            .get(usize::from(s / 64))
            .is_some_and(|w| w & (1 << (s % 64)) != 0)
    }

    /// Whether a response with `status` can be retried at all (a transient
    /// status, or a 409 that may be marked with `Retry-After`).
    pub(crate) fn may_retry(&self, status: StatusCode) -> bool {
        self.is_retryable_status(status)
            || (status == StatusCode::CONFLICT && self.conflict_when_marked)
    }

    /// Decides about a response: [`Decision::DoNotRetry`] for a status that
    /// is not transient; otherwise [`Decision::RetryAfter`] with the delay
    /// the server asked for (see [`retry_after`](mod@crate::retry_after)), or
    /// [`Decision::Retry`]. `now` is used for HTTP-dates only when the
    /// response has no `Date` header.
    pub fn classify_response(
        &self,
        status: StatusCode,
        headers: &http::HeaderMap,
        now: SystemTime,
    ) -> Decision {
        let marked_conflict = status == StatusCode::CONFLICT
            && self.conflict_when_marked
            && headers.contains_key(http::header::RETRY_AFTER);
        if !self.is_retryable_status(status) && !marked_conflict {
            return Decision::DoNotRetry;
        }
        match retry_after::server_delay(headers, now) {
            Some(d) => Decision::RetryAfter(d.delay),
            None if marked_conflict => Decision::DoNotRetry,
            None => Decision::Retry,
        }
    }

    /// Decides about an error: connection failures, resets, connections
    /// closed before the response and timeouts are transient; everything else
    /// (body, decode, redirect, builder errors, errors from other middleware)
    /// is permanent.
    pub fn classify_error(&self, error: &reqwest_middleware::Error) -> Decision {
        match error {
            reqwest_middleware::Error::Middleware(_) => Decision::DoNotRetry,
            reqwest_middleware::Error::Reqwest(e) => classify_reqwest(e),
        }
    }
}

fn classify_reqwest(e: &reqwest::Error) -> Decision {
    if e.is_timeout() || e.is_connect() {
        return Decision::Retry;
    }
    if e.is_body() || e.is_decode() || e.is_builder() || e.is_redirect() || e.is_status() {
        return Decision::DoNotRetry;
    }
    // A request error: look for what broke the connection.
    let mut cur: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return Decision::Retry;
            }
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return rebound::classify::io_error(io);
        }
        cur = err.source();
    }
    Decision::DoNotRetry
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use std::time::Duration;

    #[test]
    fn seed_001_defaults() {
        let c = HttpClassifier::new();
        let h = HeaderMap::new();
        let now = SystemTime::now();
        for s in [408, 429, 500, 502, 503, 504] {
            let s = StatusCode::from_u16(s).unwrap();
            assert_eq!(c.classify_response(s, &h, now), Decision::Retry, "{s}");
        }
        for s in [200, 201, 301, 400, 401, 403, 404, 409, 422, 501, 505] {
            let s = StatusCode::from_u16(s).unwrap();
            assert_eq!(c.classify_response(s, &h, now), Decision::DoNotRetry, "{s}");
        }
    }

    #[test]
    fn marked_conflict_is_retried_after_the_delay() {
        let c = HttpClassifier::new();
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "2".parse().unwrap());
        let d = c.classify_response(StatusCode::CONFLICT, &h, SystemTime::now());
        assert_eq!(d, Decision::RetryAfter(Duration::from_secs(2)));
        let c = c.retry_conflict_with_retry_after(false);
        let d = c.classify_response(StatusCode::CONFLICT, &h, SystemTime::now());
        assert_eq!(d, Decision::DoNotRetry);
    }

    #[test]
    fn overrides() {
        let c = HttpClassifier::new()
            .retry_status(StatusCode::SERVICE_UNAVAILABLE, false)
            .retry_status(StatusCode::NOT_FOUND, true)
            .method(Method::GET, MethodRule::Never)
            .method(Method::GET, MethodRule::RetryWithIdempotencyKey);
        assert!(!c.is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(c.is_retryable_status(StatusCode::NOT_FOUND));
        assert_eq!(
            c.method_rule(&Method::GET),
            MethodRule::RetryWithIdempotencyKey
        );
        assert_eq!(c.method_rule(&Method::CONNECT), MethodRule::Never);
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(c.method_rule(&custom), MethodRule::RetryWithIdempotencyKey);
    }
}
