//! End to end with rebound-idempotency on the server: the client retries a
//! POST whose first response was lost (the server completed it, then the
//! connection dropped). The server ran it exactly once and the client got
//! the stored result.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::{http::StatusCode, routing::post, Router};
use common::{client, Action, TestServer};
use rebound::{Backoff, Clock, RetryPolicy};
use rebound_http::{RetryMiddleware, RetryReport};
use rebound_idempotency::{IdempotencyLayer, MemoryStore};

fn orders_app(executions: Arc<AtomicU32>) -> Router {
    Router::new()
        .route(
            "/orders",
            post(move |body: String| {
                let n = executions.fetch_add(1, Ordering::SeqCst) + 1;
                async move { (StatusCode::CREATED, format!("order {n} for {body}")) }
            }),
        )
        .layer(
            IdempotencyLayer::builder(MemoryStore::new())
                .single_tenant()
                .build()
                .unwrap(),
        )
}

async fn lost_first_response(generate: bool) {
    let executions = Arc::new(AtomicU32::new(0));
    let server = TestServer::with_app(orders_app(executions.clone()), |i, _| {
        if i == 0 {
            Action::ForwardThenDrop
        } else {
            Action::Forward
        }
    })
    .await;
    let (clock, _) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(
            RetryPolicy::builder()
                .clock(clock)
                .backoff(Backoff::constant(Duration::from_millis(50))),
        )
        .generate_idempotency_keys(generate)
        .build()
        .unwrap();
    let mut req = client(mw).post(server.url("/orders")).body("sku-42 x1");
    if !generate {
        req = req.header("Idempotency-Key", "\"order-123-line-1\"");
    }
    let res = req.send().await.unwrap();

    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(RetryReport::of(&res).unwrap().attempts(), 2);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(res.text().await.unwrap(), "order 1 for sku-42 x1");
    assert_eq!(
        executions.load(Ordering::SeqCst),
        1,
        "executed exactly once"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("idempotency-key"),
        seen[1].header("idempotency-key")
    );
}

#[tokio::test]
async fn a_post_whose_response_was_lost_runs_once_with_a_generated_key() {
    lost_first_response(true).await;
}

#[tokio::test]
async fn a_post_whose_response_was_lost_runs_once_with_the_callers_key() {
    lost_first_response(false).await;
}
