//! One request through the proxy: ask the injector for a plan, then carry
//! it out — wait, answer, reset, forward, trickle, or never answer.

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::body::{ProxyBody, Trickle};
use super::conn::Kill;
use super::headers::{self, Upstream};
use crate::duration::format as dur;
use crate::plan::{Action, Plan};
use crate::{Control, FaultKind};

/// The header naming what the proxy did to a response it made or changed.
pub(crate) const CHAOS_HEADER: &str = "x-rebound-chaos";

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) upstream: Upstream,
    pub(crate) client: Client<HttpConnector, Incoming>,
    pub(crate) control: Control,
    pub(crate) random: rebound::RandomSource,
}

/// The proxy's hyper service for one client connection.
#[derive(Clone)]
pub(crate) struct ProxyService {
    pub(crate) shared: Arc<Shared>,
    pub(crate) kill: Arc<Kill>,
}

/// The connection was reset on purpose; hyper drops it.
#[derive(Debug)]
pub(crate) struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by a chaos fault")
    }
}

impl std::error::Error for Reset {}

type Answer = Result<Response<ProxyBody>, Reset>;

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Reset;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        Box::pin(handle(self.shared.clone(), self.kill.clone(), request))
    }
}

async fn handle(shared: Arc<Shared>, kill: Arc<Kill>, request: Request<Incoming>) -> Answer {
    if request.method() == Method::CONNECT {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "rebound chaos: CONNECT is not supported; this is a reverse proxy, send requests to it as to the upstream\n".into(),
        ));
    }
    let control = &shared.control;
    let plan = {
        let injector = control.injector();
        let mut rng = shared.random.rng();
        injector.plan(request.method(), request.uri().path(), &mut rng)
    };
    control.counters().planned(&plan);
    if !plan.is_clean() {
        tracing::debug!(
            target: "rebound_chaos",
            method = %request.method(),
            path = request.uri().path(),
            faults = %describe(&plan),
            "injecting"
        );
    }
    let clock = control.clock();
    wait(clock, plan.request_delay()).await;
    match *plan.action() {
        Action::Respond {
            kind,
            status,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let retry_after = retry_after.map(|ra| ra.header_value(control.wall_now()));
            let mut body = format!("rebound chaos: injected {status} (fault `{kind}`)");
            if let Some(value) = &retry_after {
                body.push_str("; Retry-After: ");
                body.push_str(value);
            }
            body.push('\n');
            let mut response = text(status, body);
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            mark(&mut response, &plan);
            wait(clock, plan.response_delay()).await;
            Ok(response)
        }
        Action::Reset => {
            kill.kill();
            Err(Reset)
        }
        Action::Blackhole => {
            // Never answer: the connection ends when the client gives up or
            // the proxy shuts down.
            std::future::pending::<()>().await;
            Err(Reset)
        }
        Action::Forward | Action::DropResponse => forward(&shared, &kill, &plan, request).await,
    }
}

async fn forward(shared: &Shared, kill: &Kill, plan: &Plan, request: Request<Incoming>) -> Answer {
    let (mut parts, body) = request.into_parts();
    parts.uri = match shared.upstream.uri(parts.uri.path_and_query()) {
        Ok(uri) => uri,
        Err(e) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!(
                    "rebound chaos: cannot forward the request target `{}`: {e}\n",
                    parts.uri
                ),
            ))
        }
    };
    parts.version = Version::HTTP_11;
    headers::forwardable(&mut parts.headers);
    parts.headers.insert(header::HOST, shared.upstream.host());
    let control = &shared.control;
    control.counters().upstream_request();
    let response = match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            control.counters().upstream_error();
            let mut why = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                why.push_str(": ");
                why.push_str(&s.to_string());
                source = s.source();
            }
            tracing::warn!(target: "rebound_chaos", upstream = %shared.upstream, error = %why, "upstream failed");
            let mut response = text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "rebound chaos: the upstream {} failed: {why}\n",
                    shared.upstream
                ),
            );
            response
                .headers_mut()
                .insert(CHAOS_HEADER, HeaderValue::from_static("upstream_error"));
            return Ok(response);
        }
    };
    let (mut parts, body) = response.into_parts();
    if *plan.action() == Action::DropResponse {
        // Let the upstream finish its answer, so it has certainly run the
        // request, then cut the client off.
        let mut body = body;
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
        kill.kill();
        return Err(Reset);
    }
    wait(control.clock(), plan.response_delay()).await;
    headers::forwardable(&mut parts.headers);
    let body = match plan.slow_body() {
        Some((chunk, interval)) => ProxyBody::Trickle {
            body: Trickle::new(body, chunk, interval, control.clock().clone()),
        },
        None => ProxyBody::Upstream { body },
    };
    let mut response = Response::from_parts(parts, body);
    mark(&mut response, plan);
    Ok(response)
}

/// Waits `delay` on the proxy's clock, racing the rest of the proxy's work:
/// on a manual clock the wait ends when the test moves the clock past it
/// (it never moves the clock itself); a delay too long to represent never
/// ends.
async fn wait(clock: &rebound::Clock, delay: std::time::Duration) {
    if !delay.is_zero() {
        clock.timer_after(delay).await;
    }
}

/// A plain-text answer made by the proxy.
pub(crate) fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Adds `x-rebound-chaos` naming the faults, if any hit.
fn mark(response: &mut Response<ProxyBody>, plan: &Plan) {
    if plan.is_clean() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&describe(plan)) {
        response.headers_mut().insert(CHAOS_HEADER, v);
    }
}

/// `latency=250ms, error` — the faults that hit, latency with its delay.
fn describe(plan: &Plan) -> String {
    plan.injected()
        .map(|k| match k {
            FaultKind::Latency => {
                format!(
                    "latency={}",
                    dur(plan.request_delay() + plan.response_delay())
                )
            }
            k => k.as_str().to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
