//! The layer over real HTTP on 127.0.0.1: the wire behaviour table,
//! exactly-once under concurrency and crash recovery (for every store),
//! release on failure, panic and disconnect.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use rebound_idempotency::{
    problem::types, Event, IdempotencyContext, IdempotencyLayer, IdempotencyLayerBuilder,
    ManualClock, MemoryStore, Outcome, Store, Unstorable,
};
use tokio::sync::{mpsc, Notify};

#[derive(Clone, Default)]
struct AppState {
    /// Executions per Idempotency-Key (as the handler saw the header).
    runs: Arc<Mutex<HashMap<String, u32>>>,
    total: Arc<AtomicU32>,
    delay: Duration,
    fail_next: Arc<AtomicBool>,
    panic_next: Arc<AtomicBool>,
    /// When set, `/hang` waits for this before answering.
    gate: Arc<Notify>,
    started: Option<mpsc::UnboundedSender<()>>,
    tag: &'static str,
}

fn key_of(headers: &HeaderMap) -> String {
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
    let n = {
        let mut runs = s.runs.lock().unwrap();
        let e = runs.entry(key_of(&headers)).or_default();
        *e += 1;
        *e
    };
    s.total.fetch_add(1, Ordering::SeqCst);
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    if s.panic_next.swap(false, Ordering::SeqCst) {
        panic!("handler panicked on purpose");
    }
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
            ("x-not-allowlisted", "1"),
        ],
        format!("{} run {n} previous {previous} body {body}", s.tag),
    )
        .into_response()
}

async fn hang(State(s): State<AppState>, headers: HeaderMap) -> Response {
    s.runs
        .lock()
        .unwrap()
        .entry(key_of(&headers))
        .and_modify(|n| *n += 1)
        .or_insert(1);
    if let Some(tx) = &s.started {
        let _ = tx.send(());
    }
    s.gate.notified().await;
    (StatusCode::CREATED, format!("{} finished late", s.tag)).into_response()
}

async fn big(State(s): State<AppState>) -> Response {
    s.total.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, "x".repeat(10_000)).into_response()
}

async fn stream(State(s): State<AppState>) -> Response {
    s.total.fetch_add(1, Ordering::SeqCst);
    let chunks = futures_util::stream::iter(
        ["a", "b", "c"].map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from(c))),
    );
    Response::new(Body::from_stream(chunks))
}

fn app(state: AppState, layer: IdempotencyLayer) -> Router {
    Router::new()
        .route("/orders", post(order).get(|| async { "listing" }))
        .route("/hang", post(hang))
        .route("/big", post(big))
        .route("/stream", post(stream))
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
        .with_state(state)
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap()
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }
    fn problem_type(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(v["status"], self.status);
        v["type"].as_str().unwrap().to_owned()
    }
}

