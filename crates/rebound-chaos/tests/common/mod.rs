//! A real upstream service on loopback for the proxy's tests: it records
//! every request it handles (method, URI, headers, body) and counts them,
//! so a test can tell whether the upstream saw a request.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::StreamExt;
use rebound_chaos::{ChaosProxy, FaultSet};
use tokio::sync::{mpsc, Notify};

/// One request the upstream handled.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    hits: AtomicU64,
    /// `/stream` sends its second half when notified.
    release: Notify,
    /// `/upload` reports each piece of the body as it arrives.
    pieces: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
}

/// The upstream: `/echo/...` and anything else echo the request as text;
/// `/status/{code}` answers that status; `/bytes/{n}` answers n bytes;
/// `/stream` sends `first|` then waits for [`Upstream::release`] before
/// `second`; `/upload` reports body pieces as they arrive.
pub struct Upstream {
    pub addr: SocketAddr,
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/status/{code}", any(status))
            .route("/bytes/{n}", get(bytes))
            .route("/stream", get(stream))
            .route("/upload", post(upload))
            .fallback(echo)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Upstream {
            addr,
            url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// Requests the upstream handled.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// What it saw, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Lets `/stream` send its second half.
    pub fn release(&self) {
        self.shared.release.notify_one();
    }

    /// A receiver of `/upload`'s body pieces as they arrive.
    pub fn pieces(&self) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.shared.pieces.lock().unwrap() = Some(tx);
        rx
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(shared: &Shared, req: Request) -> Seen {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    shared.seen.lock().unwrap().push(seen.clone());
    shared.hits.fetch_add(1, Ordering::SeqCst);
    seen
}

async fn echo(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let seen = record(&shared, req).await;
    let text = format!(
        "{} {} {}",
        seen.method,
        seen.uri,
        String::from_utf8_lossy(&seen.body)
    );
    (
        StatusCode::OK,
        [
            ("x-upstream", "yes"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
        ],
        text,
    )
        .into_response()
}

async fn status(
    State(shared): State<Arc<Shared>>,
    Path(code): Path<u16>,
    req: Request,
) -> Response {
    record(&shared, req).await;
    (
        StatusCode::from_u16(code).unwrap(),
        format!("status {code}"),
    )
        .into_response()
}

async fn bytes(State(shared): State<Arc<Shared>>, Path(n): Path<usize>, req: Request) -> Response {
    record(&shared, req).await;
    let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
    body.into_response()
}

async fn stream(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    record(&shared, req).await;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let _ = tx.send(Ok(Bytes::from_static(b"first|"))).await;
        shared.release.notified().await;
        let _ = tx.send(Ok(Bytes::from_static(b"second"))).await;
    });
    Body::from_stream(tokio_stream(rx)).into_response()
}

async fn upload(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let tx = shared.pieces.lock().unwrap().clone();
    let mut body = req.into_body().into_data_stream();
    let mut total = 0;
    while let Some(Ok(piece)) = body.next().await {
        total += piece.len();
        if let Some(tx) = &tx {
            let _ = tx.send(piece);
        }
    }
    format!("{total} bytes").into_response()
}

fn tokio_stream<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A proxy in front of `upstream` with `faults` and a fixed seed.
pub async fn proxy(upstream: &Upstream, faults: &str) -> ChaosProxy {
    ChaosProxy::builder(&upstream.url)
        .faults(FaultSet::from_specs(faults).unwrap())
        .seed(2015)
        .start()
        .await
        .unwrap()
}

/// A client that never goes through a system proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Waits (in real time, up to 10 s) until `cond` holds; for waiting on
/// another task's progress, never for policy timing.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs `fut` with a 10 s real-time limit, so a hang fails the test clearly.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Whether a spawned task is still running after giving it `ms` of real
/// time: used to show a request is *held* (the fault's wait has not ended).
pub async fn still_pending<T>(task: &tokio::task::JoinHandle<T>, ms: u64) -> bool {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    !task.is_finished()
}

/// Whether an outside client (curl, Python with requests) is installed:
/// `probe` must run and succeed. Without it the test is skipped with a
/// message, unless `REBOUND_REQUIRE_SERVICES=1` (as in CI), where a
/// missing client fails the test.
pub fn have(client: &str, probe: &[&str]) -> bool {
    let ok = std::process::Command::new(probe[0])
        .args(&probe[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("REBOUND_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{client} is required under REBOUND_REQUIRE_SERVICES=1 (`{}` failed)",
            probe.join(" ")
        );
        eprintln!(
            "skipped: {client} is not installed (`{}` failed)",
            probe.join(" ")
        );
    }
    ok
}
