//! The layer's configuration: a builder validated by `build()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, Method, StatusCode};
use rebound::{Clock, ConfigError};

use crate::claim::{ClaimSettings, LeaseOptions};
use crate::estimate::Durations;
use crate::event::Event;
use crate::key::{KeyParser, DEFAULT_MAX_KEY_LEN};
use crate::layer::IdempotencyLayer;
use crate::policy::{FailMode, OnDisconnect, StorePolicy, Unstorable, WaitMode};
use crate::problem::{ErrorBody, Problem, Renderer};
use crate::store::Store;

const COMPONENT: &str = "idempotency layer";

fn err(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(COMPONENT, field, message)
}

pub(crate) type PartsFn<T> = Arc<dyn Fn(&Parts) -> T + Send + Sync>;
pub(crate) type EventHook = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// Whose keys are whose.
#[derive(Clone)]
pub(crate) enum Scope {
    /// Keys are scoped by the identity the extractor returns; a request
    /// without one is refused.
    PerCaller(PartsFn<Option<String>>),
    /// Every caller shares one scope.
    SingleTenant,
}

/// The validated configuration shared by every clone of the service.
pub(crate) struct Config {
    pub claims: Arc<ClaimSettings>,
    pub parser: KeyParser,
    pub methods: Vec<Method>,
    pub require_key: PartsFn<bool>,
    pub scope: Scope,
    pub route: Option<PartsFn<String>>,
    pub fingerprint_headers: Vec<HeaderName>,
    pub mismatch_status: StatusCode,
    pub wait: Option<WaitMode>,
    pub replay_headers: Vec<HeaderName>,
    pub replayed_header: HeaderName,
    pub body_omitted_header: HeaderName,
    pub store_policy: StorePolicy,
    pub max_request_body: usize,
    pub max_response_body: usize,
    pub unstorable: Unstorable,
    pub fail_mode: FailMode,
    pub on_disconnect: OnDisconnect,
    pub on_event: Option<EventHook>,
    pub renderer: Renderer,
    pub durations: Durations,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("claims", &self.claims)
            .field("methods", &self.methods)
            .field("wait", &self.wait)
            .field("store_policy", &self.store_policy)
            .field("max_request_body", &self.max_request_body)
            .field("max_response_body", &self.max_response_body)
            .field("unstorable", &self.unstorable)
            .field("fail_mode", &self.fail_mode)
            .field("on_disconnect", &self.on_disconnect)
            .finish_non_exhaustive()
    }
}

/// The response headers stored and replayed by default (besides the status
/// and body).
///
/// Representation and location headers only. Headers that belong to one
/// response and not to the result — `Date`, `Set-Cookie`, `Server`,
/// request or trace ids (`X-Request-Id`, `traceparent`), rate-limit
/// counters — are not replayed: a layer outside this one sets the current
/// request's own. Add names with
/// [`replay_headers`](IdempotencyLayerBuilder::replay_headers).
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

/// The default name of the header that marks a replayed response
/// (`Idempotent-Replayed: true`).
pub const DEFAULT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// The default name of the header that marks a replay whose body was not
/// stored (`Idempotent-Body-Omitted: true`).
pub const DEFAULT_BODY_OMITTED_HEADER: &str = "idempotent-body-omitted";

/// The largest response body the layer will store (256 MiB).
pub const MAX_STORED_BODY: usize = 256 * 1024 * 1024;

const FORBIDDEN_REPLAY_HEADERS: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
];

