//! The layer over real HTTP on 127.0.0.1: the README's wire behaviour table,
//! stable error codes and the error-envelope hook, the replay headers,
//! tenant scope, and responses over the size cap.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{app, client, post_key, send, serve, AppState};
use rebound::Clock;
use rebound_idempotency::problem::{codes, types, ErrorBody};
use rebound_idempotency::{
    Event, IdempotencyLayer, IdempotencyLayerBuilder, MemoryStore, RequestOutcome, Unstorable,
};

fn memory_layer() -> IdempotencyLayerBuilder {
    IdempotencyLayer::builder(MemoryStore::new()).single_tenant()
}

fn recorder() -> (
    Arc<Mutex<Vec<RequestOutcome>>>,
    impl Fn(&Event<'_>) + Send + Sync + 'static,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    (events, move |e: &Event<'_>| {
        ev.lock().unwrap().push(e.outcome)
    })
}

/// Every row of the README's wire behaviour table, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_behaviour_table() {
    let (clock, time) = Clock::manual();
    let state = AppState {
        tag: "A",
        ..Default::default()
    };
    let (events, hook) = recorder();
    let layer = memory_layer()
        .clock(clock)
        .lease(Duration::from_secs(10))
        .ttl(Duration::from_secs(3600))
        .max_request_body(1000)
        .max_response_body(1000)
        .require_key_when(|p| p.uri.path() == "/orders")
        .on_event(hook)
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

    // Retry (bare token = same key in lenient mode): replay with the
    // replayed headers only.
    let again = post_key(&c, addr, "/orders", "k-1", "one").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert!(again.replayed());
    assert_eq!(again.header("location"), Some("/orders/1"));
    assert_eq!(again.header("content-type"), Some("text/plain"));
    assert_eq!(again.header("set-cookie"), None);
    assert_eq!(again.header("x-request-id"), None);
    assert_eq!(again.header("x-not-allowlisted"), None);
    assert_eq!(again.header("idempotent-body-omitted"), None);

    // Same key, different body: 422, original kept.
    let other = post_key(&c, addr, "/orders", "k-1", "two").await;
    assert_eq!(other.status, 422);
    assert_eq!(
        other.problem(),
        (types::MISMATCH.into(), codes::FINGERPRINT_MISMATCH.into())
    );
    assert_eq!(
        post_key(&c, addr, "/orders", "k-1", "one").await.body,
        first.body
    );

    // Same key, same path, another query: a different request too.
    let q = send(
        &c,
        reqwest::Method::POST,
        format!("http://{addr}/orders?x=1"),
        Some("k-1"),
        "one",
    )
    .await;
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
    assert_eq!(
        missing.problem(),
        (types::KEY_MISSING.into(), codes::MISSING_KEY.into())
    );
    let total_before = state.total.load(Ordering::SeqCst);
    let unkeyed = send(
        &c,
        reqwest::Method::POST,
        format!("http://{addr}/big"),
        None,
        "",
    )
    .await;
    assert_eq!(unkeyed.status, 201);
    assert_eq!(state.total.load(Ordering::SeqCst), total_before + 1);

    // Malformed keys: 400 naming the problem; the handler does not run.
    let runs_before = state.runs.lock().unwrap().len();
    for (bad, code) in [
        ("\"unterminated", codes::INVALID_KEY),
        ("has space", codes::INVALID_KEY),
        ("\"\"", codes::INVALID_KEY),
        (&"k".repeat(256), codes::KEY_TOO_LONG),
    ] {
        let r = post_key(&c, addr, "/orders", bad, "x").await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.problem(), (types::KEY_MALFORMED.into(), code.into()));
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
    assert_eq!(big.code(), codes::BODY_TOO_LARGE);

    // Handler 5xx: not stored, claim released, the retry runs again.
    state.fail_next.store(true, Ordering::SeqCst);
    let failed = post_key(&c, addr, "/orders", "k-5xx", "p").await;
    assert_eq!(failed.status, 503);
    let retried = post_key(&c, addr, "/orders", "k-5xx", "p").await;
    assert_eq!(retried.status, 201);
    assert_eq!(retried.body, "A run 2 previous 1 body p");

    // A 409 from the handler (out of stock) is not stored either.
    let c1 = post_key(&c, addr, "/conflict", "k-409", "").await;
    let c2 = post_key(&c, addr, "/conflict", "k-409", "").await;
    assert_eq!((c1.status, c1.body.as_str()), (409, "out of stock (run 1)"));
    assert_eq!((c2.status, c2.body.as_str()), (409, "out of stock (run 2)"));
    assert!(!c2.replayed());

    // Response over the cap: the first client gets all of it; the retry
    // gets status and headers, no body, marked; the handler ran once.
    let r1 = post_key(&c, addr, "/big", "k-big-resp", "").await;
    assert_eq!(
        (r1.status, r1.body.len(), r1.replayed()),
        (201, 10_000, false)
    );
    let r2 = post_key(&c, addr, "/big", "k-big-resp", "").await;
    assert_eq!((r2.status, r2.body.len(), r2.replayed()), (201, 0, true));
    assert_eq!(r2.header("idempotent-body-omitted"), Some("true"));
    assert_eq!(r2.header("location"), Some("/big/1"));
    assert_eq!(state.runs("k-big-resp"), 1);

    // A streaming response within the cap is stored and replayed whole.
    let s1 = post_key(&c, addr, "/stream", "k-stream", "").await;
    assert_eq!((s1.status, s1.body.as_str()), (200, "abc"));
    let s2 = post_key(&c, addr, "/stream", "k-stream", "").await;
    assert_eq!((s2.body.as_str(), s2.replayed()), ("abc", true));
    assert_eq!(state.runs("k-stream"), 1);

    // TTL: replayed until it ends, then the key runs afresh.
    time.advance(Duration::from_secs(3599));
    assert!(post_key(&c, addr, "/orders", "k-1", "one").await.replayed());
    time.advance(Duration::from_secs(1));
    let fresh = post_key(&c, addr, "/orders", "\"k-1\"", "one").await;
    assert!(!fresh.replayed());
    assert_eq!(fresh.body, "A run 2 previous 1 body one");

    let seen = events.lock().unwrap().clone();
    for o in [
        RequestOutcome::Stored,
        RequestOutcome::StoredWithoutBody,
        RequestOutcome::Replayed,
        RequestOutcome::Mismatch,
        RequestOutcome::KeyMissing,
        RequestOutcome::KeyMalformed,
        RequestOutcome::BodyRejected,
        RequestOutcome::Released,
        RequestOutcome::Bypassed,
    ] {
        assert!(seen.contains(&o), "no {o:?} event in {seen:?}");
    }
}