async fn send(
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

async fn post_key(
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

fn memory_layer() -> IdempotencyLayerBuilder {
    IdempotencyLayer::builder(MemoryStore::new())
}

/// Every row of the README's wire behaviour table, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_behaviour_table() {
    let clock = ManualClock::starting_now();
    let state = AppState {
        tag: "A",
        ..Default::default()
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let layer = memory_layer()
        .clock(Arc::new(clock.clone()))
        .lease(Duration::from_secs(10))
        .ttl(Duration::from_secs(3600))
        .max_request_body(1000)
        .max_response_body(1000)
        .require_key_when(|p| p.uri.path() == "/orders")
        .on_event(move |e: &Event<'_>| ev.lock().unwrap().push(e.outcome))
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();

    // First request: handler runs, 201, no replay header.
    let first = post_key(&c, addr, "/orders", "\"k-1\"", "one").await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body, "A run 1 previous 0 body one");
    assert!(!first.replayed());
    assert_eq!(first.header("set-cookie"), Some("session=secret"));

    // Retry (bare token = same key in lenient mode): replay with allow-listed headers only.
    let again = post_key(&c, addr, "/orders", "k-1", "one").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert!(again.replayed());
    assert_eq!(again.header("location"), Some("/orders/1"));
    assert_eq!(again.header("content-type"), Some("text/plain"));
    assert_eq!(again.header("set-cookie"), None);
    assert_eq!(again.header("x-not-allowlisted"), None);

    // Same key, different body: 422, original kept.
    let other = post_key(&c, addr, "/orders", "k-1", "two").await;
    assert_eq!(other.status, 422);
    assert_eq!(other.problem_type(), types::MISMATCH);
    assert_eq!(
        post_key(&c, addr, "/orders", "k-1", "one").await.body,
        first.body
    );

    // Same key, different query: also a different request.
    let q = send(
        &c,
        reqwest::Method::POST,
        format!("http://{addr}/orders?x=1"),
        Some("k-1"),
        "one",
    )
    .await;
    // A different path+query is a different route scope only if the path differs;
    // same path with another query is a fingerprint mismatch.
    assert_eq!(q.status, 422);

    // Missing key where required: 400; where not required: runs unprotected.
    let missing = send(
        &c,
        reqwest::Method::POST,
        format!("http://{addr}/orders"),
        None,
        "x",
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.problem_type(), types::KEY_MISSING);
    let total_before = state.total.load(Ordering::SeqCst);
    let unkeyed = send(
        &c,
        reqwest::Method::POST,
        format!("http://{addr}/big"),
        None,
        "",
    )
    .await;
    assert_eq!(unkeyed.status, 200);
    assert_eq!(state.total.load(Ordering::SeqCst), total_before + 1);

    // Malformed keys: 400 naming the problem; the handler does not run.
    let runs_before = state.runs.lock().unwrap().len();
    for bad in ["\"unterminated", "has space", "\"\"", &"k".repeat(256)] {
        let r = post_key(&c, addr, "/orders", bad, "x").await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.problem_type(), types::KEY_MALFORMED);
        assert!(r.body.contains("Idempotency-Key"), "{}", r.body);
    }
    let two = c
        .post(format!("http://{addr}/orders"))
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 400);
    assert!(two.text().await.unwrap().contains("more than one"));
    assert_eq!(state.runs.lock().unwrap().len(), runs_before);

    // GET ignores the key entirely.
    let g = send(
        &c,
        reqwest::Method::GET,
        format!("http://{addr}/orders"),
        Some("\"bad"),
        "",
    )
    .await;
    assert_eq!((g.status, g.body.as_str()), (200, "listing"));

    // Body over the cap: 413.
    let big = post_key(&c, addr, "/orders", "k-big", &"x".repeat(1001)).await;
    assert_eq!(big.status, 413);
    assert_eq!(big.problem_type(), types::BODY_TOO_LARGE);

    // Handler 5xx: not stored, claim released, the retry runs again.
    state.fail_next.store(true, Ordering::SeqCst);
    let failed = post_key(&c, addr, "/orders", "k-5xx", "p").await;
    assert_eq!(failed.status, 503);
    let retried = post_key(&c, addr, "/orders", "k-5xx", "p").await;
    assert_eq!(retried.status, 201);
    assert_eq!(retried.body, "A run 2 previous 1 body p");

    // Response over the cap: passed through, not stored (released): runs again.
    let before = state.total.load(Ordering::SeqCst);
    for _ in 0..2 {
        let r = post_key(&c, addr, "/big", "k-big-resp", "").await;
        assert_eq!((r.status, r.body.len(), r.replayed()), (200, 10_000, false));
    }
    assert_eq!(state.total.load(Ordering::SeqCst), before + 2);

    // Streaming response: passed through, not stored.
    let s1 = post_key(&c, addr, "/stream", "k-stream", "").await;
    assert_eq!((s1.status, s1.body.as_str()), (200, "abc"));
    assert!(!post_key(&c, addr, "/stream", "k-stream", "")
        .await
        .replayed());

    // TTL: replayed until it ends, then the key runs afresh.
    clock.advance(Duration::from_secs(3599));
    assert!(post_key(&c, addr, "/orders", "k-1", "one").await.replayed());
    clock.advance(Duration::from_secs(1));
    let fresh = post_key(&c, addr, "/orders", "\"k-1\"", "one").await;
    assert!(!fresh.replayed());
    assert_eq!(fresh.body, "A run 2 previous 1 body one");

    let seen = events.lock().unwrap().clone();
    for o in [
        Outcome::Stored,
        Outcome::Replayed,
        Outcome::Mismatch,
        Outcome::KeyMissing,
        Outcome::KeyMalformed,
        Outcome::BodyRejected,
        Outcome::Released,
        Outcome::PassedThroughUnstored,
        Outcome::Bypassed,
    ] {
        assert!(seen.contains(&o), "no {o:?} event in {seen:?}");
    }
}

