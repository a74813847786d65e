//! The tower [`Layer`] and [`Service`]: parse the key, buffer and fingerprint
//! the request, claim, then replay, refuse, or run the handler under a
//! renewed, fenced lease and store its response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::claim::Held;
use crate::config::{Config, IdempotencyLayerBuilder, Scope};
use crate::detach::{Detach, Work};
use crate::estimate;
use crate::event::{emit, IdempotencyContext, RequestOutcome, Subject};
use crate::key::{IdempotencyKey, KeyError, IDEMPOTENCY_KEY};
use crate::policy::{FailMode, OnDisconnect};
use crate::problem::{Problem, ProblemKind};
use crate::record::{ClaimOutcome, ClaimRequest, Fingerprint};
use crate::response::StoredResponse;
use crate::run::{replay, run_claimed, Finished};
use crate::store::{BoxError, Store};

/// Adds Idempotency-Key handling to a service. Build with
/// [`IdempotencyLayer::builder`].
///
/// ```
/// use axum::{routing::post, Router};
/// use rebound_idempotency::{IdempotencyLayer, MemoryStore};
/// let app: Router = Router::new()
///     .route("/orders", post(|| async { "created" }))
///     .layer(
///         IdempotencyLayer::builder(MemoryStore::new())
///             .identity(|parts| parts.headers.get("x-api-key")?.to_str().ok().map(String::from))
///             .build()
///             .unwrap(),
///     );
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct IdempotencyLayer {
    config: Arc<Config>,
}

impl IdempotencyLayer {
    /// Start configuring a layer on `store`.
    pub fn builder<S: Store>(store: S) -> IdempotencyLayerBuilder {
        IdempotencyLayerBuilder::new(Arc::new(store))
    }

    /// Start configuring a layer on a store shared with other code (e.g. a
    /// sweeper, or a [`Once`](crate::once::Once)).
    pub fn builder_shared(store: Arc<dyn Store>) -> IdempotencyLayerBuilder {
        IdempotencyLayerBuilder::new(store)
    }

    pub(crate) fn from_config(config: Config) -> Self {
        IdempotencyLayer {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`IdempotencyLayer`].
#[derive(Clone, Debug)]
pub struct IdempotencyService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> IdempotencyService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IdempotencyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is the one tower's docs recommend: `self.inner` was
        // driven to ready, so that is the one to call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(handle(self.config.clone(), inner, req))
    }
}

pub(crate) fn buffered<B>(res: Response<Bytes>) -> Response<ResponseBody<B>> {
    res.map(ResponseBody::full)
}

pub(crate) fn passthrough<B>(res: Response<B>) -> Response<ResponseBody<B>> {
    res.map(ResponseBody::stream)
}

fn refuse<B>(
    cfg: &Config,
    outcome: RequestOutcome,
    subject: &Subject,
    problem: Problem,
) -> Response<ResponseBody<B>> {
    emit(cfg, outcome, subject);
    buffered(cfg.renderer.response(&problem))
}

