//! The layer's configuration: a builder validated by `build()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, Method, StatusCode};

use crate::clock::{Clock, SystemClock};
use crate::event::Event;
use crate::key::{KeyParser, DEFAULT_MAX_KEY_LEN};
use crate::layer::IdempotencyLayer;
use crate::store::Store;

/// A setting that `build()` refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid idempotency layer setting `{field}`: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The builder method / field that was wrong.
    pub field: &'static str,
    /// What was wrong with it.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// Which handler responses are stored for replay.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum StorePolicy {
    /// 2xx, 3xx and the deterministic 4xx: every 4xx except 401, 403, 408,
    /// 409, 423, 425 and 429, whose answer may change on retry. 5xx are
    /// never stored (the claim is released so a retry runs again).
    Deterministic,
    /// Every response, 5xx included (Stripe's behaviour). Panics, handler
    /// errors and cancellations still release the claim.
    Everything,
    /// Your own rule.
    Custom(fn(StatusCode) -> bool),
}

impl fmt::Debug for StorePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorePolicy::Deterministic => f.write_str("Deterministic"),
            StorePolicy::Everything => f.write_str("Everything"),
            StorePolicy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl StorePolicy {
    /// Whether a response with `status` is stored.
    ///
    /// ```
    /// use http::StatusCode;
    /// use rebound_idempotency::StorePolicy;
    /// assert!(StorePolicy::Deterministic.stores(StatusCode::CREATED));
    /// assert!(StorePolicy::Deterministic.stores(StatusCode::UNPROCESSABLE_ENTITY));
    /// assert!(!StorePolicy::Deterministic.stores(StatusCode::TOO_MANY_REQUESTS));
    /// assert!(!StorePolicy::Deterministic.stores(StatusCode::BAD_GATEWAY));
    /// assert!(StorePolicy::Everything.stores(StatusCode::BAD_GATEWAY));
    /// ```
    pub fn stores(&self, status: StatusCode) -> bool {
        match self {
            StorePolicy::Deterministic => match status.as_u16() {
                200..=399 => true,
                401 | 403 | 408 | 409 | 423 | 425 | 429 => false,
                400..=499 => true,
                _ => false,
            },
            StorePolicy::Everything => true,
            StorePolicy::Custom(f) => f(status),
        }
    }
}

/// What to do with a response that cannot be stored because it is larger
/// than the response cap or streams with no known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unstorable {
    /// Release the key, so a retry runs the handler again.
    Release,
    /// Mark the key completed-but-not-replayable: a retry gets 409 with the
    /// problem type [`NOT_REPLAYABLE`](crate::problem::types::NOT_REPLAYABLE)
    /// and the handler never runs twice.
    MarkNotReplayable,
}

/// What to do when the store fails (down, timing out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailMode {
    /// Refuse with 503 and `Retry-After`; the request does not run.
    Closed,
    /// Run the request without protection (logged and counted).
    Open,
}

/// Holding duplicates until the original finishes, instead of answering 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitMode {
    /// The longest a duplicate waits before it gets 409.
    pub max_wait: Duration,
    /// How often the store is asked again while waiting.
    pub poll_every: Duration,
}

pub(crate) type PartsFn<T> = Arc<dyn Fn(&Parts) -> T + Send + Sync>;
pub(crate) type EventHook = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// The validated configuration shared by every clone of the service.
pub(crate) struct Config {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub name: Arc<str>,
    pub parser: KeyParser,
    pub methods: Vec<Method>,
    pub require_key: PartsFn<bool>,
    pub identity: Option<PartsFn<Option<String>>>,
    pub route: Option<PartsFn<String>>,
    pub fingerprint_headers: Vec<HeaderName>,
    pub mismatch_status: StatusCode,
    pub lease: Duration,
    pub renew_every: Option<Duration>,
    pub ttl: Duration,
    pub wait: Option<WaitMode>,
    pub replay_headers: Vec<HeaderName>,
    pub store_policy: StorePolicy,
    pub max_request_body: usize,
    pub max_response_body: usize,
    pub unstorable: Unstorable,
    pub fail_mode: FailMode,
    pub on_event: Option<EventHook>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field("name", &self.name)
            .field("methods", &self.methods)
            .field("lease", &self.lease)
            .field("renew_every", &self.renew_every)
            .field("ttl", &self.ttl)
            .field("wait", &self.wait)
            .field("store_policy", &self.store_policy)
            .field("max_request_body", &self.max_request_body)
            .field("max_response_body", &self.max_response_body)
            .field("unstorable", &self.unstorable)
            .field("fail_mode", &self.fail_mode)
            .finish_non_exhaustive()
    }
}