/// In progress: 409 with Retry-After = remaining lease; with wait mode the
/// duplicate is held and gets the replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_conflict_and_wait_mode() {
    let clock = ManualClock::starting_now();
    let (tx, mut started) = mpsc::unbounded_channel();
    let state = AppState {
        tag: "A",
        started: Some(tx),
        ..Default::default()
    };
    let layer = memory_layer()
        .clock(Arc::new(clock.clone()))
        .lease(Duration::from_secs(30))
        .renew_every(None)
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let c2 = c.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", "k", "").await });
    started.recv().await.unwrap();
    clock.advance(Duration::from_millis(12_500));
    let dup = post_key(&c, addr, "/hang", "k", "").await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.problem_type(), types::IN_PROGRESS);
    assert_eq!(dup.header("retry-after"), Some("18")); // 17.5 s, rounded up
    state.gate.notify_one();
    assert_eq!(first.await.unwrap().status, 201);
    assert_eq!(state.runs.lock().unwrap()["k"], 1);

    // Wait mode: a duplicate waits for the original and replays it.
    let clock = ManualClock::starting_now();
    let (tx, mut started) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let state = AppState {
        tag: "W",
        started: Some(tx),
        ..Default::default()
    };
    let layer = memory_layer()
        .clock(Arc::new(clock.clone()))
        .lease(Duration::from_secs(3600)) // never expires while the clock is spun below
        .wait_for_in_progress(Duration::from_secs(5), Duration::from_secs(1))
        .on_event(move |e: &Event<'_>| {
            let _ = ev_tx.send(e.outcome);
        })
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c2 = c.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", "w", "").await });
    started.recv().await.unwrap();
    let c3 = c.clone();
    let dup = tokio::spawn(async move { post_key(&c3, addr, "/hang", "w", "").await });
    assert_eq!(ev_rx.recv().await, Some(Outcome::Waiting));
    state.gate.notify_one();
    assert_eq!(first.await.unwrap().status, 201);
    assert_eq!(ev_rx.recv().await, Some(Outcome::Stored));
    clock.advance(Duration::from_secs(1)); // the waiter polls again
    let b = dup.await.unwrap();
    assert_eq!(
        (b.status, b.body.as_str(), b.replayed()),
        (201, "W finished late", true)
    );
    assert_eq!(ev_rx.recv().await, Some(Outcome::Replayed));
    assert_eq!(state.runs.lock().unwrap()["w"], 1);

    // A waiter whose original never finishes gets 409 after max_wait.
    let c4 = c.clone();
    let _stuck = tokio::spawn(async move { post_key(&c4, addr, "/hang", "w2", "").await });
    started.recv().await.unwrap();
    let c5 = c.clone();
    let dup = tokio::spawn(async move { post_key(&c5, addr, "/hang", "w2", "").await });
    assert_eq!(ev_rx.recv().await, Some(Outcome::Waiting));
    for _ in 0..5 {
        clock.advance(Duration::from_secs(1));
        tokio::task::yield_now().await;
    }
    let mut dup = dup;
    let b = loop {
        // Each advance wakes the waiter once; keep time moving until it gives up.
        tokio::select! {
            r = &mut dup => break r.unwrap(),
            _ = tokio::task::yield_now() => clock.advance(Duration::from_secs(1)),
        }
    };
    assert_eq!(b.status, 409);
    assert_eq!(ev_rx.recv().await, Some(Outcome::InProgress));
}

/// The lease is renewed while the handler runs, so a slow handler is not
/// taken over after its first lease ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_renewed_while_the_handler_runs() {
    let clock = ManualClock::starting_now();
    let (tx, mut started) = mpsc::unbounded_channel();
    let state = AppState {
        tag: "R",
        started: Some(tx),
        ..Default::default()
    };
    let layer = memory_layer()
        .clock(Arc::new(clock.clone()))
        .lease(Duration::from_secs(30))
        .renew_every(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let c2 = c.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", "r", "").await });
    started.recv().await.unwrap();
    assert_eq!(
        post_key(&c, addr, "/hang", "r", "")
            .await
            .header("retry-after"),
        Some("30")
    );
    // Without renewal 20 s would remain; each renewal resets it to 30 s.
    clock.advance(Duration::from_secs(10));
    let mut renewed = false;
    for _ in 0..1000 {
        let r = post_key(&c, addr, "/hang", "r", "").await;
        assert_eq!(r.status, 409);
        if r.header("retry-after") == Some("30") {
            renewed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(renewed, "lease was not renewed");
    // Past the first lease's end: still held, nothing ran twice.
    clock.advance(Duration::from_secs(25));
    assert_eq!(post_key(&c, addr, "/hang", "r", "").await.status, 409);
    assert_eq!(state.runs.lock().unwrap()["r"], 1);
    state.gate.notify_one();
    assert_eq!(first.await.unwrap().status, 201);
}

/// A panicking handler and a client that goes away both release the claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_and_disconnect_release_the_claim() {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let (tx, mut started) = mpsc::unbounded_channel();
    let state = AppState {
        tag: "P",
        started: Some(tx),
        ..Default::default()
    };
    let layer = memory_layer()
        .on_event(move |e: &Event<'_>| {
            let _ = ev_tx.send(e.outcome);
        })
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();

    state.panic_next.store(true, Ordering::SeqCst);
    let r = c
        .post(format!("http://{addr}/orders"))
        .header("Idempotency-Key", "p")
        .body("b")
        .send()
        .await;
    assert!(r.is_err(), "a panic aborts the connection");
    assert_eq!(ev_rx.recv().await, Some(Outcome::Released));
    let retry = post_key(&c, addr, "/orders", "p", "b").await;
    assert_eq!(
        (retry.status, retry.body.as_str()),
        (201, "P run 2 previous 1 body b")
    );
    assert_eq!(ev_rx.recv().await, Some(Outcome::Stored));

    // Disconnect: the client gives up mid-handler; hyper drops the future.
    let c2 = c.clone();
    let gone = tokio::spawn(async move { post_key(&c2, addr, "/hang", "d", "").await });
    started.recv().await.unwrap();
    gone.abort();
    assert_eq!(ev_rx.recv().await, Some(Outcome::Released));
    let c3 = c.clone();
    let retry = tokio::spawn(async move { post_key(&c3, addr, "/hang", "d", "").await });
    started.recv().await.unwrap();
    state.gate.notify_one();
    assert_eq!(retry.await.unwrap().status, 201);
    assert_eq!(state.runs.lock().unwrap()["d"], 2);
}