async fn handle<S, ReqBody, ResBody>(
    cfg: Arc<Config>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let mut subject = Subject {
        method: req.method().clone(),
        uri: req.uri().clone(),
        key: None,
    };
    if !cfg.methods.contains(req.method()) {
        emit(&cfg, RequestOutcome::Bypassed, &subject);
        return inner.call(req).await.map(passthrough);
    }
    let (parts, body) = req.into_parts();

    // 1. The key.
    let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
    let key = match (values.next(), values.next()) {
        (None, _) => {
            if (cfg.require_key)(&parts) {
                let detail = format!(
                    "{} {} requires an Idempotency-Key header",
                    subject.method,
                    subject.uri.path()
                );
                let p = Problem::new(ProblemKind::MissingKey, StatusCode::BAD_REQUEST, detail);
                return Ok(refuse(&cfg, RequestOutcome::KeyMissing, &subject, p));
            }
            emit(&cfg, RequestOutcome::Bypassed, &subject);
            return inner
                .call(Request::from_parts(parts, body))
                .await
                .map(passthrough);
        }
        (Some(_), Some(_)) => Err(KeyError::Multiple),
        (Some(v), None) => cfg.parser.parse(v.as_bytes()),
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            let kind = match e {
                KeyError::TooLong { .. } => ProblemKind::KeyTooLong,
                _ => ProblemKind::InvalidKey,
            };
            let p = Problem::new(kind, StatusCode::BAD_REQUEST, e.to_string());
            return Ok(refuse(&cfg, RequestOutcome::KeyMalformed, &subject, p));
        }
    };
    subject.key = Some(key.clone());

    // 2. Whose key it is.
    let identity = match &cfg.scope {
        Scope::PerCaller(identify) => match identify(&parts) {
            Some(id) => Some(id),
            None => {
                let p = Problem::new(
                    ProblemKind::IdentityMissing,
                    StatusCode::BAD_REQUEST,
                    "the request was not processed: no caller identity was found to scope its Idempotency-Key (authenticate before this layer)",
                );
                return Ok(refuse(&cfg, RequestOutcome::IdentityMissing, &subject, p));
            }
        },
        Scope::SingleTenant => None,
    };

    // 3. The body, buffered up to the cap, for the fingerprint.
    let too_large = |cfg: &Config, subject: &Subject| {
        let detail = format!(
            "requests with an Idempotency-Key are buffered up to {} bytes",
            cfg.max_request_body
        );
        let p = Problem::new(
            ProblemKind::BodyTooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            detail,
        );
        refuse(cfg, RequestOutcome::BodyRejected, subject, p)
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cfg.max_request_body as u64) {
        return Ok(too_large(&cfg, &subject));
    }
    let bytes = match Limited::new(body, cfg.max_request_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Ok(too_large(&cfg, &subject)),
        Err(e) => {
            let p = Problem::new(
                ProblemKind::BodyUnreadable,
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            );
            return Ok(refuse(&cfg, RequestOutcome::BodyRejected, &subject, p));
        }
    };

    let fingerprint = fingerprint(&cfg, &parts, &bytes);
    let route = match &cfg.route {
        Some(f) => f(&parts),
        None => parts.uri.path().to_owned(),
    };
    let scoped = scoped_key(identity.as_deref(), &parts.method, &route, &key);
    let route = cfg.durations.route(parts.method.as_str(), &route);

    // 4. Claim (waiting for an in-progress original if configured).
    let claims = &cfg.claims;
    let started = claims.clock.now();
    let mut waiting = false;
    let fence = loop {
        let claim = ClaimRequest {
            key: &scoped,
            fingerprint,
            now: claims.now(),
            lease: claims.lease,
            ttl: claims.ttl,
        };
        match claims.store.claim(claim).await {
            Ok(ClaimOutcome::Claimed { fence }) => break Some(fence),
            Ok(ClaimOutcome::Completed(stored)) => {
                return Ok(match StoredResponse::decode(&stored) {
                    Ok(stored) => {
                        emit(&cfg, RequestOutcome::Replayed, &subject);
                        buffered(replay(&cfg, stored))
                    }
                    Err(e) => {
                        tracing::error!(layer = &*claims.name, error = %e, "stored response is corrupt; refusing the request");
                        store_failed(&cfg, &subject)
                    }
                });
            }
            Ok(ClaimOutcome::Mismatch) => {
                let p = Problem::new(
                    ProblemKind::FingerprintMismatch,
                    cfg.mismatch_status,
                    "this Idempotency-Key was already used with a different request (method, path, query, body or fingerprinted headers differ)",
                );
                return Ok(refuse(&cfg, RequestOutcome::Mismatch, &subject, p));
            }
            Ok(ClaimOutcome::InProgress { retry_after }) => {
                if let Some(wait) = cfg.wait {
                    let waited = claims.clock.now().saturating_duration_since(started);
                    if waited < wait.max_wait {
                        let pause = wait
                            .poll_every
                            .min(retry_after.max(Duration::from_millis(1)))
                            .min(wait.max_wait - waited);
                        // The pause's deadline is fixed before `Waiting` is
                        // reported, so whoever sees the event and moves the
                        // clock on moves this pause on too.
                        let until = claims.clock.now() + pause;
                        if !waiting {
                            waiting = true;
                            emit(&cfg, RequestOutcome::Waiting, &subject);
                        }
                        claims.clock.timer(until).await;
                        continue;
                    }
                }
                let secs = estimate::retry_after_secs(
                    cfg.durations.typical(route),
                    claims.renew_every,
                    retry_after,
                );
                let p = Problem::new(
                    ProblemKind::InProgress,
                    StatusCode::CONFLICT,
                    "a request with this Idempotency-Key is still being processed; retry after the Retry-After delay",
                )
                .retry_after(secs);
                return Ok(refuse(&cfg, RequestOutcome::InProgress, &subject, p));
            }
            Err(e) => {
                claims.count_store_error("claim", &e);
                match cfg.fail_mode {
                    FailMode::Closed => {
                        tracing::error!(layer = &*claims.name, error = %e, "idempotency store failed; refusing the request");
                        return Ok(store_failed(&cfg, &subject));
                    }
                    FailMode::Open => {
                        tracing::error!(layer = &*claims.name, error = %e, "idempotency store failed; running the request unprotected (fail open)");
                        emit(&cfg, RequestOutcome::FailedOpen, &subject);
                        break None;
                    }
                }
            }
        }
    };

    let mut req = Request::from_parts(parts, ReqBody::from(bytes));
    let Some(fence) = fence else {
        return inner.call(req).await.map(passthrough);
    };

    // 5. Run the handler under the claim: in place, and on its own task if
    // the client goes away first (unless configured to cancel it).
    req.extensions_mut().insert(IdempotencyContext {
        key: key.clone(),
        fence,
    });
    let held = Held {
        settings: cfg.claims.clone(),
        key: scoped,
        fence,
    };
    let call = inner.call(req);
    let detach = cfg.on_disconnect == OnDisconnect::RunToCompletion;
    let work: Work<Finished<ResBody, S::Error>> =
        Box::pin(run_claimed(cfg, held, subject, route, call));
    match Detach::new(work, detach).await {
        Finished::Response(res) => Ok(res),
        Finished::Error(e) => Err(e),
        Finished::Panic(panic) => std::panic::resume_unwind(panic),
    }
}

