//! A Prometheus `/metrics` page and a `/resilience` state endpoint in a few
//! lines: the exporter is installed first, so every series of the policies
//! built from the file reads 0 before the first failure, with its `# HELP`
//! text; the state endpoint lists every breaker and budget by dependency.
//!
//! ```text
//! cargo run -p rebound --features prometheus,axum --example prometheus            # prints both pages
//! cargo run -p rebound --features prometheus,axum --example prometheus -- --serve  # keeps serving on :9100
//! ```

use axum::routing::get;
use axum::Router;
use rebound::config::Policies;

const POLICIES: &str = r#"
[dependencies.inventory.retry]
max_attempts = 3
attempt_timeout = "300ms"
total_timeout = "2s"
budget = { kind = "ratio", ratio = 0.1 }
breaker = { failure_ratio = 0.5, min_calls = 10 }
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The exporter, before any policy is built.
    let metrics = rebound::telemetry::prometheus::install()?;

    // 2. The policies; one failing call, so one series moves.
    let policies = Policies::from_toml_str(POLICIES)?;
    let retry = policies
        .dependency("inventory")
        .and_then(|d| d.retry_policy("inventory").transpose())
        .expect("the file has a retry policy")?;
    let failed = retry
        .retry(|| async { Err::<(), _>(std::io::Error::other("connection reset")) })
        .await;
    println!("one call: {}", failed.unwrap_err());

    // 3. The endpoints.
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/resilience", get(rebound::state::axum::handler));
    let serve = std::env::args().any(|a| a == "--serve");
    let listener = tokio::net::TcpListener::bind(if serve {
        "127.0.0.1:9100"
    } else {
        "127.0.0.1:0"
    })
    .await?;
    let addr = listener.local_addr()?;
    println!("serving http://{addr}/metrics and http://{addr}/resilience");
    if serve {
        axum::serve(listener, app).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    for path in ["/metrics", "/resilience"] {
        let page = reqwest::get(format!("http://{addr}{path}"))
            .await?
            .text()
            .await?;
        println!("\n--- GET {path}\n{page}");
    }
    Ok(())
}
