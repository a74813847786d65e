//! The control API over loopback: reading and changing faults while the
//! proxy runs, the counters as Prometheus text, and clear 4xx answers to
//! bad requests.

mod common;

use common::{client, Upstream};
use rebound::Clock;
use rebound_chaos::{ChaosProxy, FaultKind, FaultSet, Timeline};
use serde_json::Value;

async fn start(up: &Upstream, faults: &str) -> (ChaosProxy, String) {
    let proxy = ChaosProxy::builder(&up.url)
        .faults(FaultSet::from_specs(faults).unwrap())
        .control_api("127.0.0.1:0".parse().unwrap())
        .seed(1)
        .start()
        .await
        .unwrap();
    let control = format!("http://{}", proxy.control_addr().unwrap());
    (proxy, control)
}

async fn json(r: reqwest::Response) -> Value {
    assert_eq!(r.headers()["content-type"], "application/json");
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn get_faults_tells_what_is_in_force() {
    let up = Upstream::start().await;
    let (_proxy, control) = start(&up, "error status=503 rate=0.5 methods=POST").await;
    let v = json(
        client()
            .get(format!("{control}/faults"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["source"], "startup");
    assert_eq!(v["phase"], Value::Null);
    assert_eq!(
        v["faults"],
        serde_json::json!([{"kind": "error", "status": 503, "rate": 0.5, "methods": ["POST"]}])
    );
}

#[tokio::test]
async fn put_post_delete_and_reset_change_what_requests_meet() {
    let up = Upstream::start().await;
    let (proxy, control) = start(&up, "").await;
    let c = client();
    let status = || async { c.get(proxy.url()).send().await.unwrap().status().as_u16() };
    assert_eq!(status().await, 200);

    // PUT as a spec line.
    let r = c
        .put(format!("{control}/faults"))
        .body("error status=502")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(v["source"], "control");
    assert_eq!(status().await, 502);

    // PUT as JSON replaces.
    let r = c
        .put(format!("{control}/faults"))
        .body(r#"{"faults": [{"kind": "throttle", "retry_after": "7s"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(proxy.url()).send().await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "7")
    );

    // POST adds after what is there (the throttle still wins).
    let v = json(
        c.post(format!("{control}/faults"))
            .body("latency delay=0s\nreset")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["faults"].as_array().unwrap().len(), 3);

    // Reset: healthy.
    let v = json(c.post(format!("{control}/reset")).send().await.unwrap()).await;
    assert_eq!(
        (v["source"].as_str(), v["faults"].as_array().unwrap().len()),
        (Some("control"), 0)
    );
    assert_eq!(status().await, 200);

    // DELETE: back to the startup faults (none here).
    let v = json(c.delete(format!("{control}/faults")).send().await.unwrap()).await;
    assert_eq!(v["source"], "startup");
    assert_eq!(status().await, 200);

    let n = proxy.counts();
    assert_eq!(
        (
            n.injected(FaultKind::Error),
            n.injected(FaultKind::Throttle),
            n.passed()
        ),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn the_timeline_can_be_read_and_restarted() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .timeline(Timeline::from_toml_str(rebound_chaos::EXAMPLE_TIMELINE, "t").unwrap())
        .control_api("127.0.0.1:0".parse().unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    let control = format!("http://{}", proxy.control_addr().unwrap());
    let c = client();
    let t = json(c.get(format!("{control}/timeline")).send().await.unwrap()).await;
    assert_eq!(t["phases"][0]["name"], "healthy");
    assert_eq!(t["phases"][1]["faults"][0]["kind"], "reset");

    time.set_elapsed(std::time::Duration::from_secs(45));
    let v = json(c.get(format!("{control}/faults")).send().await.unwrap()).await;
    assert_eq!(
        (v["source"].as_str(), v["phase"].as_str()),
        (Some("timeline"), Some("outage"))
    );
    assert_eq!(v["elapsed"], "45s");
    assert_eq!(v["next_change"], "1m");

    let v = json(
        c.post(format!("{control}/timeline/restart"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (v["phase"].as_str(), v["elapsed"].as_str()),
        (Some("healthy"), Some("0s"))
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_help_and_type() {
    let up = Upstream::start().await;
    let (proxy, control) = start(&up, "error status=503 times=2").await;
    let c = client();
    for _ in 0..5 {
        c.get(proxy.url()).send().await.unwrap();
    }
    let r = c.get(format!("{control}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for expected in [
        "# HELP chaos_requests_total ",
        "# TYPE chaos_requests_total counter\nchaos_requests_total 5\n",
        "# TYPE chaos_requests_passed_total counter\nchaos_requests_passed_total 3\n",
        "chaos_upstream_requests_total 3\n",
        "# TYPE chaos_faults_injected_total counter\n",
        "chaos_faults_injected_total{fault=\"error\"} 2\n",
        "chaos_faults_injected_total{fault=\"drop_response\"} 0\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[tokio::test]
async fn bad_requests_get_4xx_answers_that_say_why() {
    let up = Upstream::start().await;
    let (proxy, control) = start(&up, "reset rate=0").await;
    let c = client();
    let send = |method: reqwest::Method, path: &str, body: &'static str| {
        c.request(method, format!("{control}{path}"))
            .body(body)
            .send()
    };
    use reqwest::Method;
    for (body, says) in [
        (
            "error rate=1.5",
            "PUT /faults:1: rate: 1.5 is outside [0, 1]",
        ),
        (
            "latency delay=200",
            "PUT /faults:1: delay: `200` has no unit",
        ),
        (
            "reset\nexplode",
            "PUT /faults:2: kind: unknown fault kind `explode`",
        ),
        (
            r#"{"faults": [{"kind": "error", "status": "x"}]}"#,
            "PUT /faults:1: faults[0].status: invalid type",
        ),
        (
            r#"[{"kind": "throttle"}]"#,
            "PUT /faults: [0].retry_after: a throttle fault needs `retry_after`",
        ),
        (
            r#"{"faults": [}"#,
            "PUT /faults:1: faults[0]: expected value",
        ),
        ("", "PUT /faults: empty body"),
    ] {
        let r = send(Method::PUT, "/faults", body).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.unwrap();
        assert!(
            text.starts_with(&format!("rebound chaos: {says}")),
            "{body}: {text}"
        );
    }
    // Nothing bad was put in force.
    assert_eq!(proxy.control().current().faults().len(), 1);

    let r = c
        .put(format!("{control}/faults"))
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not UTF-8"));

    let r = c
        .put(format!("{control}/faults"))
        .body("reset\n".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = send(Method::GET, "/nowhere", "").await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("GET    /faults"));

    let r = send(Method::DELETE, "/metrics", "").await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");

    let r = send(Method::GET, "/reset", "").await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["allow"].to_str().unwrap()),
        (405, "POST")
    );

    let r = send(Method::POST, "/timeline/restart", "").await.unwrap();
    assert_eq!(r.status(), 409);
    let r = send(Method::GET, "/timeline", "").await.unwrap();
    assert_eq!(r.status(), 404);

    let r = send(Method::GET, "/", "").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .starts_with("rebound chaos control API"));
}
