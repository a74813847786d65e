//! Each fault over real sockets with reqwest: the test fails if the fault
//! is not injected as specified. Waits are on a manual clock the test
//! moves; real time is only waited on to let another task make progress.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{client, proxy, still_pending, until, within, Upstream};
use rebound::{Clock, RandomSource};
use rebound_chaos::{ChaosProxy, FaultKind, FaultSet, Injector};

#[tokio::test]
async fn error_answers_the_status_and_the_upstream_never_sees_the_request() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "error status=502").await;
    let r = client()
        .get(format!("{}/stock/17", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-rebound-chaos"], "error");
    assert_eq!(
        r.text().await.unwrap(),
        "rebound chaos: injected 502 Bad Gateway (fault `error`)\n"
    );
    assert_eq!(up.hits(), 0);
    let n = proxy.counts();
    assert_eq!(
        (n.requests(), n.injected(FaultKind::Error), n.passed()),
        (1, 1, 0)
    );
    assert_eq!(n.upstream_requests(), 0);
}

#[tokio::test]
async fn a_rate_hits_its_share_and_the_rest_pass() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "error status=503 rate=0.25").await;
    let c = client();
    let mut failed = 0;
    for _ in 0..200 {
        let r = c.get(format!("{}/x", proxy.url())).send().await.unwrap();
        if r.status() == 503 {
            failed += 1;
        } else {
            assert_eq!(r.status(), 200);
        }
    }
    // Seeded: the same share every run, near the rate.
    assert!((30..=70).contains(&failed), "{failed}");
    let n = proxy.counts();
    assert_eq!(n.injected(FaultKind::Error), failed);
    assert_eq!(n.passed(), 200 - failed);
    assert_eq!(up.hits(), 200 - failed);
}

#[tokio::test]
async fn times_fails_exactly_the_first_requests() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "error status=500 times=2").await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(c.get(proxy.url()).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 200, 200]);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn throttle_sends_retry_after_in_seconds() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "throttle status=429 retry_after=5s").await;
    let r = client().get(proxy.url()).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(r.headers()["x-rebound-chaos"], "throttle");
    assert_eq!(up.hits(), 0);
    assert_eq!(proxy.counts().injected(FaultKind::Throttle), 1);
}

