//! From an HTTP give-up to a fallback, with no glue: the inventory service
//! answers, then starts answering `503`; the order page shows the last
//! stock it saw, marked stale, instead of an error.
//!
//! `error_on_give_up(true)` turns the final `503` into an error, and
//! `GiveUpExt::cause` tells the fallback why the request failed (attempts
//! exhausted, budget, breaker, throttle, timeout), so
//! `Fallback::serve_stale` takes the result as it comes.
//!
//! Run with `cargo run -p rebound-http --example fallback_on_give_up`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::{http::StatusCode, routing::get, Router};
use rebound::fallback::{Fallback, Served, StaleCache};
use rebound::{Backoff, RetryPolicy};
use rebound_http::{GiveUpExt, RetryMiddleware};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A local inventory service that can be switched off.
    let down = Arc::new(AtomicBool::new(false));
    let is_down = down.clone();
    let app = Router::new().route(
        "/stock/{sku}",
        get(move || {
            let down = is_down.load(Ordering::SeqCst);
            async move {
                if down {
                    Err((StatusCode::SERVICE_UNAVAILABLE, "maintenance"))
                } else {
                    Ok("42")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // One name for the dependency, on every series and on the fallback.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            RetryMiddleware::builder()
                .dependency("inventory")
                .policy(
                    RetryPolicy::builder()
                        .max_attempts(3)
                        .backoff(Backoff::exponential(Duration::from_millis(5))),
                )
                .error_on_give_up(true)
                .build()?,
        )
        .build();
    let fallback = Fallback::builder().dependency("inventory").build();
    let cache = StaleCache::new(Duration::from_secs(300));

    let stock = |sku: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{addr}/stock/{sku}"))
                .send()
                .await?;
            response
                .text()
                .await
                .map_err(reqwest_middleware::Error::from)
        }
    };

    let fresh = fallback.serve_stale(&cache, "sku-17", stock("sku-17").await, GiveUpExt::cause)?;
    println!("inventory up:   {fresh:?}");
    assert_eq!(fresh, Served::Fresh("42".to_owned()));

    down.store(true, Ordering::SeqCst);
    let result = stock("sku-17").await;
    if let Err(e) = &result {
        // e.g. "inventory (127.0.0.1:41234): attempts exhausted after 3 attempts; last response: 503 Service Unavailable"
        println!("gave up:        {e} (cause: {:?})", e.cause());
    }
    let shown = fallback.serve_stale(&cache, "sku-17", result, GiveUpExt::cause)?;
    println!("inventory down: {shown:?}");
    assert!(matches!(shown, Served::Stale { ref value, .. } if value == "42"));
    Ok(())
}
