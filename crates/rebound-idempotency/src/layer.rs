//! The tower [`Layer`] and [`Service`]: parse the key, buffer and fingerprint
//! the request, claim, then replay, refuse, or run the handler under a
//! renewed, fenced lease and store its response.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::claim::{Completion, Held, LateCompletion, ReleaseOnDrop};
use crate::config::{Config, IdempotencyLayerBuilder, Scope};
use crate::detach::{Detach, Work};
use crate::estimate;
use crate::event::{Event, IdempotencyContext, RequestOutcome};
use crate::key::{IdempotencyKey, KeyError, IDEMPOTENCY_KEY};
use crate::policy::{FailMode, OnDisconnect, Unstorable};
use crate::problem::{Problem, ProblemKind};
use crate::record::{ClaimOutcome, ClaimRequest, Fingerprint};
use crate::response::StoredResponse;
use crate::store::{BoxError, Store, StoreError};

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

/// What a request is about, for events.
#[derive(Clone)]
struct Subject {
    method: Method,
    uri: Uri,
    key: Option<IdempotencyKey>,
}

fn emit(cfg: &Config, outcome: RequestOutcome, subject: &Subject) {
    let name = &cfg.claims.name;
    let key = subject.key.as_ref().map(IdempotencyKey::as_str);
    let path = subject.uri.path();
    match outcome {
        RequestOutcome::StoreUnavailable
        | RequestOutcome::FailedOpen
        | RequestOutcome::FenceRejected
        | RequestOutcome::CompletionRetrying
        | RequestOutcome::CompletionAbandoned => {
            tracing::warn!(layer = &**name, outcome = outcome.as_str(), key, method = %subject.method, path, "idempotency")
        }
        RequestOutcome::Bypassed => {
            tracing::trace!(layer = &**name, outcome = outcome.as_str(), method = %subject.method, path, "idempotency")
        }
        _ => {
            tracing::debug!(layer = &**name, outcome = outcome.as_str(), key, method = %subject.method, path, "idempotency")
        }
    }
    if outcome != RequestOutcome::Bypassed {
        metrics::counter!("idempotency_requests_total", "dependency" => name.clone(), "outcome" => outcome.as_str()).increment(1);
    }
    if outcome.is_key_reuse() {
        metrics::counter!("idempotency_key_reused_total", "dependency" => name.clone(), "outcome" => outcome.as_str()).increment(1);
    }
    if let Some(hook) = &cfg.on_event {
        hook(&Event {
            outcome,
            key,
            method: &subject.method,
            path,
        });
    }
}

fn buffered<B>(res: Response<Bytes>) -> Response<ResponseBody<B>> {
    res.map(ResponseBody::full)
}

fn passthrough<B>(res: Response<B>) -> Response<ResponseBody<B>> {
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

/// How the claimed work ended.
enum Finished<B, E> {
    Response(Response<ResponseBody<B>>),
    Error(E),
    Panic(Box<dyn std::any::Any + Send + 'static>),
}

/// What the handler produced, read as far as storing needs.
enum Produced<B> {
    /// The policy does not store this status: passed through.
    NotStored(Response<B>),
    /// The whole body, within the cap.
    Buffered(http::response::Parts, Bytes),
    /// More than the cap: the bytes read so far and the rest.
    Oversize(http::response::Parts, Bytes, Pin<Box<B>>),
    /// The body failed while it was read.
    BodyFailed(BoxError),
}

/// The claimed work: the handler and its body under a renewed lease, then
/// the completion. Runs to the end on its own task if its caller is gone.
async fn run_claimed<F, B, E>(
    cfg: Arc<Config>,
    held: Held,
    subject: Subject,
    route: u64,
    call: F,
) -> Finished<B, E>
where
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    E: Send + 'static,
{
    let release_cfg = cfg.clone();
    let release_subject = subject.clone();
    // Released if this work is dropped before it completes (cancellation).
    let guard = ReleaseOnDrop::new(held.clone(), move |r| {
        report_release(&release_cfg, &release_subject, RequestOutcome::Released, r)
    });
    let clock = &cfg.claims.clock;
    let started = clock.now();
    let produce = async {
        let res = call.await?;
        Ok::<_, E>(produce(&cfg, res).await)
    };
    let produced = held
        .renewing(AssertUnwindSafe(produce).catch_unwind())
        .await;
    let held = guard.disarm();
    let produced = match produced {
        Err(panic) => {
            release(&cfg, &held, &subject, RequestOutcome::Released).await;
            return Finished::Panic(panic);
        }
        Ok(Err(e)) => {
            release(&cfg, &held, &subject, RequestOutcome::Released).await;
            return Finished::Error(e);
        }
        Ok(Ok(p)) => p,
    };
    cfg.durations
        .record(route, clock.now().saturating_duration_since(started));
    let res = match produced {
        Produced::NotStored(res) => {
            release(&cfg, &held, &subject, RequestOutcome::Released).await;
            passthrough(res)
        }
        Produced::Buffered(parts, bytes) => {
            let stored = stored_response(&cfg, &parts, bytes.clone(), false);
            complete(&cfg, held, &subject, &stored, RequestOutcome::Stored).await;
            Response::from_parts(parts, ResponseBody::full(bytes))
        }
        Produced::Oversize(parts, prefix, rest) => {
            match cfg.unstorable {
                Unstorable::StoreWithoutBody => {
                    let stored = stored_response(&cfg, &parts, Bytes::new(), true);
                    let outcome = RequestOutcome::StoredWithoutBody;
                    complete(&cfg, held, &subject, &stored, outcome).await;
                }
                Unstorable::MarkNotReplayable => {
                    let marker = not_replayable(&cfg);
                    let outcome = RequestOutcome::MarkedNotReplayable;
                    complete(&cfg, held, &subject, &marker, outcome).await;
                }
                Unstorable::Release => {
                    release(&cfg, &held, &subject, RequestOutcome::Released).await;
                }
            }
            Response::from_parts(parts, ResponseBody::continued(prefix, rest))
        }
        Produced::BodyFailed(e) => {
            tracing::warn!(layer = &*cfg.claims.name, error = %e, "response body failed while buffering for storage");
            // The handler ran: unless re-running is allowed, the key must not
            // run it again, though there is no response to replay.
            if cfg.unstorable == Unstorable::Release {
                release(&cfg, &held, &subject, RequestOutcome::Released).await;
            } else {
                let marker = not_replayable(&cfg);
                let outcome = RequestOutcome::MarkedNotReplayable;
                complete(&cfg, held, &subject, &marker, outcome).await;
            }
            let p = Problem::new(
                ProblemKind::ResponseFailed,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the handler's response body failed while it was being read",
            );
            buffered(cfg.renderer.response(&p))
        }
    };
    Finished::Response(res)
}

/// Read the handler's response as far as storing it needs: the whole body
/// if it fits the cap, else up to the cap.
async fn produce<B>(cfg: &Config, res: Response<B>) -> Produced<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if !cfg.store_policy.stores(res.status()) {
        return Produced::NotStored(res);
    }
    let cap = cfg.max_response_body as u64;
    let (parts, body) = res.into_parts();
    if body.size_hint().lower() > cap {
        return Produced::Oversize(parts, Bytes::new(), Box::pin(body));
    }
    if body.size_hint().exact().is_some() {
        // The common case: a known length within the cap.
        return match body.collect().await {
            Ok(c) => Produced::Buffered(parts, c.to_bytes()),
            Err(e) => Produced::BodyFailed(e.into()),
        };
    }
    let mut body = Box::pin(body);
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Produced::Buffered(parts, buf.freeze()),
            Some(Err(e)) => return Produced::BodyFailed(e.into()),
            Some(Ok(frame)) => {
                // Trailers are not stored (they are not replayed either).
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() as u64 > cap {
                        return Produced::Oversize(parts, buf.freeze(), body);
                    }
                }
            }
        }
    }
}