/// The headers replayed by default (besides the body and status).
pub const DEFAULT_REPLAY_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
    "location",
    "etag",
    "last-modified",
    "link",
    "cache-control",
    "expires",
    "vary",
];

const FORBIDDEN_REPLAY_HEADERS: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
    "idempotent-replayed",
];

/// Builds an [`IdempotencyLayer`]; every setter states its default.
///
/// ```
/// use rebound_idempotency::{IdempotencyLayer, MemoryStore, StorePolicy};
/// use std::time::Duration;
/// let layer = IdempotencyLayer::builder(MemoryStore::new())
///     .name("payments")
///     .lease(Duration::from_secs(10))
///     .ttl(Duration::from_secs(3600))
///     .require_key(true)
///     .identity(|parts| parts.headers.get("x-account-id")?.to_str().ok().map(String::from))
///     .store_policy(StorePolicy::Deterministic)
///     .build()
///     .unwrap();
/// # let _ = layer;
///
/// let bad = IdempotencyLayer::builder(MemoryStore::new()).lease(Duration::ZERO).build();
/// assert_eq!(bad.unwrap_err().field, "lease");
/// ```
pub struct IdempotencyLayerBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    name: String,
    lenient: bool,
    max_key_len: usize,
    methods: Vec<Method>,
    require_key: PartsFn<bool>,
    identity: Option<PartsFn<Option<String>>>,
    route: Option<PartsFn<String>>,
    fingerprint_headers: Vec<String>,
    mismatch_status: u16,
    lease: Duration,
    renew_every: Option<Option<Duration>>,
    ttl: Duration,
    wait: Option<WaitMode>,
    replay_headers: Vec<String>,
    store_policy: StorePolicy,
    max_request_body: usize,
    max_response_body: usize,
    unstorable: Unstorable,
    fail_mode: FailMode,
    on_event: Option<EventHook>,
}