/// Builds an [`IdempotencyLayer`]; every setter states its default.
///
/// One choice has no default: whose keys are whose. Call
/// [`identity`](Self::identity) to scope keys per caller (one caller never
/// sees another's stored response), or
/// [`single_tenant`](Self::single_tenant) when every caller may share keys;
/// `build()` refuses a builder with neither.
///
/// ```
/// use rebound_idempotency::{IdempotencyLayer, MemoryStore, StorePolicy};
/// use std::time::Duration;
/// let layer = IdempotencyLayer::builder(MemoryStore::new())
///     .name("payments")
///     .identity(|parts| parts.headers.get("x-account-id")?.to_str().ok().map(String::from))
///     .lease(Duration::from_secs(10))
///     .ttl(Duration::from_secs(3600))
///     .require_key(true)
///     .store_policy(StorePolicy::Deterministic)
///     .build()
///     .unwrap();
/// # let _ = layer;
///
/// let bad = IdempotencyLayer::builder(MemoryStore::new()).single_tenant().lease(Duration::ZERO).build();
/// assert_eq!(bad.unwrap_err().field(), "lease");
/// let unscoped = IdempotencyLayer::builder(MemoryStore::new()).build();
/// assert_eq!(unscoped.unwrap_err().field(), "identity");
/// ```
pub struct IdempotencyLayerBuilder {
    store: Arc<dyn Store>,
    clock: Clock,
    name: String,
    lenient: bool,
    max_key_len: usize,
    methods: Vec<Method>,
    require_key: PartsFn<bool>,
    scope: Option<Scope>,
    route: Option<PartsFn<String>>,
    fingerprint_headers: Vec<String>,
    mismatch_status: u16,
    lease: LeaseOptions,
    wait: Option<WaitMode>,
    replay_headers: Vec<String>,
    replayed_header: String,
    body_omitted_header: String,
    store_policy: StorePolicy,
    max_request_body: usize,
    max_response_body: usize,
    unstorable: Unstorable,
    fail_mode: FailMode,
    on_disconnect: OnDisconnect,
    on_event: Option<EventHook>,
    renderer: Renderer,
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
            clock: Clock::default(),
            name: "default".into(),
            lenient: true,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            methods: vec![Method::POST, Method::PATCH],
            require_key: Arc::new(|_| false),
            scope: None,
            route: None,
            fingerprint_headers: Vec::new(),
            mismatch_status: 422,
            lease: LeaseOptions::default(),
            wait: None,
            replay_headers: DEFAULT_REPLAY_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            replayed_header: DEFAULT_REPLAYED_HEADER.into(),
            body_omitted_header: DEFAULT_BODY_OMITTED_HEADER.into(),
            store_policy: StorePolicy::Deterministic,
            max_request_body: 1024 * 1024,
            max_response_body: 1024 * 1024,
            unstorable: Unstorable::StoreWithoutBody,
            fail_mode: FailMode::Closed,
            on_disconnect: OnDisconnect::RunToCompletion,
            on_event: None,
            renderer: Renderer::default(),
        }
    }

    /// The clock for leases, retention, waits and the stored timestamps
    /// (its wall time). Default: [`Clock::default()`] (tokio's clock).
    pub fn clock(mut self, clock: Clock) -> Self {
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

    /// Who the caller is (e.g. the authenticated principal an auth layer put
    /// in the extensions, or an API key header). Keys are scoped by it, so
    /// one caller never sees another's stored response. A request for which
    /// it returns `None` is refused with 400 and the code
    /// [`identity-missing`](crate::problem::codes::IDENTITY_MISSING), never
    /// run in a shared scope: run authentication before this layer.
    ///
    /// Either this or [`single_tenant`](Self::single_tenant) is required.
    pub fn identity(
        mut self,
        f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.scope = Some(Scope::PerCaller(Arc::new(f)));
        self
    }

    /// Every caller shares one scope of keys: a key sent by one caller
    /// replays the response stored for another. Only for services with a
    /// single trusted client (or clients trusted to pick unguessable keys
    /// and never to share them).
    ///
    /// Either this or [`identity`](Self::identity) is required.
    pub fn single_tenant(mut self) -> Self {
        self.scope = Some(Scope::SingleTenant);
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
        self.lease.lease = lease;
        self
    }

    /// How often the lease is renewed while the handler runs; `None` turns
    /// renewal off. Default: a third of the lease.
    pub fn renew_every(mut self, every: Option<Duration>) -> Self {
        self.lease.renew_every = Some(every);
        self
    }

    /// How long a completed response is kept for replay. Default: 24 h.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.lease.ttl = ttl;
        self
    }

    /// How long storing a response is retried in the background when the
    /// store fails, with the lease renewed meanwhile (exponential backoff
    /// from 100 ms up to 5 s, full jitter). Default: 2 minutes.
    ///
    /// The client already has its response; duplicates get 409 until the
    /// write lands (then the replay), or 503 while the store is down. If
    /// it never lands, the lease runs out and a retry after that runs the
    /// handler again (with [`previous_attempts`](crate::IdempotencyContext::previous_attempts) > 0).
    pub fn complete_retry_for(mut self, how_long: Duration) -> Self {
        self.lease.complete_retry_for = how_long;
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

    /// The header that marks a replayed response (value `true`). Default:
    /// `Idempotent-Replayed` ([`DEFAULT_REPLAYED_HEADER`]); some APIs use
    /// `Idempotency-Replayed`.
    pub fn replayed_header(mut self, name: impl Into<String>) -> Self {
        self.replayed_header = name.into();
        self
    }

    /// The header that marks a replay whose body was not stored (value
    /// `true`), see [`Unstorable::StoreWithoutBody`]. Default:
    /// `Idempotent-Body-Omitted` ([`DEFAULT_BODY_OMITTED_HEADER`]).
    pub fn body_omitted_header(mut self, name: impl Into<String>) -> Self {
        self.body_omitted_header = name.into();
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

    /// The largest response body stored for replay (at most
    /// [`MAX_STORED_BODY`], 256 MiB). Larger ones are handled by
    /// [`unstorable`](Self::unstorable). Default: 1 MiB.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// What to do with a response whose body is over the response cap.
    /// Default: [`Unstorable::StoreWithoutBody`].
    pub fn unstorable(mut self, what: Unstorable) -> Self {
        self.unstorable = what;
        self
    }

    /// What to do when the store fails. Default: [`FailMode::Closed`] (503).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// What happens to a handler whose client hangs up. Default:
    /// [`OnDisconnect::RunToCompletion`].
    pub fn on_disconnect(mut self, what: OnDisconnect) -> Self {
        self.on_disconnect = what;
        self
    }

    /// Called for every request's outcome (after the tracing event).
    /// Default: none.
    pub fn on_event(mut self, f: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Render error bodies yourself, e.g. in your API's error envelope (see
    /// [`problem`](crate::problem)). The layer keeps the status and the
    /// `Retry-After` header. Default: problem+json with `type`, `code`,
    /// `title`, `status` and `detail`.
    pub fn error_body(mut self, f: impl Fn(&Problem) -> ErrorBody + Send + Sync + 'static) -> Self {
        self.renderer = Renderer::custom(f);
        self
    }

    /// Validate and build the layer.
    pub fn build(self) -> Result<IdempotencyLayer, ConfigError> {
        let Some(scope) = self.scope else {
            return Err(err(
                "identity",
                "is not set: call .identity(..) to scope keys per caller, or .single_tenant() if every caller may share keys",
            ));
        };
        if self.max_key_len == 0 || self.max_key_len > 4096 {
            return Err(err(
                "max_key_len",
                format!("must be within 1..=4096 (got {})", self.max_key_len),
            ));
        }
        if self.methods.is_empty() {
            return Err(err("methods", "must cover at least one method"));
        }
        for m in &self.methods {
            if matches!(
                *m,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ) {
                return Err(err(
                    "methods",
                    format!(
                        "must not include {m}: a safe method, whose Idempotency-Key is ignored"
                    ),
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
                    format!("must be a 4xx status (got {})", self.mismatch_status),
                )
            })?;
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
                        format!("must not include {name}: it is never replayed"),
                    ));
                }
                Ok(name)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let marker = |field: &'static str, n: &str| {
            let name = HeaderName::try_from(n)
                .map_err(|_| err(field, format!("{n:?} is not a header name")))?;
            if replay_headers.contains(&name) || FORBIDDEN_REPLAY_HEADERS.contains(&name.as_str()) {
                return Err(err(
                    field,
                    format!("{name} is a stored or forbidden response header"),
                ));
            }
            Ok(name)
        };
        let replayed_header = marker("replayed_header", &self.replayed_header)?;
        let body_omitted_header = marker("body_omitted_header", &self.body_omitted_header)?;
        if replayed_header == body_omitted_header {
            return Err(err(
                "body_omitted_header",
                "must differ from the replayed header",
            ));
        }
        if self.max_request_body == 0 {
            return Err(err("max_request_body", "must be greater than zero"));
        }
        if self.max_response_body > MAX_STORED_BODY {
            return Err(err(
                "max_response_body",
                format!(
                    "must be at most {MAX_STORED_BODY} bytes (got {})",
                    self.max_response_body
                ),
            ));
        }
        let claims =
            ClaimSettings::build(COMPONENT, self.store, self.clock, &self.name, self.lease)?;
        Ok(IdempotencyLayer::from_config(Config {
            claims: Arc::new(claims),
            parser: KeyParser::default()
                .lenient(self.lenient)
                .max_len(self.max_key_len),
            methods: self.methods,
            require_key: self.require_key,
            scope,
            route: self.route,
            fingerprint_headers,
            mismatch_status,
            wait: self.wait,
            replay_headers,
            replayed_header,
            body_omitted_header,
            store_policy: self.store_policy,
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            unstorable: self.unstorable,
            fail_mode: self.fail_mode,
            on_disconnect: self.on_disconnect,
            on_event: self.on_event,
            renderer: self.renderer,
            durations: Durations::default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn b() -> IdempotencyLayerBuilder {
        IdempotencyLayerBuilder::new(Arc::new(MemoryStore::new())).single_tenant()
    }

    #[test]
    fn every_bad_setting_names_its_field() {
        let cases: Vec<(IdempotencyLayerBuilder, &str)> = vec![
            (
                IdempotencyLayerBuilder::new(Arc::new(MemoryStore::new())),
                "identity",
            ),
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
            (b().complete_retry_for(Duration::ZERO), "complete_retry_for"),
            (
                b().wait_for_in_progress(Duration::ZERO, Duration::from_millis(5)),
                "wait_for_in_progress",
            ),
            (b().replay_headers(["Set-Cookie"]), "replay_headers"),
            (b().replay_headers(["no good"]), "replay_headers"),
            (b().replayed_header("no good"), "replayed_header"),
            (b().replayed_header("location"), "replayed_header"),
            (
                b().body_omitted_header("idempotent-replayed"),
                "body_omitted_header",
            ),
            (b().max_request_body(0), "max_request_body"),
            (
                b().max_response_body(MAX_STORED_BODY + 1),
                "max_response_body",
            ),
        ];
        for (builder, field) in cases {
            let e = builder.build().unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            assert_eq!(e.component(), "idempotency layer");
            assert!(e.to_string().contains(field), "{e}");
        }
        assert!(b().methods([Method::PUT, Method::DELETE]).build().is_ok());
        assert!(b().renew_every(None).build().is_ok());
        assert!(b().replayed_header("Idempotency-Replayed").build().is_ok());
    }
}