#[tokio::test]
async fn throttle_sends_retry_after_as_an_http_date() {
    let up = Upstream::start().await;
    let proxy = proxy(
        &up,
        "throttle status=503 retry_after=30s retry_after_format=http-date",
    )
    .await;
    let before = std::time::SystemTime::now();
    let r = client().get(proxy.url()).send().await.unwrap();
    let after = std::time::SystemTime::now();
    assert_eq!(r.status(), 503);
    let date = httpdate::parse_http_date(r.headers()["retry-after"].to_str().unwrap()).unwrap();
    // The proxy's wall clock plus 30 s, rounded up to a whole second.
    assert!(
        date >= before + Duration::from_secs(29),
        "{date:?} {before:?}"
    );
    assert!(
        date <= after + Duration::from_secs(31),
        "{date:?} {after:?}"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn reset_cuts_the_connection_before_the_upstream_sees_the_request() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "reset").await;
    let err = client()
        .post(format!("{}/orders", proxy.url()))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err:?}");

    // On a raw socket: a TCP reset, and not one byte of an answer.
    let addr = proxy.addr();
    let outcome = tokio::task::spawn_blocking(move || {
        raw_exchange(addr, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(outcome, RawOutcome::Reset);
    assert_eq!(up.hits(), 0);
    let n = proxy.counts();
    assert_eq!(
        (n.injected(FaultKind::Reset), n.upstream_requests()),
        (2, 0)
    );
}

#[tokio::test]
async fn drop_response_lets_the_upstream_run_then_cuts_the_client_off() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "drop_response methods=POST").await;
    let err = client()
        .post(format!("{}/reserve", proxy.url()))
        .header("idempotency-key", "k-1")
        .body("sku=17")
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err:?}");
    // The upstream ran the request, body and all...
    assert_eq!(up.hits(), 1);
    assert_eq!(up.seen()[0].body, "sku=17");
    assert_eq!(up.seen()[0].headers["idempotency-key"], "k-1");
    // ...and the client got no answer: a reset, no bytes.
    let addr = proxy.addr();
    let outcome = tokio::task::spawn_blocking(move || {
        raw_exchange(
            addr,
            b"POST /reserve HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        )
    })
    .await
    .unwrap();
    assert_eq!(outcome, RawOutcome::Reset);
    assert_eq!(up.hits(), 2);
    // A GET is out of the fault's scope and passes.
    let r = client().get(proxy.url()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let n = proxy.counts();
    assert_eq!(
        (
            n.injected(FaultKind::DropResponse),
            n.passed(),
            n.upstream_requests()
        ),
        (2, 1, 3)
    );
}

#[tokio::test]
async fn latency_holds_the_request_until_the_clock_reaches_the_delay() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .faults(FaultSet::from_specs("latency delay=200ms").unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    let url = proxy.url();
    let request = tokio::spawn(async move { client().get(url).send().await });
    until("the latency is injected", || {
        proxy.counts().injected(FaultKind::Latency) == 1
    })
    .await;
    time.advance(Duration::from_millis(199));
    assert!(
        still_pending(&request, 50).await,
        "answered before 200 ms had passed"
    );
    assert_eq!(up.hits(), 0, "forwarded before 200 ms had passed");
    time.advance(Duration::from_millis(1));
    let r = within("the delayed answer", request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-rebound-chaos"], "latency=200ms");
    assert_eq!(up.hits(), 1);
    assert_eq!(proxy.counts().injected_delay(), Duration::from_millis(200));
}

#[tokio::test]
async fn response_latency_runs_the_upstream_first_and_holds_the_answer() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .faults(FaultSet::from_specs("latency delay=3s at=response").unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    let url = proxy.url();
    let request = tokio::spawn(async move { client().post(url).body("x").send().await });
    until("the upstream ran", || up.hits() == 1).await;
    assert!(
        still_pending(&request, 50).await,
        "answered before the delay"
    );
    time.advance(Duration::from_secs(3));
    let r = within("the delayed answer", request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn latency_draws_follow_the_seed() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let spec = "latency distribution=lognormal median=100ms sigma=0.8 max=2s";
    let proxy = ChaosProxy::builder(&up.url)
        .faults(FaultSet::from_specs(spec).unwrap())
        .clock(clock)
        .seed(42)
        .start()
        .await
        .unwrap();
    // The same seed, drawn in the same order, outside the proxy.
    let expected = Injector::new(FaultSet::from_specs(spec).unwrap());
    let random = RandomSource::seeded(42);
    let c = client();
    let mut delays = Vec::new();
    for i in 1..=8 {
        let delay = expected
            .plan(&http::Method::GET, "/", &mut random.rng())
            .request_delay();
        let url = proxy.url();
        let c = c.clone();
        let request = tokio::spawn(async move { c.get(url).send().await });
        until("the latency is injected", || {
            proxy.counts().injected(FaultKind::Latency) == i
        })
        .await;
        // Exactly the seeded draw releases it: a proxy drawing another
        // delay would hang here (or answer with another header).
        time.advance(delay);
        let r = within("the delayed answer", request)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            r.headers()["x-rebound-chaos"],
            format!("latency={}", fmt(delay)).as_str()
        );
        delays.push(delay);
    }
    delays.sort();
    assert!(delays[0] < delays[7], "{delays:?}");
    assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
}

/// A duration as the proxy writes it: the largest unit that keeps it
/// exact (`1.5s`, `250ms`, `12.345678ms`).
fn fmt(d: Duration) -> String {
    let n = d.as_nanos();
    for (unit, per, digits) in [
        ("s", 1_000_000_000u128, 9usize),
        ("ms", 1_000_000, 6),
        ("us", 1_000, 3),
    ] {
        if n >= per {
            let fraction = format!("{:0digits$}", n % per);
            let fraction = fraction.trim_end_matches('0');
            let dot = if fraction.is_empty() { "" } else { "." };
            return format!("{}{dot}{fraction}{unit}", n / per);
        }
    }
    format!("{n}ns")
}

#[tokio::test]
async fn slow_body_trickles_the_answer_piece_by_piece() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .faults(FaultSet::from_specs("slow_body chunk_bytes=4 interval=1s").unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    let mut r = client()
        .get(format!("{}/bytes/10", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "10");
    assert_eq!(r.headers()["x-rebound-chaos"], "slow_body");
    let mut got = Vec::new();
    got.extend_from_slice(&within("piece 1", r.chunk()).await.unwrap().unwrap());
    assert_eq!(got, b"abcd");
    for (piece, want) in [(2, &b"abcdefgh"[..]), (3, b"abcdefghij")] {
        // The next piece waits for the clock.
        let next = tokio::spawn(async move {
            let c = r.chunk().await;
            (r, c)
        });
        assert!(
            still_pending(&next, 50).await,
            "piece {piece} came before its interval"
        );
        time.advance(Duration::from_secs(1));
        let (back, chunk) = within("the next piece", next).await.unwrap();
        r = back;
        got.extend_from_slice(&chunk.unwrap().unwrap());
        assert_eq!(got, want);
    }
    assert!(r.chunk().await.unwrap().is_none());
}

#[tokio::test]
async fn blackhole_accepts_and_never_answers() {
    let up = Upstream::start().await;
    let (clock, time) = Clock::manual();
    let proxy = ChaosProxy::builder(&up.url)
        .faults(FaultSet::from_specs("blackhole").unwrap())
        .clock(clock)
        .start()
        .await
        .unwrap();
    let mut socket = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    until("the blackhole is injected", || {
        proxy.counts().injected(FaultKind::Blackhole) == 1
    })
    .await;
    time.advance(Duration::from_secs(3600));
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(100), socket.read(&mut buf)).await;
    assert!(read.is_err(), "the blackhole answered: {read:?}");
    assert_eq!(up.hits(), 0);
    // Shutting the proxy down closes the connection, still unanswered.
    proxy.shutdown().await;
    let n = within("the close", socket.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn scopes_choose_methods_and_paths() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "error status=503 methods=POST path_prefix=/orders").await;
    let c = client();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(
            c.post(format!("{}/orders/17", proxy.url()))
                .send()
                .await
                .unwrap()
        ),
        503
    );
    assert_eq!(
        status(
            c.get(format!("{}/orders/17", proxy.url()))
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            c.post(format!("{}/stock", proxy.url()))
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(up.hits(), 2);
}

#[derive(Debug, PartialEq)]
enum RawOutcome {
    Reset,
    Eof,
    Answered(String),
}

/// Sends `request` on a fresh socket and reads until the proxy closes it.
fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> RawOutcome {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) if got.is_empty() => return RawOutcome::Eof,
            Ok(0) => return RawOutcome::Answered(String::from_utf8_lossy(&got).into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && got.is_empty() => {
                return RawOutcome::Reset
            }
            Err(e) => panic!("{e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

#[tokio::test]
async fn absurd_delays_wait_forever_rather_than_overflow() {
    let up = Upstream::start().await;
    // Two latencies whose sum overflows a Duration, an Instant and the
    // counter of added delay: the request waits (it is not cut off by a
    // panic in its connection task), and the proxy carries on.
    let proxy = proxy(
        &up,
        "latency delay=5000000000000000h path_prefix=/slow\nlatency delay=5000000000000000h path_prefix=/slow",
    )
    .await;
    let url = format!("{}/slow", proxy.url());
    let slow = tokio::spawn(async move { client().get(url).send().await });
    until("the latency is injected", || {
        proxy.counts().injected(FaultKind::Latency) == 1
    })
    .await;
    assert!(still_pending(&slow, 50).await, "{:?}", slow.await);
    assert_eq!(
        proxy.counts().injected_delay(),
        Duration::from_nanos(u64::MAX)
    );
    let r = client()
        .get(format!("{}/fast", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 1);
}
