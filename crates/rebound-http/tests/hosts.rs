//! Per-host state over real sockets: budgets, breakers, sharing across
//! clones, bounded memory. Time is a manual clock injected into the policy,
//! the budgets and the breakers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, counter, status, Action, TestServer};
use http::StatusCode;
use rebound::breaker::State;
use rebound::{Backoff, CircuitBreaker, Clock, Jitter, RetryBudget, RetryPolicy, Stop};
use rebound_http::{RetryMiddleware, RetryReport};

fn policy(clock: &Clock) -> rebound::RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_attempts(3)
        .clock(clock.clone())
        .backoff(Backoff::constant(Duration::from_millis(10)).with_jitter(Jitter::None))
}

#[tokio::test]
async fn under_total_failure_the_budget_caps_attempts_per_request() {
    const REQUESTS: usize = 200;
    const RATIO: f64 = 0.1;
    const FLOOR_PER_SECOND: f64 = 1.0;
    const WINDOW: Duration = Duration::from_secs(10);
    let server = TestServer::start(|_, _| status(503)).await;
    let (clock, _) = Clock::manual();
    common::metrics();
    let budget_clock = clock.clone();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .budget_per_host(move || {
            RetryBudget::ratio(RATIO)
                .min_retries_per_second(FLOOR_PER_SECOND)
                .window(WINDOW)
                .clock(budget_clock.clone())
                .build()
        })
        .build()
        .unwrap();
    let c = client(mw.clone());
    let mut stops = Vec::new();
    for _ in 0..REQUESTS {
        let res = c.get(server.url("/")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        stops.push(RetryReport::of(&res).unwrap().stop());
    }
    // The whole run fits in one budget window (≤ 2 × 10 ms of waiting per
    // request on the manual clock), so the bound is over the whole run:
    // attempts ≤ requests × (1 + ratio) + floor.
    let floor = FLOOR_PER_SECOND * WINDOW.as_secs_f64();
    let allowed = REQUESTS as f64 * (1.0 + RATIO) + floor;
    let attempts = server.count();
    assert!(
        attempts as f64 <= allowed,
        "{attempts} attempts for {REQUESTS} requests; the budget allows {allowed}"
    );
    assert!(attempts > REQUESTS, "some retries were allowed");
    assert!(
        stops.contains(&Stop::BudgetExhausted),
        "and some were refused"
    );
    let host = server.authority();
    assert!(counter("retry_budget_exhausted_total", &host, None) > 0);
    assert_eq!(
        counter("retry_attempts_total", &host, None),
        (attempts - REQUESTS) as u64
    );
}

#[tokio::test]
async fn a_dead_hosts_breaker_opens_while_another_host_keeps_working() {
    let dead = TestServer::start(|i, _| if i < 3 { Action::Reset } else { status(200) }).await;
    let alive = TestServer::start(|_, _| status(200)).await;
    let (clock, time) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .breaker_per_host(
            CircuitBreaker::consecutive_failures(3)
                .break_duration(Duration::from_secs(30))
                .clock(clock.clone()),
        )
        .build()
        .unwrap();
    let c = client(mw.clone());

    // Three resets in a row: the breaker opens.
    let err = c.get(dead.url("/")).send().await.unwrap_err();
    assert!(err.is_middleware());
    assert_eq!(dead.count(), 3);
    let dead_host = mw.host(&dead.authority()).unwrap();
    assert_eq!(dead_host.breaker().unwrap().state(), State::Open);

    for _ in 0..5 {
        // The dead host fails fast, without a connection...
        let err = c.get(dead.url("/")).send().await.unwrap_err();
        let reqwest_middleware::Error::Middleware(e) = err else {
            panic!("expected the middleware's error");
        };
        let e = e.downcast_ref::<rebound_http::Error>().unwrap();
        assert_eq!((e.stop(), e.attempts()), (Stop::BreakerOpen, 0));
        assert!(e.to_string().contains("circuit breaker open"), "{e}");
        // ...while the other host is served as usual.
        let res = c.get(alive.url("/")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // A POST (not retryable without a key) is refused by the breaker too,
    // and the error says so rather than blaming the missing key.
    let err = c
        .post(dead.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(e) = err else {
        panic!("expected the middleware's error");
    };
    let e = e.downcast_ref::<rebound_http::Error>().unwrap();
    assert_eq!((e.stop(), e.not_retried()), (Stop::BreakerOpen, None));
    assert_eq!(dead.count(), 3, "no request reached the dead host");
    assert_eq!(alive.count(), 5);
    let alive_host = mw.host(&alive.authority()).unwrap();
    assert_eq!(alive_host.breaker().unwrap().state(), State::Closed);

    // After the break, one probe goes through; it succeeds and closes.
    time.advance(Duration::from_secs(30));
    let res = c.get(dead.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(dead_host.breaker().unwrap().state(), State::Closed);
}

#[tokio::test]
async fn host_state_is_shared_by_clones_of_the_client() {
    let server = TestServer::start(|_, _| status(200)).await;
    let (clock, _) = Clock::manual();
    let budget_clock = clock.clone();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .budget_per_host(move || RetryBudget::ratio(0.1).clock(budget_clock.clone()).build())
        .build()
        .unwrap();
    let a = client(mw.clone());
    let b = a.clone();
    let c = client(mw.clone());
    for cl in [&a, &b, &c] {
        cl.get(server.url("/")).send().await.unwrap();
    }
    assert_eq!(mw.hosts_tracked(), 1);
    let host = mw.host(&server.authority()).unwrap();
    let rebound::BudgetSnapshot::Ratio { requests, .. } = host.budget().unwrap().snapshot() else {
        panic!("a ratio budget");
    };
    assert_eq!(requests, 3, "one budget saw all three clients' requests");
    assert_eq!(host.policy().dependency(), server.authority());
}

#[tokio::test]
async fn host_state_is_bounded_and_idle_hosts_are_evicted() {
    let servers = [
        TestServer::start(|_, _| status(200)).await,
        TestServer::start(|_, _| status(200)).await,
        TestServer::start(|_, _| status(200)).await,
    ];
    let (clock, time) = Clock::manual();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .max_hosts(2)
        .host_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let c = client(mw.clone());
    for s in &servers {
        c.get(s.url("/")).send().await.unwrap();
        time.advance(Duration::from_secs(1));
        assert!(mw.hosts_tracked() <= 2);
    }
    assert!(
        mw.host(&servers[0].authority()).is_none(),
        "least recently used went first"
    );
    assert!(mw.host(&servers[2].authority()).is_some());

    time.advance(Duration::from_secs(61));
    let before = mw.hosts_tracked();
    assert_eq!(before, 2);
    assert_eq!(mw.evict_idle_hosts(), before);
    assert_eq!(mw.hosts_tracked(), 0);
    // An evicted host starts afresh on its next request.
    c.get(servers[0].url("/")).send().await.unwrap();
    assert_eq!(mw.hosts_tracked(), 1);
}

#[tokio::test]
async fn metrics_are_labelled_by_host() {
    let flaky = TestServer::start(|i, _| if i % 2 == 0 { status(502) } else { status(200) }).await;
    let steady = TestServer::start(|_, _| status(200)).await;
    common::metrics();
    let (clock, _) = Clock::manual();
    let c = client(
        RetryMiddleware::builder()
            .policy(policy(&clock))
            .build()
            .unwrap(),
    );
    for _ in 0..3 {
        c.get(flaky.url("/")).send().await.unwrap();
        c.get(steady.url("/")).send().await.unwrap();
    }
    assert_eq!(counter("retry_attempts_total", &flaky.authority(), None), 3);
    assert_eq!(
        counter("retry_attempts_total", &steady.authority(), None),
        0
    );
}

#[tokio::test]
async fn a_policy_hook_can_tune_one_host() {
    let slow = TestServer::start(|_, _| status(503)).await;
    let other = TestServer::start(|_, _| status(503)).await;
    let (clock, _) = Clock::manual();
    let slow_host: Arc<str> = slow.authority().into();
    let mw = RetryMiddleware::builder()
        .policy(policy(&clock))
        .per_host(move |host, p| {
            Ok(if host == &*slow_host {
                p.max_attempts(5)
            } else {
                p
            })
        })
        .build()
        .unwrap();
    let c = client(mw);
    c.get(slow.url("/")).send().await.unwrap();
    c.get(other.url("/")).send().await.unwrap();
    assert_eq!((slow.count(), other.count()), (5, 3));
}
