//! rebound's tower layers in an axum service, on both sides:
//!
//! * **server**: `/reserve` is protected by a bulkhead (at most 2 at once,
//!   the rest refused with 503) and a timeout (504 after 200 ms), through
//!   axum's `HandleErrorLayer`;
//! * **client**: the handler calls a flaky in-process dependency through a
//!   `RetryLayer` (3 attempts, a retry budget) over a `BreakerLayer`.
//!
//! It starts the server on a free port, sends a few requests with reqwest,
//! prints the answers and exits.
//!
//! ```text
//! cargo run -p rebound --features tower --example tower_axum
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rebound::tower::{
    breaker::BreakerLayer, bulkhead::BulkheadLayer, retry::RetryLayer, timeout::TimeoutLayer,
    BoxError,
};
use rebound::{Bulkhead, BulkheadFull, CircuitBreaker, RetryBudget, RetryPolicy};
use tower::util::BoxCloneSyncService;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The downstream client: retry over a breaker over the dependency.
type Inventory = BoxCloneSyncService<u32, &'static str, BoxError>;

/// A dependency failing every third call.
fn inventory() -> Result<Inventory, BoxError> {
    let calls = Arc::new(AtomicU32::new(0));
    let dependency = service_fn(move |_sku: u32| {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            if n.is_multiple_of(3) {
                Err::<&'static str, BoxError>("connection reset".into())
            } else {
                Ok("reserved")
            }
        }
    });
    let retry = RetryPolicy::builder()
        .dependency("inventory")
        .max_attempts(3)
        .budget(RetryBudget::ratio(0.2).build()?)
        .build()?;
    let breaker = CircuitBreaker::builder().dependency("inventory").build()?;
    Ok(BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(RetryLayer::new(retry))
            .layer(BreakerLayer::new(breaker))
            .service(dependency),
    ))
}

async fn reserve(State(inventory): State<Inventory>) -> Result<&'static str, (StatusCode, String)> {
    let reply = inventory.oneshot(7).await;
    reply.map_err(|e| (StatusCode::BAD_GATEWAY, format!("inventory: {e}")))
}

/// The server's own refusals as HTTP answers.
async fn refused(e: BoxError) -> (StatusCode, String) {
    if e.is::<BulkheadFull>() {
        (StatusCode::SERVICE_UNAVAILABLE, "busy, try again".into())
    } else if e.is::<rebound::tower::timeout::error::Elapsed>() {
        (StatusCode::GATEWAY_TIMEOUT, "timed out".into())
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let bulkhead = Bulkhead::builder()
        .dependency("orders-server")
        .max_concurrent(2)
        .build()?;
    let app = Router::new()
        .route("/reserve", get(reserve))
        .with_state(inventory()?)
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refused))
                .layer(BulkheadLayer::new(bulkhead))
                .layer(TimeoutLayer::new(Duration::from_millis(200))?),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}/reserve");

    let client = reqwest::Client::new();
    for i in 1..=5 {
        let resp = client.get(format!("http://{addr}/reserve")).send().await?;
        println!("request {i}: {} {}", resp.status(), resp.text().await?);
    }
    // The service itself is still a tower service: call it without HTTP.
    let mut direct = inventory()?;
    let answer = direct.ready().await?.call(1).await?;
    println!("direct call: {answer}");
    Ok(())
}
