//! The control API: a small HTTP/1.1 server on its own address that reads
//! and changes a running proxy's faults and serves its counters.
//!
//! | request | does |
//! |---|---|
//! | `GET /` | this list, as text |
//! | `GET /faults` | the faults in force as JSON: `source` (`timeline`, `startup` or `control`), `phase`, `phase_index`, `elapsed`, `next_change`, `faults` |
//! | `PUT /faults` | puts the body's faults in force in place of the timeline or startup faults |
//! | `POST /faults` | adds the body's faults to those in force (likewise in place of the timeline) |
//! | `DELETE /faults` | drops faults set here: back to the timeline (where it is now) or the startup faults |
//! | `POST /reset` | healthy: no faults, until `DELETE /faults` or `POST /timeline/restart` |
//! | `GET /timeline` | the timeline as JSON (404 without one) |
//! | `POST /timeline/restart` | starts the timeline over from its first phase, now (409 without one) |
//! | `GET /metrics` | the counters in Prometheus text format |
//!
//! A fault body is JSON — a list of fault objects, or `{"faults": [...]}`
//! as `GET /faults` answers — or text with one `--fault` spec per line:
//!
//! ```text
//! curl -X PUT --data 'error status=503 rate=0.5' http://127.0.0.1:8082/faults
//! curl -X PUT --data '[{"kind": "latency", "delay": "2s"}]' http://127.0.0.1:8082/faults
//! curl -X POST http://127.0.0.1:8082/reset
//! curl http://127.0.0.1:8082/metrics
//! ```
//!
//! A bad body is answered `400 Bad Request` with the reason (which field,
//! which line); a body over 64 KiB `413`; an unknown path `404`; a known
//! path with the wrong method `405` with `Allow`. Successful changes answer
//! `200` with the new `GET /faults` document.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Control, FaultSet, SpecError};

/// The largest body accepted.
const MAX_BODY: usize = 64 * 1024;

const INDEX: &str = "\
rebound chaos control API

GET    /faults            the faults in force (JSON)
PUT    /faults            replace them (body: JSON faults, or one --fault spec per line)
POST   /faults            add to them (same body)
DELETE /faults            back to the timeline or the startup faults
POST   /reset             healthy: no faults
GET    /timeline          the timeline (JSON)
POST   /timeline/restart  start the timeline over, now
GET    /metrics           counters, Prometheus text format
";

/// Serves the control API on `listener` until `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    control: Control,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let control = control.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let control = control.clone();
                async move { Ok::<_, Infallible>(route(&control, req).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn route(control: &Control, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let get = method == Method::GET || method == Method::HEAD;
    match (path.as_str(), &method) {
        ("", _) if get => text(StatusCode::OK, INDEX.to_string()),
        ("/faults", _) if get => json(StatusCode::OK, &control.current().to_json()),
        ("/faults", &Method::PUT) | ("/faults", &Method::POST) => {
            let faults = match read_faults(req).await {
                Ok(f) => f,
                Err(response) => return response,
            };
            if method == Method::PUT {
                control.set_faults(faults);
            } else {
                control.add_faults(faults);
            }
            json(StatusCode::OK, &control.current().to_json())
        }
        ("/faults", &Method::DELETE) => {
            control.restore();
            json(StatusCode::OK, &control.current().to_json())
        }
        ("/reset", &Method::POST) => {
            control.reset();
            json(StatusCode::OK, &control.current().to_json())
        }
        ("/timeline", _) if get => match control.timeline() {
            Some(t) => json(StatusCode::OK, &t.to_json()),
            None => text(
                StatusCode::NOT_FOUND,
                "rebound chaos: this proxy follows no timeline (start it with --timeline FILE)\n"
                    .into(),
            ),
        },
        ("/timeline/restart", &Method::POST) => {
            if control.restart_timeline() {
                json(StatusCode::OK, &control.current().to_json())
            } else {
                text(
                    StatusCode::CONFLICT,
                    "rebound chaos: this proxy follows no timeline to restart (start it with --timeline FILE)\n".into(),
                )
            }
        }
        ("/metrics", _) if get => {
            let mut r = text(StatusCode::OK, control.prometheus());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (p, _) => {
            let allow = match p {
                "" | "/timeline" | "/metrics" => Some("GET, HEAD"),
                "/faults" => Some("GET, HEAD, PUT, POST, DELETE"),
                "/reset" | "/timeline/restart" => Some("POST"),
                _ => None,
            };
            match allow {
                Some(allow) => {
                    let mut r = text(
                        StatusCode::METHOD_NOT_ALLOWED,
                        format!("rebound chaos: {method} is not allowed on {p}; use {allow}\n"),
                    );
                    r.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static(allow));
                    r
                }
                None => text(
                    StatusCode::NOT_FOUND,
                    format!("rebound chaos: no endpoint {p}\n\n{INDEX}"),
                ),
            }
        }
    }
}

/// Reads a fault body: JSON if it starts with `[` or `{`, else spec lines.
async fn read_faults(req: Request<Incoming>) -> Result<FaultSet, Response<Full<Bytes>>> {
    let origin = format!("{} {}", req.method(), req.uri().path());
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(if e.is::<http_body_util::LengthLimitError>() {
                text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("rebound chaos: {origin}: the body is over {MAX_BODY} bytes\n"),
                )
            } else {
                text(
                    StatusCode::BAD_REQUEST,
                    format!("rebound chaos: {origin}: cannot read the body: {e}\n"),
                )
            })
        }
    };
    let bad = |e: SpecError| {
        text(
            StatusCode::BAD_REQUEST,
            format!("rebound chaos: {}\n", e.or_origin(&origin)),
        )
    };
    let body = std::str::from_utf8(&bytes)
        .map_err(|_| bad(SpecError::new("", "the body is not UTF-8 text")))?;
    let trimmed = body.trim_start();
    if trimmed.is_empty() {
        return Err(bad(SpecError::new(
            "",
            "empty body: send faults as JSON ([{\"kind\": \"error\", \"status\": 503}]) or one spec per line (error status=503)",
        )));
    }
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        FaultSet::from_json_str(body).map_err(bad)
    } else {
        FaultSet::from_specs(body).map_err(bad)
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_string_pretty(value).unwrap_or_default();
    body.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