/// Responses over the cap, streamed past it or with a known length, under
/// each `Unstorable` choice: the handler runs once unless release is chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_cap() {
    let c = client();
    for (what, path) in [
        (Unstorable::StoreWithoutBody, "/big-stream"),
        (Unstorable::StoreWithoutBody, "/big"),
        (Unstorable::MarkNotReplayable, "/big-stream"),
        (Unstorable::MarkNotReplayable, "/big"),
        (Unstorable::Release, "/big-stream"),
    ] {
        let state = AppState::default();
        let layer = memory_layer()
            .max_response_body(5_000)
            .unstorable(what)
            .replay_headers(["content-type", "location"])
            .build()
            .unwrap();
        let addr = serve(app(state.clone(), layer)).await;
        let first = post_key(&c, addr, path, "k", "").await;
        let len = if path == "/big" { 10_000 } else { 20_000 };
        assert_eq!(first.body.len(), len, "{what:?} {path}");
        assert!(!first.replayed());
        if path == "/big-stream" {
            // Streamed in order, the part read before the cap included.
            assert!(first.body.starts_with(&"a".repeat(500)));
            assert!(first.body.ends_with(&"n".repeat(500)));
        }
        let again = post_key(&c, addr, path, "k", "").await;
        match what {
            Unstorable::StoreWithoutBody => {
                assert_eq!((again.status, again.body.as_str()), (first.status, ""));
                assert!(again.replayed());
                assert_eq!(again.header("idempotent-body-omitted"), Some("true"));
                assert_eq!(state.runs("k"), 1);
            }
            Unstorable::MarkNotReplayable => {
                assert_eq!(again.status, 409);
                assert!(again.replayed());
                assert_eq!(
                    again.problem(),
                    (types::NOT_REPLAYABLE.into(), codes::NOT_REPLAYABLE.into())
                );
                assert_eq!(state.runs("k"), 1);
            }
            _ => {
                assert!(!again.replayed());
                assert_eq!(again.body.len(), len);
                assert_eq!(state.runs("k"), 2);
            }
        }
    }
}

