//! End to end with rebound-idempotency on the server, over a real socket: a
//! handler slower than the client's attempt timeout but within its total
//! timeout. The client gives up on the first attempt and retries with the
//! same key; the server keeps the handler running although the client hung
//! up, answers the retry with 409 and a Retry-After estimating when the
//! result will be ready (not the 30 s lease), and the client, which never
//! waits less than asked, gets the stored response within its total
//! timeout. The handler ran exactly once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::{http::StatusCode, routing::post, Router};
use rebound::{Backoff, Clock, RetryPolicy};
use rebound_http::{RetryMiddleware, RetryReport};
use rebound_idempotency::{Event, IdempotencyLayer, MemoryStore, RequestOutcome};
use tokio::sync::{mpsc, Notify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_attempt_timeout_runs_once_and_the_client_gets_its_result() {
    let executions = Arc::new(AtomicU32::new(0));
    let gate = Arc::new(Notify::new());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (outcome_tx, mut outcomes) = mpsc::unbounded_channel();
    let handler = {
        let (executions, gate) = (executions.clone(), gate.clone());
        move |body: String| {
            let n = executions.fetch_add(1, Ordering::SeqCst) + 1;
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(());
                gate.notified().await; // slower than the client's attempt timeout
                (StatusCode::CREATED, format!("order {n} for {body}"))
            }
        }
    };
    let app = Router::new().route("/orders", post(handler)).layer(
        IdempotencyLayer::builder(MemoryStore::new())
            .single_tenant()
            .on_event(move |e: &Event<'_>| {
                let _ = outcome_tx.send(e.outcome);
            })
            .build()
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The client: a 150 ms attempt timeout, 8 s in total, on a manual clock
    // (its waits pass at once, and are what the total timeout counts).
    let (clock, time) = Clock::manual();
    let attempt_timeout = Duration::from_millis(150);
    let middleware = RetryMiddleware::builder()
        .policy(
            RetryPolicy::builder()
                .clock(clock)
                .max_attempts(10)
                .backoff(Backoff::constant(Duration::from_millis(50)))
                .attempt_timeout(attempt_timeout)
                .total_timeout(Duration::from_secs(8)),
        )
        .generate_idempotency_keys(true)
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let call = tokio::spawn(async move {
        client
            .post(format!("http://{addr}/orders"))
            .body("sku-42 x1")
            .send()
            .await
    });

    // The first attempt reaches the handler, then times out.
    started.recv().await.unwrap();
    time.advance(attempt_timeout);
    // The retry finds it still running: 409 with a short Retry-After.
    loop {
        match outcomes.recv().await.unwrap() {
            RequestOutcome::InProgress => break,
            RequestOutcome::Released => panic!("the handler was cut off with its client"),
            _ => {}
        }
    }
    gate.notify_one(); // the handler finishes, with nobody waiting for it
    loop {
        if outcomes.recv().await.unwrap() == RequestOutcome::Stored {
            break;
        }
    }

    let res = call.await.unwrap().expect("the client got an answer");
    assert_eq!(res.status(), StatusCode::CREATED);
    let report = RetryReport::of(&res).unwrap().clone();
    assert!(report.attempts() >= 3, "{report:?}");
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(res.text().await.unwrap(), "order 1 for sku-42 x1");
    assert_eq!(
        executions.load(Ordering::SeqCst),
        1,
        "executed exactly once"
    );
}
