//! The tower [`Layer`] and [`Service`]: parse the key, buffer and fingerprint
//! the request, claim, then replay, refuse, or run the handler under a
//! renewed, fenced lease and store its response.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{Config, FailMode, IdempotencyLayerBuilder, Unstorable};
use crate::event::{Event, IdempotencyContext, Outcome};
use crate::key::{IdempotencyKey, KeyError, IDEMPOTENCY_KEY};
use crate::problem::{self, types};
use crate::record::{ClaimOutcome, ClaimRequest, Fingerprint, StoredResponse};
use crate::store::{BoxError, Store, StoreError};

/// The response header added to replayed responses.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The body of responses from [`IdempotencyService`]: either a buffered body
/// (replays, stored responses, problems) or the handler's own body, passed
/// through untouched.
pub type ResponseBody<B> = Either<Full<Bytes>, B>;

/// Adds Idempotency-Key handling to a service. Build with
/// [`IdempotencyLayer::builder`].
///
/// ```
/// use axum::{routing::post, Router};
/// use rebound_idempotency::{IdempotencyLayer, MemoryStore};
/// let app: Router = Router::new()
///     .route("/orders", post(|| async { "created" }))
///     .layer(IdempotencyLayer::builder(MemoryStore::new()).build().unwrap());
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
    /// sweeper).
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
struct Subject {
    method: Method,
    uri: Uri,
    key: Option<IdempotencyKey>,
}

