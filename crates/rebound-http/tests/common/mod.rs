//! A scripted HTTP/1.1 server on 127.0.0.1 with a random port.
//!
//! Each request is read completely, recorded, then answered as the script
//! says: a response, a reset connection (RST), a dropped connection (FIN
//! without a response), a stall, or the inner axum app's answer — possibly
//! thrown away after the app completed (the "response lost" case).

#![allow(dead_code)]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What to do with one request.
pub enum Action {
    Respond(Response<Body>),
    /// Close the connection with a TCP reset, no response.
    Reset,
    /// Close the connection cleanly, no response.
    Drop,
    /// Wait this long, then answer 200.
    Stall(Duration),
    /// Hand the request to the inner app.
    Forward,
    /// Hand the request to the inner app, let it finish, then drop the
    /// connection: the server did the work, the client never hears of it.
    ForwardThenDrop,
}

pub fn status(code: u16) -> Action {
    status_with(code, &[])
}

pub fn status_with(code: u16, headers: &[(&str, &str)]) -> Action {
    let mut b = Response::builder().status(StatusCode::from_u16(code).unwrap());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Action::Respond(b.body(Body::from(format!("status {code}"))).unwrap())
}

type Script = Arc<dyn Fn(usize, &Seen) -> Action + Send + Sync>;

pub struct TestServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// How many requests have arrived, for tests that wait for one.
    arrivals: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// A server answering by `script(index, request)`; index counts from 0.
    pub async fn start(script: impl Fn(usize, &Seen) -> Action + Send + Sync + 'static) -> Self {
        Self::with_app(Router::new(), script).await
    }

    pub async fn with_app(
        app: Router,
        script: impl Fn(usize, &Seen) -> Action + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let (arrived, arrivals) = tokio::sync::watch::channel(0usize);
        let arrived = Arc::new(arrived);
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let rst = Arc::new(AtomicBool::new(false));
                    let io = TokioIo::new(Conn {
                        stream,
                        rst: rst.clone(),
                    });
                    let (seen, script, app) = (seen.clone(), script.clone(), app.clone());
                    let arrived = arrived.clone();
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (seen, script, app, rst) =
                                (seen.clone(), script.clone(), app.clone(), rst.clone());
                            let arrived = arrived.clone();
                            async move { handle(req, seen, arrived, script, app, rst).await }
                        });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    });
                }
            }
        });
        TestServer {
            addr,
            seen,
            arrivals,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) {
        let mut arrivals = self.arrivals.clone();
        arrivals.wait_for(|c| *c >= n).await.unwrap();
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<tokio::sync::watch::Sender<usize>>,
    script: Script,
    app: Router,
    rst: Arc<AtomicBool>,
) -> Result<Response<Body>, io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let s = Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    let index = {
        let mut v = seen.lock().unwrap();
        v.push(s.clone());
        arrived.send_replace(v.len());
        v.len() - 1
    };
    let forward = |app: Router| async move {
        let req = Request::from_parts(parts, Body::from(body));
        let res: Result<Response<Body>, Infallible> = app.oneshot(req).await;
        let res = res.unwrap();
        // Buffer the body so the app has fully finished.
        let (p, b) = res.into_parts();
        let b = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        Response::from_parts(p, Body::from(b))
    };
    match script(index, &s) {
        Action::Respond(r) => Ok(r),
        Action::Reset => {
            rst.store(true, Ordering::SeqCst);
            Err(io::Error::other("scripted reset"))
        }
        Action::Drop => Err(io::Error::other("scripted drop")),
        Action::Stall(d) => {
            tokio::time::sleep(d).await;
            Ok(Response::new(Body::from("late")))
        }
        Action::Forward => Ok(forward(app).await),
        Action::ForwardThenDrop => {
            let _ = forward(app).await;
            Err(io::Error::other("scripted: response lost"))
        }
    }
}

/// A TCP stream that, once told to, closes with RST instead of FIN.
struct Conn {
    stream: TcpStream,
    rst: Arc<AtomicBool>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.rst.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.rst.load(Ordering::SeqCst) {
            // No FIN: the drop that follows sends RST.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A client with `middleware` in front of a plain reqwest client.
pub fn client(
    middleware: rebound_http::RetryMiddleware,
) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

/// Delays recorded by the on-retry hook.
/// (failed attempt, delay before the next, server-requested delay)
pub type Recorded = (u32, Duration, Option<Duration>);

#[derive(Clone, Default)]
pub struct Delays(pub Arc<Mutex<Vec<Recorded>>>);

impl Delays {
    pub fn hook(&self) -> impl Fn(&rebound_http::RetryNotice<'_>) + Send + Sync + 'static {
        let d = self.0.clone();
        move |n| d.lock().unwrap().push((n.attempt, n.delay, n.server_delay))
    }

    pub fn get(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }
}

/// A process-wide debugging metrics recorder (tests in one binary share it;
/// filter by the `dependency` label, which is each test server's own port).
pub fn metrics() -> &'static metrics_util::debugging::Snapshotter {
    static S: std::sync::OnceLock<metrics_util::debugging::Snapshotter> =
        std::sync::OnceLock::new();
    S.get_or_init(|| {
        let r = metrics_util::debugging::DebuggingRecorder::new();
        let s = r.snapshotter();
        r.install().expect("no other recorder in this test binary");
        s
    })
}

/// The value of counter `name` with `dependency` = `host` (and `reason`, if
/// given), summed. Snapshots drain the recorder's counters, so every
/// snapshot is added to a process-wide tally that all tests read from.
pub fn counter(name: &str, host: &str, reason: Option<&str>) -> u64 {
    use metrics_util::debugging::DebugValue;
    type Tally = Mutex<Vec<(String, Vec<(String, String)>, u64)>>;
    static TALLY: std::sync::OnceLock<Tally> = std::sync::OnceLock::new();
    let tally = TALLY.get_or_init(Default::default);
    let mut tally = tally.lock().unwrap();
    for (k, _, _, v) in metrics().snapshot().into_vec() {
        let DebugValue::Counter(c) = v else { continue };
        let key = k.key();
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        match tally
            .iter_mut()
            .find(|(n, l, _)| n == key.name() && *l == labels)
        {
            Some(entry) => entry.2 += c,
            None => tally.push((key.name().to_owned(), labels, c)),
        }
    }
    tally
        .iter()
        .filter(|(n, labels, _)| {
            let has = |k: &str, v: &str| labels.iter().any(|(lk, lv)| lk == k && lv == v);
            n == name && has("dependency", host) && reason.is_none_or(|r| has("reason", r))
        })
        .map(|(_, _, c)| *c)
        .sum()
}

/// Waits until a timer is armed on the manual clock `time` (the attempt in
/// flight has been polled once), so advancing it reaches that timer.
pub async fn until_timer(time: &rebound::ManualClock) {
    while time.pending_timers() == 0 {
        tokio::task::yield_now().await;
    }
}
