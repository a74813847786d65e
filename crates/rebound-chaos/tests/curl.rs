//! The `curl` command through the proxy: it sees the injected statuses and
//! headers, honours `Retry-After` with `--retry`, and reports the resets
//! and timeouts the faults cause with its documented exit codes.

mod common;

use std::process::Output;

use common::{have, proxy, Upstream};
use rebound_chaos::FaultKind;

async fn curl(args: &[&str]) -> Output {
    tokio::process::Command::new("curl")
        .args(["--noproxy", "*", "--no-progress-meter"])
        .args(args)
        .output()
        .await
        .expect("curl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn curl_sees_the_injected_status_and_body() {
    if !have("curl", &["curl", "--version"]) {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "error status=502").await;
    let out = curl(&["-i", &format!("{}/stock", proxy.url())]).await;
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{stdout}"
    );
    assert!(stdout.contains("x-rebound-chaos: error\r\n"), "{stdout}");
    assert!(
        stdout.ends_with("rebound chaos: injected 502 Bad Gateway (fault `error`)\n"),
        "{stdout}"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn curl_retry_honours_retry_after() {
    if !have("curl", &["curl", "--version"]) {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "throttle status=503 retry_after=2s times=1").await;
    let started = std::time::Instant::now();
    let out = curl(&[
        "--retry",
        "2",
        "-w",
        "%{http_code}",
        &format!("{}/stock", proxy.url()),
    ])
    .await;
    let stderr = text(&out.stderr);
    // curl names the wait it took: the header's 2 s, not its own first
    // backoff of 1 s.
    assert!(stderr.contains("Will retry in 2 seconds"), "{stderr}");
    assert!(text(&out.stdout).ends_with("200"), "{}", text(&out.stdout));
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert_eq!(
        (proxy.counts().injected(FaultKind::Throttle), up.hits()),
        (1, 1)
    );
}

#[tokio::test]
async fn curl_reports_a_reset_before_the_upstream_ran() {
    if !have("curl", &["curl", "--version"]) {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "reset").await;
    let out = curl(&[&format!("{}/stock", proxy.url())]).await;
    // 56: failure receiving network data (connection reset by peer).
    assert_eq!(out.status.code(), Some(56), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("reset by peer"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn curl_reports_a_dropped_answer_after_the_upstream_ran() {
    if !have("curl", &["curl", "--version"]) {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "drop_response").await;
    let out = curl(&[
        "-X",
        "POST",
        "-d",
        "sku=17",
        &format!("{}/reserve", proxy.url()),
    ])
    .await;
    assert_eq!(out.status.code(), Some(56), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(up.hits(), 1);
    assert_eq!(up.seen()[0].body, "sku=17");
}

#[tokio::test]
async fn curl_times_out_on_a_blackhole() {
    if !have("curl", &["curl", "--version"]) {
        return;
    }
    let up = Upstream::start().await;
    let proxy = proxy(&up, "blackhole").await;
    let out = curl(&["--max-time", "0.3", &format!("{}/stock", proxy.url())]).await;
    // 28: operation timed out.
    assert_eq!(out.status.code(), Some(28), "{}", text(&out.stderr));
    assert_eq!(up.hits(), 0);
    assert_eq!(proxy.counts().injected(FaultKind::Blackhole), 1);
}
