//! A reqwest client from a policy file: the file says how the `inventory`
//! dependency is retried, budgeted and broken; the code says only which
//! dependency the client calls.
//!
//! Run with `cargo run -p rebound-http --features config --example policy_file`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::{http::StatusCode, routing::get, Router};
use rebound::config::Policies;
use rebound_http::{RetryMiddlewareBuilder, RetryReport};

/// As a service keeps it in `policies.toml`.
const POLICIES: &str = r#"
[dependencies.inventory.retry]
max_attempts = 3
attempt_timeout = "500ms"
total_timeout = "2s"
backoff = { kind = "exponential", base = "10ms", max_delay = "200ms", jitter = "full" }
budget = { kind = "ratio", ratio = 0.1 }

# The dependency's breaker: one place, guarding every attempt (one per host).
[dependencies.inventory.breaker]
failure_ratio = 0.5
min_calls = 20
break_duration = "15s"
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A flaky local inventory service: the first call is a 503.
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let app = Router::new().route(
        "/stock/17",
        get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err((StatusCode::SERVICE_UNAVAILABLE, "busy"))
                } else {
                    Ok("42")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // In a service: Policies::from_path("policies.toml")?
    let policies = Policies::from_toml_str(POLICIES)?;
    let middleware = RetryMiddlewareBuilder::from_policies(&policies, "inventory")?.build()?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware.clone())
        .build();

    let response = client.get(format!("http://{addr}/stock/17")).send().await?;
    let report = RetryReport::of(&response).expect("it was retried");
    println!(
        "dependency={} host={} attempts={} stop={}",
        report.dependency(),
        report.host(),
        report.attempts(),
        report.stop()
    );
    assert_eq!(report.dependency(), "inventory");
    assert_eq!(report.attempts(), 2);
    assert_eq!(response.text().await?, "42");

    // The host's breaker came from `[dependencies.inventory.breaker]`.
    let host = middleware
        .host(&addr.to_string())
        .expect("the host has state");
    let breaker = host.breaker().expect("a breaker per host");
    println!(
        "breaker: dependency={} host={:?} state={:?}",
        breaker.dependency(),
        breaker.host(),
        breaker.state()
    );
    Ok(())
}
