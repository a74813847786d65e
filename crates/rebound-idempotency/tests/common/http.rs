//! An axum app, a server on 127.0.0.1 and a reqwest client for the HTTP
//! tests: handlers that count their executions per key, and can be slowed,
//! failed, panicked or held at a gate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use rebound_idempotency::{IdempotencyContext, IdempotencyLayer};
use tokio::sync::{mpsc, Notify};

#[derive(Clone, Default)]
pub struct AppState {
    /// Executions per Idempotency-Key (as the handler saw the header).
    pub runs: Arc<Mutex<HashMap<String, u32>>>,
    /// Handlers that returned (ran to their end), per key.
    pub finished: Arc<Mutex<HashMap<String, u32>>>,
    pub total: Arc<AtomicU32>,
    pub delay: Duration,
    pub fail_next: Arc<AtomicBool>,
    pub panic_next: Arc<AtomicBool>,
    /// `/hang` waits for this before answering (`notify_one` lets one
    /// through; [`open_gate`](Self::open_gate) lets every one through).
    pub gate: Arc<Notify>,
    pub gate_open: Arc<AtomicBool>,
    pub started: Option<mpsc::UnboundedSender<String>>,
    pub tag: &'static str,
}

impl AppState {
    pub fn tagged(tag: &'static str) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            AppState {
                tag,
                started: Some(tx),
                ..Default::default()
            },
            rx,
        )
    }

    /// Let every `/hang` through, now and later.
    pub fn open_gate(&self) {
        self.gate_open.store(true, Ordering::SeqCst);
        self.gate.notify_waiters();
    }

    pub fn runs(&self, key: &str) -> u32 {
        self.runs.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn finished(&self, key: &str) -> u32 {
        self.finished.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn started(&self, headers: &HeaderMap) -> (String, u32) {
        let key = key_of(headers);
        let n = {
            let mut runs = self.runs.lock().unwrap();
            let e = runs.entry(key.clone()).or_default();
            *e += 1;
            *e
        };
        self.total.fetch_add(1, Ordering::SeqCst);
        if let Some(tx) = &self.started {
            let _ = tx.send(key.clone());
        }
        (key, n)
    }

    fn finish(&self, key: String) {
        *self.finished.lock().unwrap().entry(key).or_default() += 1;
    }
}

pub fn key_of(headers: &HeaderMap) -> String {
    headers
        .get("idempotency-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

async fn order(
    State(s): State<AppState>,
    ctx: Option<Extension<IdempotencyContext>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (key, n) = s.started(&headers);
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    if s.panic_next.swap(false, Ordering::SeqCst) {
        panic!("handler panicked on purpose");
    }
    s.finish(key);
    if s.fail_next.swap(false, Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
    }
    let previous = ctx.map_or(99, |c| c.previous_attempts());
    (
        StatusCode::CREATED,
        [
            ("content-type", "text/plain"),
            ("set-cookie", "session=secret"),
            ("location", "/orders/1"),
            ("x-request-id", "req-1"),
            ("x-not-allowlisted", "1"),
        ],
        format!("{} run {n} previous {previous} body {body}", s.tag),
    )
        .into_response()
}

/// Waits at the gate, then answers 201.
pub async fn hang_handler(
    State(s): State<AppState>,
    ctx: Option<Extension<IdempotencyContext>>,
    headers: HeaderMap,
) -> Response {
    let (key, n) = s.started(&headers);
    let notified = s.gate.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if !s.gate_open.load(Ordering::SeqCst) {
        notified.await;
    }
    s.finish(key);
    let previous = ctx.map_or(99, |c| c.previous_attempts());
    (
        StatusCode::CREATED,
        [("location", "/orders/late")],
        format!("{} run {n} previous {previous} finished late", s.tag),
    )
        .into_response()
}

/// 10,000 bytes with a known length.
async fn big(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let (key, _) = s.started(&headers);
    s.finish(key);
    (
        StatusCode::CREATED,
        [("location", "/big/1")],
        "x".repeat(10_000),
    )
        .into_response()
}

/// 3 chunks of unknown total length: "abc".
async fn stream(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let (key, _) = s.started(&headers);
    s.finish(key);
    let chunks = futures_util::stream::iter(
        ["a", "b", "c"].map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from(c))),
    );
    Response::new(Body::from_stream(chunks))
}

/// 40 chunks of 500 bytes (20,000), unknown length.
async fn big_stream(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let (key, _) = s.started(&headers);
    s.finish(key);
    let chunks =
        futures_util::stream::iter((0..40).map(|i| {
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a' + (i % 26) as u8; 500]))
        }));
    let mut res = Response::new(Body::from_stream(chunks));
    res.headers_mut()
        .insert("content-type", "application/octet-stream".parse().unwrap());
    res
}

/// Out of stock: 409, which the default policy does not store.
async fn conflict(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let (key, n) = s.started(&headers);
    s.finish(key);
    (StatusCode::CONFLICT, format!("out of stock (run {n})")).into_response()
}

pub fn app(state: AppState, layer: IdempotencyLayer) -> Router {
    Router::new()
        .route("/orders", post(order).get(|| async { "listing" }))
        .route("/hang", post(hang_handler))
        .route("/big", post(big))
        .route("/stream", post(stream))
        .route("/big-stream", post(big_stream))
        .route("/conflict", post(conflict))
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
        .with_state(state)
}

pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A client whose requests fail after 30 s rather than hang a test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(128)
        .build()
        .unwrap()
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// The problem+json body's `type` and `code`, checked for shape.
    pub fn problem(&self) -> (String, String) {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(v["status"], self.status);
        assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
        (
            v["type"].as_str().unwrap().to_owned(),
            v["code"].as_str().unwrap().to_owned(),
        )
    }

    pub fn code(&self) -> String {
        self.problem().1
    }
}

pub async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: &str,
) -> Reply {
    let mut rb = c.request(method, url).body(body.to_owned());
    if let Some(k) = key {
        rb = rb.header("Idempotency-Key", k);
    }
    let r = rb.send().await.unwrap();
    Reply {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

pub async fn post_key(
    c: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    key: &str,
    body: &str,
) -> Reply {
    send(
        c,
        reqwest::Method::POST,
        format!("http://{addr}{path}"),
        Some(key),
        body,
    )
    .await
}