fn emit(cfg: &Config, outcome: Outcome, subject: &Subject) {
    let key = subject.key.as_ref().map(IdempotencyKey::as_str);
    let path = subject.uri.path();
    match outcome {
        Outcome::StoreUnavailable | Outcome::FailedOpen | Outcome::FenceRejected => {
            tracing::warn!(layer = &*cfg.name, outcome = outcome.as_str(), key, method = %subject.method, path, "idempotency")
        }
        Outcome::Bypassed => {
            tracing::trace!(layer = &*cfg.name, outcome = outcome.as_str(), method = %subject.method, path, "idempotency")
        }
        _ => {
            tracing::debug!(layer = &*cfg.name, outcome = outcome.as_str(), key, method = %subject.method, path, "idempotency")
        }
    }
    if outcome != Outcome::Bypassed {
        metrics::counter!("idempotency_requests_total", "dependency" => cfg.name.clone(), "outcome" => outcome.as_str()).increment(1);
    }
    if matches!(
        outcome,
        Outcome::Replayed | Outcome::InProgress | Outcome::Mismatch
    ) {
        metrics::counter!("idempotency_key_reused_total", "dependency" => cfg.name.clone(), "outcome" => outcome.as_str()).increment(1);
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

fn left<B>(res: Response<Full<Bytes>>) -> Response<ResponseBody<B>> {
    res.map(Either::Left)
}

fn right<B>(res: Response<B>) -> Response<ResponseBody<B>> {
    res.map(Either::Right)
}

async fn handle<S, ReqBody, ResBody>(
    cfg: Arc<Config>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
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
        emit(&cfg, Outcome::Bypassed, &subject);
        return inner.call(req).await.map(right);
    }
    let (parts, body) = req.into_parts();

    // 1. The key.
    let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
    let key = match (values.next(), values.next()) {
        (None, _) => {
            if (cfg.require_key)(&parts) {
                emit(&cfg, Outcome::KeyMissing, &subject);
                return Ok(left(problem::response(
                    types::KEY_MISSING,
                    "Idempotency-Key required",
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{} {} requires an Idempotency-Key header",
                        subject.method,
                        subject.uri.path()
                    ),
                    None,
                )));
            }
            emit(&cfg, Outcome::Bypassed, &subject);
            return inner
                .call(Request::from_parts(parts, body))
                .await
                .map(right);
        }
        (Some(_), Some(_)) => Err(KeyError::Multiple),
        (Some(v), None) => cfg.parser.parse(v.as_bytes()),
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            emit(&cfg, Outcome::KeyMalformed, &subject);
            return Ok(left(problem::response(
                types::KEY_MALFORMED,
                "Malformed Idempotency-Key",
                StatusCode::BAD_REQUEST,
                &e.to_string(),
                None,
            )));
        }
    };
    subject.key = Some(key.clone());

    // 2. The body, buffered up to the cap, for the fingerprint.
    let too_large = |cfg: &Config, subject: &Subject| {
        emit(cfg, Outcome::BodyRejected, subject);
        left(problem::response(
            types::BODY_TOO_LARGE,
            "Request body too large",
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "requests with an Idempotency-Key are buffered up to {} bytes",
                cfg.max_request_body
            ),
            None,
        ))
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
            emit(&cfg, Outcome::BodyRejected, &subject);
            return Ok(left(problem::response(
                types::BODY_UNREADABLE,
                "Request body unreadable",
                StatusCode::BAD_REQUEST,
                &format!("the request body could not be read: {e}"),
                None,
            )));
        }
    };

    let fingerprint = fingerprint(&cfg, &parts, &bytes);
    let scoped = scoped_key(&cfg, &parts, &key);

    // 3. Claim (waiting for an in-progress original if configured).
    let started = cfg.clock.now();
    let mut waiting = false;
    let fence = loop {
        let claim = ClaimRequest {
            key: &scoped,
            fingerprint,
            now: cfg.clock.now(),
            lease: cfg.lease,
            ttl: cfg.ttl,
        };
        match cfg.store.claim(claim).await {
            Ok(ClaimOutcome::Claimed { fence }) => break Some(fence),
            Ok(ClaimOutcome::Completed(stored)) => {
                emit(&cfg, Outcome::Replayed, &subject);
                return Ok(left(replay(stored)));
            }
            Ok(ClaimOutcome::Mismatch) => {
                emit(&cfg, Outcome::Mismatch, &subject);
                return Ok(left(problem::response(
                    types::MISMATCH,
                    "Idempotency-Key reused",
                    cfg.mismatch_status,
                    "this Idempotency-Key was already used with a different request (method, path, query, body or fingerprinted headers differ)",
                    None,
                )));
            }
            Ok(ClaimOutcome::InProgress { retry_after }) => {
                if let Some(wait) = cfg.wait {
                    let waited = cfg.clock.now().saturating_duration_since(started);
                    if waited < wait.max_wait {
                        let pause = wait
                            .poll_every
                            .min(retry_after.max(Duration::from_millis(1)))
                            .min(wait.max_wait - waited);
                        // The pause is set (on the clock) before `Waiting`
                        // is reported, so whoever sees the event and moves
                        // the clock on moves this pause on too.
                        let pause = cfg.clock.sleep(pause);
                        if !waiting {
                            waiting = true;
                            emit(&cfg, Outcome::Waiting, &subject);
                        }
                        pause.await;
                        continue;
                    }
                }
                emit(&cfg, Outcome::InProgress, &subject);
                let secs = retry_after.as_millis().div_ceil(1000).max(1) as u64;
                return Ok(left(problem::response(
                    types::IN_PROGRESS,
                    "Request in progress",
                    StatusCode::CONFLICT,
                    "a request with this Idempotency-Key is still being processed; retry after the Retry-After delay",
                    Some(secs),
                )));
            }
            Err(e) => match cfg.fail_mode {
                FailMode::Closed => {
                    tracing::error!(layer = &*cfg.name, error = %e, "idempotency store failed; refusing the request");
                    emit(&cfg, Outcome::StoreUnavailable, &subject);
                    return Ok(left(problem::response(
                        types::STORE_UNAVAILABLE,
                        "Idempotency store unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the request was not processed because its Idempotency-Key could not be checked; retry later",
                        Some(1),
                    )));
                }
                FailMode::Open => {
                    tracing::error!(layer = &*cfg.name, error = %e, "idempotency store failed; running the request unprotected (fail open)");
                    emit(&cfg, Outcome::FailedOpen, &subject);
                    break None;
                }
            },
        }
    };

    let mut req = Request::from_parts(parts, ReqBody::from(bytes));
    let Some(fence) = fence else {
        return inner.call(req).await.map(right);
    };

    // 4. Run the handler under the claim.
    req.extensions_mut().insert(IdempotencyContext {
        key: key.clone(),
        fence,
    });
    let guard = ClaimGuard {
        cfg: cfg.clone(),
        key: scoped,
        fence,
        armed: true,
        subject,
    };
    let fut = AssertUnwindSafe(inner.call(req)).catch_unwind();
    let result = with_renewal(&cfg, &guard.key, fence, fut).await;
    let res = match result {
        Err(panic) => {
            guard.release(Outcome::Released).await;
            std::panic::resume_unwind(panic);
        }
        Ok(Err(e)) => {
            guard.release(Outcome::Released).await;
            return Err(e);
        }
        Ok(Ok(res)) => res,
    };
    Ok(finish(guard, res).await)
}

/// Store (or not) the handler's response, and return it.
async fn finish<B>(guard: ClaimGuard, res: Response<B>) -> Response<ResponseBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let cfg = guard.cfg.clone();
    if !cfg.store_policy.stores(res.status()) {
        guard.release(Outcome::Released).await;
        return right(res);
    }
    let fits = res
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= cfg.max_response_body as u64);
    if !fits {
        match cfg.unstorable {
            Unstorable::Release => guard.release(Outcome::PassedThroughUnstored).await,
            Unstorable::MarkNotReplayable => {
                let marker = not_replayable();
                guard
                    .complete(&marker, Outcome::PassedThroughUnstored)
                    .await;
            }
        }
        return right(res);
    }
    let (parts, body) = res.into_parts();
    let bytes = match Limited::new(body, cfg.max_response_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            tracing::warn!(layer = &*cfg.name, error = %e, "response body failed while buffering for storage");
            guard.release(Outcome::Released).await;
            return left(problem::response(
                types::RESPONSE_FAILED,
                "Response failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                "the handler's response body failed while it was being buffered",
                None,
            ));
        }
    };
    let stored = StoredResponse {
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
        body: bytes.clone(),
    };
    guard.complete(&stored, Outcome::Stored).await;
    left(Response::from_parts(parts, Full::new(bytes)))
}

