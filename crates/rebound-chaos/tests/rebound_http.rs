//! reqwest with rebound-http's `RetryMiddleware` through the proxy: the
//! middleware honours the proxy's `Retry-After` (both forms), retries its
//! resets, and — with idempotency keys — repeats a write whose answer was
//! dropped with the same key. The middleware's waits are on a manual clock,
//! so they take no real time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{proxy, Upstream};
use rebound::{Backoff, Clock, RetryPolicy};
use rebound_chaos::FaultKind;
use rebound_http::{RetryMiddleware, RetryReport};
use reqwest_middleware::ClientWithMiddleware;

/// What the middleware's retry hook saw: (status, server delay, delay).
type Notices = Arc<Mutex<Vec<(Option<u16>, Option<Duration>, Duration)>>>;

fn retrying_client(keys: bool) -> (ClientWithMiddleware, Notices) {
    let (clock, _time) = Clock::manual();
    let notices: Notices = Arc::default();
    let seen = notices.clone();
    let middleware = RetryMiddleware::builder()
        .policy(
            RetryPolicy::builder()
                .max_attempts(3)
                .backoff(Backoff::constant(Duration::from_millis(100)))
                .clock(clock),
        )
        .generate_idempotency_keys(keys)
        .on_retry(move |n| {
            seen.lock()
                .unwrap()
                .push((n.status.map(|s| s.as_u16()), n.server_delay, n.delay));
        })
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(common::client())
        .with(middleware)
        .build();
    (client, notices)
}

#[tokio::test]
async fn the_middleware_waits_the_seconds_the_proxy_asks() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "throttle status=429 retry_after=5s times=1").await;
    let (client, notices) = retrying_client(false);
    let r = client
        .get(format!("{}/stock", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(RetryReport::of(&r).unwrap().attempts(), 2);
    assert_eq!(
        notices.lock().unwrap().as_slice(),
        [(
            Some(429),
            Some(Duration::from_secs(5)),
            Duration::from_secs(5)
        )]
    );
    assert_eq!(up.hits(), 1);
    assert_eq!(proxy.counts().injected(FaultKind::Throttle), 1);
}

#[tokio::test]
async fn the_middleware_waits_until_the_date_the_proxy_names() {
    let up = Upstream::start().await;
    let proxy = proxy(
        &up,
        "throttle status=503 retry_after=3s retry_after_format=http-date times=1",
    )
    .await;
    let (client, notices) = retrying_client(false);
    let r = client
        .get(format!("{}/stock", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let notices = notices.lock().unwrap();
    let (status, server_delay, delay) = notices[0];
    assert_eq!(status, Some(503));
    // The date is 3 s ahead of the proxy's clock, rounded up to a second.
    let server_delay = server_delay.expect("the middleware read the date");
    assert!(
        server_delay > Duration::from_secs(2) && server_delay <= Duration::from_secs(4),
        "{server_delay:?}"
    );
    assert!(delay >= server_delay);
}

#[tokio::test]
async fn a_dropped_answer_is_retried_with_the_same_idempotency_key() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "drop_response methods=POST times=1").await;
    let (client, notices) = retrying_client(true);
    let r = client
        .post(format!("{}/reserve", proxy.url()))
        .body("sku=17")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(RetryReport::of(&r).unwrap().attempts(), 2);
    // The first attempt failed without a status: the connection was cut.
    assert_eq!(notices.lock().unwrap()[0].0, None);
    // The upstream ran the write twice, under one key: exactly what an
    // idempotent server needs to answer the second from the first.
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    let key = &seen[0].headers["idempotency-key"];
    assert_eq!(&seen[1].headers["idempotency-key"], key);
    assert_eq!(proxy.counts().injected(FaultKind::DropResponse), 1);
}

#[tokio::test]
async fn resets_are_retried_and_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "reset times=2").await;
    let (client, notices) = retrying_client(false);
    let r = client
        .get(format!("{}/stock", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(RetryReport::of(&r).unwrap().attempts(), 3);
    assert_eq!(notices.lock().unwrap().len(), 2);
    assert_eq!(up.hits(), 1);
    assert_eq!(proxy.counts().injected(FaultKind::Reset), 2);
}

#[tokio::test]
async fn an_outage_is_seen_as_attempts_times_requests() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "error status=503").await;
    let (client, _) = retrying_client(false);
    for _ in 0..4 {
        let r = client
            .get(format!("{}/stock", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(RetryReport::of(&r).unwrap().attempts(), 3);
    }
    // The proxy counted every attempt: the load a retrying client puts on
    // a dependency that is down.
    let n = proxy.counts();
    assert_eq!(
        (n.requests(), n.injected(FaultKind::Error), up.hits()),
        (12, 12, 0)
    );
}
