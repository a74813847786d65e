//! Python's `requests` with urllib3's `Retry` through the proxy: it honours
//! `Retry-After` in both forms, retries an injected 5xx, and — like any
//! client — cannot tell whether a write whose answer was dropped ran.
//!
//! Needs `python3` with `requests` (CI installs it from PyPI).

mod common;

use std::time::Duration;

use common::{have, proxy, Upstream};
use rebound_chaos::FaultKind;
use serde_json::Value;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/retry_client.py");

fn available() -> bool {
    have(
        "python3 with requests",
        &["python3", "-c", "import requests, urllib3"],
    )
}

async fn run(method: &str, url: &str) -> Value {
    let out = tokio::process::Command::new("python3")
        .args([CLIENT, method, url])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn elapsed(v: &Value) -> Duration {
    Duration::from_secs_f64(v["elapsed"].as_f64().unwrap())
}

#[tokio::test]
async fn urllib3_waits_the_seconds_retry_after_asks() {
    if !available() {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "throttle status=503 retry_after=1s times=1").await;
    let v = run("GET", &format!("{}/stock", proxy.url())).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["retried"], serde_json::json!([503]));
    // urllib3's own backoff is 0 here: only the header made it wait.
    assert!(elapsed(&v) >= Duration::from_secs(1), "{v}");
    assert_eq!(
        (proxy.counts().injected(FaultKind::Throttle), up.hits()),
        (1, 1)
    );
}

#[tokio::test]
async fn urllib3_waits_until_the_http_date_retry_after_names() {
    if !available() {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(
        &up,
        "throttle status=429 retry_after=1s retry_after_format=http-date times=1",
    )
    .await;
    let v = run("GET", &format!("{}/stock", proxy.url())).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["retried"], serde_json::json!([429]));
    // The date is at least 1 s after the proxy sent it (rounded up to a
    // whole second); urllib3 sleeps until then by its own clock.
    assert!(elapsed(&v) >= Duration::from_millis(900), "{v}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn urllib3_retries_injected_errors() {
    if !available() {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "error status=500 times=2").await;
    let v = run("GET", &format!("{}/stock", proxy.url())).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["retried"], serde_json::json!([500, 500]));
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn a_dropped_answer_is_a_connection_error_after_the_write_ran() {
    if !available() {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "drop_response methods=POST").await;
    let v = run("POST", &format!("{}/reserve", proxy.url())).await;
    assert_eq!(v["error"], "ConnectionError", "{v}");
    // urllib3 does not repeat a POST after a read error, rightly: the
    // upstream already ran it once.
    assert_eq!(up.hits(), 1);
    assert_eq!(up.seen()[0].body, "sku=17");
}