fn not_replayable() -> StoredResponse {
    let status = StatusCode::CONFLICT;
    StoredResponse {
        status: status.as_u16(),
        headers: vec![(
            "content-type".into(),
            Bytes::from_static(problem::PROBLEM_JSON.as_bytes()),
        )],
        body: problem::body(
            types::NOT_REPLAYABLE,
            "Response not replayable",
            status,
            "the request with this Idempotency-Key was processed, but its response was too large or streamed and was not stored",
        ),
    }
}

fn replay(stored: StoredResponse) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(stored.body));
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
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    res
}

/// Drive `fut`, renewing the lease every `renew_every` until it finishes.
async fn with_renewal<F: Future>(cfg: &Config, key: &str, fence: u64, fut: F) -> F::Output {
    let Some(every) = cfg.renew_every else {
        return fut.await;
    };
    let mut fut = std::pin::pin!(fut);
    let mut renewing = true;
    loop {
        if !renewing {
            return fut.await;
        }
        let tick = cfg.clock.sleep(every);
        tokio::select! {
            biased;
            out = &mut fut => return out,
            _ = tick => {
                match cfg.store.renew(key, fence, cfg.clock.now(), cfg.lease).await {
                    Ok(()) => tracing::trace!(layer = &*cfg.name, fence, "lease renewed"),
                    Err(e) if e.is_fence_rejected() => {
                        tracing::warn!(layer = &*cfg.name, fence, "lease lost to another request while the handler runs");
                        renewing = false;
                    }
                    Err(e) => tracing::warn!(layer = &*cfg.name, error = %e, "lease renewal failed; will retry"),
                }
            }
        }
    }
}

/// Releases the claim if the request ends without storing a response,
/// including when the response future is dropped (client gone).
struct ClaimGuard {
    cfg: Arc<Config>,
    key: String,
    fence: u64,
    armed: bool,
    subject: Subject,
}

impl ClaimGuard {
    async fn release(mut self, outcome: Outcome) {
        self.armed = false;
        match self.cfg.store.release(&self.key, self.fence).await {
            Ok(()) => emit(&self.cfg, outcome, &self.subject),
            Err(e) if e.is_fence_rejected() => {
                emit(&self.cfg, Outcome::FenceRejected, &self.subject)
            }
            Err(e) => {
                // The lease will run out and free the key.
                tracing::warn!(layer = &*self.cfg.name, error = %e, "could not release idempotency claim");
                emit(&self.cfg, outcome, &self.subject);
            }
        }
    }

    async fn complete(mut self, response: &StoredResponse, outcome: Outcome) {
        self.armed = false;
        let now = self.cfg.clock.now();
        match self
            .cfg
            .store
            .complete(&self.key, self.fence, response, now, self.cfg.ttl)
            .await
        {
            Ok(()) => emit(&self.cfg, outcome, &self.subject),
            Err(StoreError::FenceRejected { .. }) => {
                emit(&self.cfg, Outcome::FenceRejected, &self.subject)
            }
            Err(e) => {
                tracing::error!(layer = &*self.cfg.name, error = %e, "could not store the response; a retry after the lease runs out will run the handler again");
                emit(&self.cfg, Outcome::StoreUnavailable, &self.subject);
            }
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // The response future was dropped mid-handler (client disconnected,
        // timeout layer): free the key so a retry can run.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cfg = self.cfg.clone();
        let key = std::mem::take(&mut self.key);
        let fence = self.fence;
        let subject = Subject {
            method: self.subject.method.clone(),
            uri: self.subject.uri.clone(),
            key: self.subject.key.take(),
        };
        rt.spawn(async move {
            match cfg.store.release(&key, fence).await {
                Ok(()) => emit(&cfg, Outcome::Released, &subject),
                Err(e) if e.is_fence_rejected() => emit(&cfg, Outcome::FenceRejected, &subject),
                Err(e) => tracing::warn!(layer = &*cfg.name, error = %e, "could not release idempotency claim after cancellation"),
            }
        });
    }
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
fn scoped_key(cfg: &Config, parts: &Parts, key: &IdempotencyKey) -> String {
    let identity = cfg.identity.as_ref().and_then(|f| f(parts));
    let route = cfg.route.as_ref().map(|f| f(parts));
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    match &identity {
        Some(id) => {
            part(b"i");
            part(id.as_bytes());
        }
        None => part(b"-"),
    }
    part(parts.method.as_str().as_bytes());
    part(route.as_deref().unwrap_or(parts.uri.path()).as_bytes());
    part(key.as_str().as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}
