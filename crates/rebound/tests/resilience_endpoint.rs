//! `/metrics` and `/resilience` served by axum over a real socket, read
//! with reqwest: the Prometheus page describes every series and shows them
//! at zero before the first failure; the state endpoint lists the breaker
//! before its first call.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use rebound::{CircuitBreaker, RetryBudget, RetryPolicy};

#[tokio::test]
async fn prometheus_and_state_endpoints_over_a_socket() {
    // One line: the recorder, before the policies.
    let metrics = rebound::telemetry::prometheus::install().expect("no recorder yet");
    let breaker = CircuitBreaker::consecutive_failures(1)
        .dependency("endpoint-inventory")
        .build()
        .unwrap();
    let _retry = RetryPolicy::builder()
        .dependency("endpoint-inventory")
        .attempt_timeout(Duration::from_millis(300))
        .budget(RetryBudget::ratio(0.1).build().unwrap())
        .breaker(breaker.clone())
        .build()
        .unwrap();

    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/resilience", get(rebound::state::axum::handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let get_text = |path: &str| {
        let req = client.get(format!("http://{addr}{path}"));
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success());
            resp.text().await.unwrap()
        }
    };

    let page = get_text("/metrics").await;
    assert!(
        page.contains("# HELP retry_attempts_total Retries made"),
        "{page}"
    );
    assert!(
        page.contains("# TYPE circuit_breaker_state gauge"),
        "{page}"
    );
    for series in [
        r#"retry_attempts_total{dependency="endpoint-inventory"} 0"#,
        r#"retry_exhausted_total{dependency="endpoint-inventory",reason="breaker_open"} 0"#,
        r#"retry_budget_exhausted_total{dependency="endpoint-inventory"} 0"#,
        r#"circuit_breaker_open_total{dependency="endpoint-inventory"} 0"#,
        r#"circuit_breaker_state{dependency="endpoint-inventory"} 0"#,
    ] {
        assert!(page.contains(series), "{series} missing:\n{page}");
    }

    let state: serde_json::Value = serde_json::from_str(&get_text("/resilience").await).unwrap();
    let inventory = &state["dependencies"]["endpoint-inventory"];
    assert_eq!(inventory["breakers"][0]["state"], "closed", "{state:#}");
    assert_eq!(inventory["budgets"][0]["kind"], "ratio", "{state:#}");

    // A failure opens the breaker: both pages follow.
    breaker.try_acquire().unwrap().failure();
    let state: serde_json::Value = serde_json::from_str(&get_text("/resilience").await).unwrap();
    assert_eq!(
        state["dependencies"]["endpoint-inventory"]["breakers"][0]["state"],
        "open"
    );
    let page = get_text("/metrics").await;
    assert!(
        page.contains(r#"circuit_breaker_open_total{dependency="endpoint-inventory"} 1"#),
        "{page}"
    );
    assert!(
        page.contains(r#"circuit_breaker_state{dependency="endpoint-inventory"} 1"#),
        "{page}"
    );
    server.abort();
}
