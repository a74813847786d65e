//! The claimed request: the handler and its body under a renewed lease,
//! then its response stored (or the claim released), run to the end even
//! if the client hangs up; and the replay of a stored response.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;

use crate::body::ResponseBody;
use crate::claim::{Completion, Held, LateCompletion, ReleaseOnDrop};
use crate::config::Config;
use crate::event::{emit, RequestOutcome, Subject};
use crate::layer::{buffered, passthrough};
use crate::policy::Unstorable;
use crate::problem::{Problem, ProblemKind};
use crate::response::StoredResponse;
use crate::store::{BoxError, StoreError};

/// How the claimed work ended.
pub(crate) enum Finished<B, E> {
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
pub(crate) async fn run_claimed<F, B, E>(
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

pub(crate) fn replay(cfg: &Config, stored: StoredResponse) -> Response<Bytes> {
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