/// Mark-not-replayable: an unstorable response is not run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstorable_marked_not_replayable() {
    let state = AppState::default();
    let layer = memory_layer()
        .max_response_body(100)
        .unstorable(Unstorable::MarkNotReplayable)
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let r = post_key(&c, addr, "/big", "k", "").await;
    assert_eq!((r.status, r.body.len()), (200, 10_000));
    let again = post_key(&c, addr, "/big", "k", "").await;
    assert_eq!(again.status, 409);
    assert!(again.replayed());
    assert_eq!(again.problem_type(), types::NOT_REPLAYABLE);
    assert_eq!(state.total.load(Ordering::SeqCst), 1);
}

/// Identity scoping: two callers using the same key never see each other's
/// response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_scoped_by_identity() {
    let state = AppState {
        tag: "S",
        ..Default::default()
    };
    let layer = memory_layer()
        .identity(|p| p.headers.get("x-user")?.to_str().ok().map(String::from))
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let as_user = |u: &'static str| {
        c.post(format!("http://{addr}/orders"))
            .header("Idempotency-Key", "same")
            .header("x-user", u)
            .body(u)
            .send()
    };
    let alice = as_user("alice").await.unwrap().text().await.unwrap();
    let bob = as_user("bob").await.unwrap().text().await.unwrap();
    assert_eq!(alice, "S run 1 previous 0 body alice");
    assert_eq!(bob, "S run 2 previous 0 body bob");
}

/// Store down: 503 by default (the handler never runs); fail open runs it.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_fails_closed_or_open() {
    let down = || {
        rebound_idempotency::PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").unwrap()
    };
    let state = AppState::default();
    let addr = serve(app(
        state.clone(),
        IdempotencyLayer::builder(down()).build().unwrap(),
    ))
    .await;
    let c = client();
    let r = post_key(&c, addr, "/orders", "k", "").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.problem_type(), types::STORE_UNAVAILABLE);
    assert_eq!(state.total.load(Ordering::SeqCst), 0);

    let layer = IdempotencyLayer::builder(down())
        .fail_mode(rebound_idempotency::FailMode::Open)
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    assert_eq!(post_key(&c, addr, "/orders", "k", "").await.status, 201);
    assert_eq!(state.total.load(Ordering::SeqCst), 1);
}

// ---- Per-store: exactly once under concurrency, crash recovery ----

const CONCURRENCY: usize = 64;
const ROUNDS: usize = 100;