impl fmt::Debug for IdempotencyLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayerBuilder")
            .field("store", &self.store)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl IdempotencyLayerBuilder {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        IdempotencyLayerBuilder {
            store,
            clock: Arc::new(SystemClock),
            name: "default".into(),
            lenient: true,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            methods: vec![Method::POST, Method::PATCH],
            require_key: Arc::new(|_| false),
            identity: None,
            route: None,
            fingerprint_headers: Vec::new(),
            mismatch_status: 422,
            lease: Duration::from_secs(30),
            renew_every: None,
            ttl: Duration::from_secs(24 * 3600),
            wait: None,
            replay_headers: DEFAULT_REPLAY_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            store_policy: StorePolicy::Deterministic,
            max_request_body: 1024 * 1024,
            max_response_body: 1024 * 1024,
            unstorable: Unstorable::Release,
            fail_mode: FailMode::Closed,
            on_event: None,
        }
    }

    /// The clock for leases, retention and waits. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The name used as the `dependency` label of metrics and in tracing.
    /// Default: `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Accept unquoted keys as well as RFC 9651 sf-strings. Default: `true`.
    pub fn lenient_keys(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// The longest key accepted, in characters (1 to 4096). Default: 255.
    pub fn max_key_len(mut self, len: usize) -> Self {
        self.max_key_len = len;
        self
    }

    /// The methods protected. Default: `POST`, `PATCH`. `GET`, `HEAD`,
    /// `OPTIONS` and `TRACE` are safe and are refused here: keys on them are
    /// always ignored.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Whether a request on a covered method without a key is refused with
    /// 400. Default: `false` (such requests pass through unprotected).
    pub fn require_key(mut self, required: bool) -> Self {
        self.require_key = Arc::new(move |_| required);
        self
    }

    /// Decide per request (e.g. per route) whether a key is required.
    pub fn require_key_when(mut self, f: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.require_key = Arc::new(f);
        self
    }

    /// Who the caller is (e.g. the authenticated principal put in the
    /// extensions by an auth layer). Keys are scoped by it, so one caller
    /// never sees another's stored response. Default: none (all callers
    /// share one scope — set this when callers are not trusted to pick
    /// unguessable keys).
    pub fn identity(
        mut self,
        f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.identity = Some(Arc::new(f));
        self
    }

    /// The route part of the scope. Default: the request path. With axum's
    /// `route_layer` you can use the matched route template instead.
    pub fn route(mut self, f: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        self.route = Some(Arc::new(f));
        self
    }

    /// Request headers that are part of the fingerprint, besides method,
    /// path, query and body. Default: none.
    pub fn fingerprint_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fingerprint_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// The status for a key reused with a different request (a 4xx).
    /// Default: 422.
    pub fn mismatch_status(mut self, status: u16) -> Self {
        self.mismatch_status = status;
        self
    }

    /// How long a claim holds before another request may take it over if
    /// the holder stops renewing. Default: 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often the lease is renewed while the handler runs; `None` turns
    /// renewal off. Default: a third of the lease.
    pub fn renew_every(mut self, every: Option<Duration>) -> Self {
        self.renew_every = Some(every);
        self
    }

    /// How long a completed response is kept for replay. Default: 24 h.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Hold duplicates of an in-progress request until it finishes (then
    /// replay its response) for at most `max_wait`, polling the store every
    /// `poll_every`. Default: off (duplicates get 409 at once).
    pub fn wait_for_in_progress(mut self, max_wait: Duration, poll_every: Duration) -> Self {
        self.wait = Some(WaitMode {
            max_wait,
            poll_every,
        });
        self
    }

    /// Response headers stored and replayed. Default:
    /// [`DEFAULT_REPLAY_HEADERS`]. `Set-Cookie`, `Content-Length` and
    /// hop-by-hop headers are refused.
    pub fn replay_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.replay_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Which responses are stored. Default: [`StorePolicy::Deterministic`].
    pub fn store_policy(mut self, policy: StorePolicy) -> Self {
        self.store_policy = policy;
        self
    }

    /// The largest request body buffered (for the fingerprint); larger
    /// bodies get 413. Default: 1 MiB.
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// The largest response body stored for replay. Default: 1 MiB.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// What to do with responses too large to store or streaming.
    /// Default: [`Unstorable::Release`].
    pub fn unstorable(mut self, what: Unstorable) -> Self {
        self.unstorable = what;
        self
    }

    /// What to do when the store fails. Default: [`FailMode::Closed`] (503).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Called for every request's outcome (after the tracing event).
    /// Default: none.
    pub fn on_event(mut self, f: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Validate and build the layer.
    pub fn build(self) -> Result<IdempotencyLayer, ConfigError> {
        if self.name.is_empty() {
            return Err(err("name", "must not be empty"));
        }
        if self.max_key_len == 0 || self.max_key_len > 4096 {
            return Err(err(
                "max_key_len",
                format!("{} is outside 1..=4096", self.max_key_len),
            ));
        }
        if self.methods.is_empty() {
            return Err(err("methods", "at least one method must be covered"));
        }
        for m in &self.methods {
            if matches!(
                *m,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ) {
                return Err(err(
                    "methods",
                    format!("{m} is a safe method; Idempotency-Key on it is ignored"),
                ));
            }
        }
        let fingerprint_headers = self
            .fingerprint_headers
            .iter()
            .map(|n| {
                HeaderName::try_from(n.as_str())
                    .map_err(|_| err("fingerprint_headers", format!("{n:?} is not a header name")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mismatch_status = StatusCode::from_u16(self.mismatch_status)
            .ok()
            .filter(StatusCode::is_client_error)
            .ok_or_else(|| {
                err(
                    "mismatch_status",
                    format!("{} is not a 4xx status", self.mismatch_status),
                )
            })?;
        if self.lease < Duration::from_millis(1) {
            return Err(err("lease", "must be at least 1 ms"));
        }
        let renew_every = match self.renew_every {
            None => Some(self.lease / 3),
            Some(None) => None,
            Some(Some(d)) if d.is_zero() || d >= self.lease => {
                return Err(err(
                    "renew_every",
                    format!(
                        "{d:?} must be greater than zero and shorter than the lease ({:?})",
                        self.lease
                    ),
                ))
            }
            Some(Some(d)) => Some(d),
        };
        let renew_every = renew_every.filter(|d| !d.is_zero());
        if self.ttl < self.lease {
            return Err(err(
                "ttl",
                format!(
                    "{:?} is shorter than the lease ({:?})",
                    self.ttl, self.lease
                ),
            ));
        }
        if let Some(w) = self.wait {
            if w.poll_every.is_zero() || w.max_wait.is_zero() {
                return Err(err(
                    "wait_for_in_progress",
                    "max_wait and poll_every must be greater than zero",
                ));
            }
        }
        let replay_headers = self
            .replay_headers
            .iter()
            .map(|n| {
                let name = HeaderName::try_from(n.as_str())
                    .map_err(|_| err("replay_headers", format!("{n:?} is not a header name")))?;
                if FORBIDDEN_REPLAY_HEADERS.contains(&name.as_str()) {
                    return Err(err(
                        "replay_headers",
                        format!("{name} must never be replayed"),
                    ));
                }
                Ok(name)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.max_request_body == 0 {
            return Err(err("max_request_body", "must be greater than zero"));
        }
        Ok(IdempotencyLayer::from_config(Config {
            store: self.store,
            clock: self.clock,
            name: self.name.into(),
            parser: KeyParser::default()
                .lenient(self.lenient)
                .max_len(self.max_key_len),
            methods: self.methods,
            require_key: self.require_key,
            identity: self.identity,
            route: self.route,
            fingerprint_headers,
            mismatch_status,
            lease: self.lease,
            renew_every,
            ttl: self.ttl,
            wait: self.wait,
            replay_headers,
            store_policy: self.store_policy,
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            unstorable: self.unstorable,
            fail_mode: self.fail_mode,
            on_event: self.on_event,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn b() -> IdempotencyLayerBuilder {
        IdempotencyLayerBuilder::new(Arc::new(MemoryStore::new()))
    }

    #[test]
    fn every_bad_setting_names_its_field() {
        let cases: Vec<(IdempotencyLayerBuilder, &str)> = vec![
            (b().name(""), "name"),
            (b().max_key_len(0), "max_key_len"),
            (b().methods([]), "methods"),
            (b().methods([Method::GET]), "methods"),
            (
                b().fingerprint_headers(["bad header"]),
                "fingerprint_headers",
            ),
            (b().mismatch_status(500), "mismatch_status"),
            (b().mismatch_status(99), "mismatch_status"),
            (b().lease(Duration::ZERO), "lease"),
            (
                b().renew_every(Some(Duration::from_secs(60))),
                "renew_every",
            ),
            (b().ttl(Duration::from_secs(1)), "ttl"),
            (
                b().wait_for_in_progress(Duration::ZERO, Duration::from_millis(5)),
                "wait_for_in_progress",
            ),
            (b().replay_headers(["Set-Cookie"]), "replay_headers"),
            (b().replay_headers(["no good"]), "replay_headers"),
            (b().max_request_body(0), "max_request_body"),
        ];
        for (builder, field) in cases {
            let e = builder.build().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
        assert!(b().methods([Method::PUT, Method::DELETE]).build().is_ok());
        assert!(b().renew_every(None).build().is_ok());
    }
}