/// Every refusal carries a stable `code`; a hook renders the API's own
/// envelope, keeping status and Retry-After; the replay marker's name is
/// configurable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_envelope_hook_and_replay_header_name() {
    let state = AppState::default();
    let layer = memory_layer()
        .replayed_header("Idempotency-Replayed")
        .max_response_body(100)
        .unstorable(Unstorable::MarkNotReplayable)
        .error_body(|p| {
            ErrorBody::json(&serde_json::json!({
                "error": {"type": "idempotency_error", "code": p.code(), "message": p.detail()}
            }))
        })
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let envelope = |body: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["type"], "idempotency_error", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 10, "{v}");
        v["error"]["code"].clone()
    };

    let bad = post_key(&c, addr, "/orders", "has space", "x").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("content-type"), Some("application/json"));
    assert_eq!(envelope(&bad.body), codes::INVALID_KEY);

    post_key(&c, addr, "/orders", "k", "one").await;
    let replay = post_key(&c, addr, "/orders", "k", "one").await;
    assert_eq!(replay.header("idempotency-replayed"), Some("true"));
    assert_eq!(replay.header("idempotent-replayed"), None);
    let mismatch = post_key(&c, addr, "/orders", "k", "two").await;
    assert_eq!(mismatch.status, 422);
    assert_eq!(envelope(&mismatch.body), codes::FINGERPRINT_MISMATCH);

    // The not-replayable marker is stored in the envelope too.
    post_key(&c, addr, "/big", "big", "").await;
    let marker = post_key(&c, addr, "/big", "big", "").await;
    assert_eq!(marker.status, 409);
    assert_eq!(marker.header("idempotency-replayed"), Some("true"));
    assert_eq!(envelope(&marker.body), codes::NOT_REPLAYABLE);

    // In progress: the envelope, and still a Retry-After.
    let (hang_state, mut started) = AppState::tagged("H");
    let layer = memory_layer()
        .error_body(|p| ErrorBody::json(&serde_json::json!({"error": {"type": "idempotency_error", "code": p.code(), "message": p.detail()}})))
        .build()
        .unwrap();
    let addr = serve(app(hang_state.clone(), layer)).await;
    let c2 = c.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", "h", "").await });
    started.recv().await.unwrap();
    let dup = post_key(&c, addr, "/hang", "h", "").await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.header("retry-after"), Some("1"));
    assert_eq!(envelope(&dup.body), codes::IN_PROGRESS);
    hang_state.gate.notify_one();
    assert_eq!(first.await.unwrap().status, 201);
}

/// Keys are per caller by default: the builder wants a choice, a request
/// with no identity is refused without running, and two callers using the
/// same key never see each other's response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_scope_is_safe_by_default() {
    let e = IdempotencyLayer::builder(MemoryStore::new())
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "identity");
    assert!(e.to_string().contains("single_tenant"), "{e}");

    let state = AppState {
        tag: "S",
        ..Default::default()
    };
    let (events, hook) = recorder();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .identity(|p| p.headers.get("x-user")?.to_str().ok().map(String::from))
        .on_event(hook)
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let as_user = |u: &[u8]| {
        c.post(format!("http://{addr}/orders"))
            .header("Idempotency-Key", "same")
            .header(
                "x-user",
                reqwest::header::HeaderValue::from_bytes(u).unwrap(),
            )
            .body(String::from_utf8_lossy(u).into_owned())
            .send()
    };
    let alice = as_user(b"alice").await.unwrap().text().await.unwrap();
    let bob = as_user(b"bob").await.unwrap().text().await.unwrap();
    assert_eq!(alice, "S run 1 previous 0 body alice");
    assert_eq!(bob, "S run 2 previous 0 body bob");
    assert_eq!(
        as_user(b"alice").await.unwrap().text().await.unwrap(),
        alice
    );

    // No identity (no header, or one the extractor cannot read): refused.
    let before = state.total.load(Ordering::SeqCst);
    for who in [None, Some(&b"caf\xe9"[..])] {
        let mut rb = c
            .post(format!("http://{addr}/orders"))
            .header("Idempotency-Key", "same")
            .body("anon");
        if let Some(u) = who {
            rb = rb.header(
                "x-user",
                reqwest::header::HeaderValue::from_bytes(u).unwrap(),
            );
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["code"], codes::IDENTITY_MISSING);
        assert_eq!(v["type"], types::IDENTITY_MISSING);
    }
    assert_eq!(state.total.load(Ordering::SeqCst), before);
    assert!(events
        .lock()
        .unwrap()
        .contains(&RequestOutcome::IdentityMissing));
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
        IdempotencyLayer::builder(down())
            .single_tenant()
            .build()
            .unwrap(),
    ))
    .await;
    let c = client();
    let r = post_key(&c, addr, "/orders", "k", "").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        r.problem(),
        (
            types::STORE_UNAVAILABLE.into(),
            codes::STORE_UNAVAILABLE.into()
        )
    );
    assert_eq!(state.total.load(Ordering::SeqCst), 0);

    let layer = IdempotencyLayer::builder(down())
        .single_tenant()
        .fail_mode(rebound_idempotency::FailMode::Open)
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    assert_eq!(post_key(&c, addr, "/orders", "k", "").await.status, 201);
    assert_eq!(state.total.load(Ordering::SeqCst), 1);
}