fn store_failed<B>(cfg: &Config, subject: &Subject) -> Response<ResponseBody<B>> {
    let p = Problem::new(
        ProblemKind::StoreUnavailable,
        StatusCode::SERVICE_UNAVAILABLE,
        "the request was not processed because its Idempotency-Key could not be checked; retry later",
    )
    .retry_after(1);
    refuse(cfg, RequestOutcome::StoreUnavailable, subject, p)
}

fn fingerprint(cfg: &Config, parts: &Parts, body: &[u8]) -> Fingerprint {
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    part(parts.method.as_str().as_bytes());
    part(parts.uri.path().as_bytes());
    part(parts.uri.query().unwrap_or("").as_bytes());
    part(body);
    for name in &cfg.fingerprint_headers {
        part(name.as_str().as_bytes());
        for v in parts.headers.get_all(name) {
            part(v.as_bytes());
        }
    }
    Fingerprint(h.finalize().into())
}

/// The store key: a hash of identity, method, route and client key, so keys
/// from different callers or routes never meet.
fn scoped_key(
    identity: Option<&str>,
    method: &Method,
    route: &str,
    key: &IdempotencyKey,
) -> String {
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    match identity {
        Some(id) => {
            part(b"i");
            part(id.as_bytes());
        }
        None => part(b"-"),
    }
    part(method.as_str().as_bytes());
    part(route.as_bytes());
    part(key.as_str().as_bytes());
    crate::record::hex(&h.finalize())
}