fn stored_response(
    cfg: &Config,
    parts: &http::response::Parts,
    body: Bytes,
    body_omitted: bool,
) -> StoredResponse {
    StoredResponse {
        status: parts.status.as_u16(),
        headers: cfg
            .replay_headers
            .iter()
            .flat_map(|name| {
                parts.headers.get_all(name).iter().map(move |v| {
                    (
                        name.as_str().to_owned(),
                        Bytes::copy_from_slice(v.as_bytes()),
                    )
                })
            })
            .collect(),
        body,
        body_omitted,
    }
}

async fn release(cfg: &Arc<Config>, held: &Held, subject: &Subject, outcome: RequestOutcome) {
    let r = held.release().await;
    report_release(cfg, subject, outcome, r);
}

fn report_release(
    cfg: &Config,
    subject: &Subject,
    outcome: RequestOutcome,
    r: Result<(), StoreError>,
) {
    match r {
        Ok(()) => emit(cfg, outcome, subject),
        Err(e) if e.is_fence_rejected() => emit(cfg, RequestOutcome::FenceRejected, subject),
        Err(e) => {
            // The lease will run out and free the key.
            tracing::warn!(layer = &*cfg.claims.name, error = %e, "could not release the idempotency claim; it frees itself when its lease runs out");
            emit(cfg, outcome, subject);
        }
    }
}

async fn complete(
    cfg: &Arc<Config>,
    held: Held,
    subject: &Subject,
    stored: &StoredResponse,
    outcome: RequestOutcome,
) {
    let late_cfg = cfg.clone();
    let late_subject = subject.clone();
    let late = Box::new(move |late: LateCompletion| {
        let o = match late {
            LateCompletion::Stored => outcome,
            LateCompletion::FenceRejected => RequestOutcome::FenceRejected,
            LateCompletion::Abandoned => RequestOutcome::CompletionAbandoned,
        };
        emit(&late_cfg, o, &late_subject);
    });
    let o = match held.complete(Bytes::from(stored.encode()), late).await {
        Completion::Stored => outcome,
        Completion::FenceRejected => RequestOutcome::FenceRejected,
        Completion::Retrying => RequestOutcome::CompletionRetrying,
        Completion::Abandoned => RequestOutcome::CompletionAbandoned,
    };
    emit(cfg, o, subject);
}

fn not_replayable(cfg: &Config) -> StoredResponse {
    let p = Problem::new(
        ProblemKind::NotReplayable,
        StatusCode::CONFLICT,
        "the request with this Idempotency-Key was processed, but its response was not stored, so it cannot be replayed",
    );
    let body = cfg.renderer.body(&p);
    StoredResponse {
        status: p.status().as_u16(),
        headers: vec![(
            "content-type".into(),
            Bytes::copy_from_slice(body.content_type().as_bytes()),
        )],
        body: body.body().clone(),
        body_omitted: false,
    }
}

fn replay(cfg: &Config, stored: StoredResponse) -> Response<Bytes> {
    let mut res = Response::new(stored.body);
    *res.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name),
            HeaderValue::from_maybe_shared(value),
        ) {
            headers.append(n, v);
        }
    }
    headers.insert(
        cfg.replayed_header.clone(),
        HeaderValue::from_static("true"),
    );
    if stored.body_omitted {
        headers.insert(
            cfg.body_omitted_header.clone(),
            HeaderValue::from_static("true"),
        );
    }
    res
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