/// 64 concurrent requests with one key, 100 times: exactly one execution
/// each time, the other 63 get the replay or 409.
async fn exactly_once(store: Arc<dyn Store>, label: &str) {
    let state = AppState {
        tag: "X",
        delay: Duration::from_millis(2),
        ..Default::default()
    };
    let layer = IdempotencyLayer::builder_shared(store).build().unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let prefix = common::unique("once");
    let started = Instant::now();
    for round in 0..ROUNDS {
        let key = format!("{prefix}-{round}");
        let replies = futures_util::future::join_all((0..CONCURRENCY).map(|_| {
            let c = c.clone();
            let key = key.clone();
            async move { post_key(&c, addr, "/orders", &key, "same body").await }
        }))
        .await;
        let mut originals = 0;
        let mut replays = 0;
        let mut conflicts = 0;
        for r in &replies {
            match (r.status, r.replayed()) {
                (201, false) => originals += 1,
                (201, true) => replays += 1,
                (409, _) => conflicts += 1,
                other => panic!("{label} round {round}: unexpected {other:?} {}", r.body),
            }
        }
        assert_eq!(originals, 1, "{label} round {round}");
        assert_eq!(
            replays + conflicts,
            CONCURRENCY - 1,
            "{label} round {round}"
        );
        assert_eq!(
            state.runs.lock().unwrap().get(&key).copied(),
            Some(1),
            "{label} round {round}: executions"
        );
    }
    println!(
        "{label}: {ROUNDS} x {CONCURRENCY} concurrent requests in {:?}",
        started.elapsed()
    );
}

/// A holder that never finishes (crashed: its clock and renewals stopped);
/// once its lease ends the retry runs once on another instance; the late
/// completion of the first holder is rejected and the retry's result stays.
async fn crash_recovery(store: Arc<dyn Store>) {
    let lease = Duration::from_secs(5);
    let clock_a = ManualClock::starting_now(); // frozen: the crashed process
    let clock_b = ManualClock::new(rebound_idempotency::Clock::now(&clock_a));
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let (tx, mut started) = mpsc::unbounded_channel();
    let state_a = AppState {
        tag: "A",
        runs: runs.clone(),
        started: Some(tx),
        ..Default::default()
    };
    let state_b = AppState {
        tag: "B",
        runs: runs.clone(),
        ..Default::default()
    };
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let layer_a = IdempotencyLayer::builder_shared(store.clone())
        .clock(Arc::new(clock_a.clone()))
        .lease(lease)
        .on_event(move |e: &Event<'_>| {
            let _ = ev_tx.send(e.outcome);
        })
        .build()
        .unwrap();
    let layer_b = IdempotencyLayer::builder_shared(store)
        .clock(Arc::new(clock_b.clone()))
        .lease(lease)
        .build()
        .unwrap();
    // Both instances serve the same route; A's handler hangs.
    let router_a = Router::new()
        .route("/orders", post(hang))
        .layer(layer_a)
        .with_state(state_a.clone());
    let addr_a = serve(router_a).await;
    let addr_b = serve(app(state_b, layer_b)).await;
    let c = client();
    let key = common::unique("crash");

    let c2 = c.clone();
    let k2 = key.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr_a, "/orders", &k2, "").await });
    started.recv().await.unwrap();

    // Lease still held: B refuses.
    let early = post_key(&c, addr_b, "/orders", &key, "").await;
    assert_eq!(early.status, 409);
    assert_eq!(early.header("retry-after"), Some("5"));

    // A's lease runs out on B's clock: the retry runs, once.
    clock_b.advance(lease);
    let retry = post_key(&c, addr_b, "/orders", &key, "").await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, "B run 2 previous 1 body ");
    assert_eq!(runs.lock().unwrap()[&key], 2);

    // A wakes up and finishes: its completion is rejected by the fence.
    state_a.gate.notify_one();
    let late = first.await.unwrap();
    assert_eq!(late.status, 201);
    assert!(!late.replayed());
    assert_eq!(ev_rx.recv().await, Some(Outcome::FenceRejected));

    // The stored result is B's, and nothing runs again.
    let after = post_key(&c, addr_b, "/orders", &key, "").await;
    assert!(after.replayed());
    assert_eq!(after.body, retry.body);
    assert_eq!(runs.lock().unwrap()[&key], 2);
}

macro_rules! per_store {
    ($modname:ident, $make:expr) => {
        mod $modname {
            use super::*;

            async fn make() -> Option<Arc<dyn Store>> {
                $make.await.map(|s| Arc::new(s) as Arc<dyn Store>)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exactly_once_under_concurrency() {
                if let Some(store) = make().await {
                    exactly_once(store, stringify!($modname)).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_recovery_with_fencing() {
                if let Some(store) = make().await {
                    crash_recovery(store).await;
                }
            }
        }
    };
}

per_store!(memory, async { Some(MemoryStore::new()) });

#[cfg(feature = "redb")]
per_store!(redb, async {
    let dir = tempfile::tempdir().unwrap().keep();
    Some(rebound_idempotency::RedbStore::open(dir.join("idem.redb")).unwrap())
});

#[cfg(feature = "redis")]
per_store!(redis, common::redis_store());

#[cfg(feature = "postgres")]
per_store!(postgres, common::postgres_store());
