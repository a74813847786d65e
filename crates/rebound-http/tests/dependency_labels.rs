//! One dependency, one name: every series of an HTTP dependency (retry,
//! budget, breaker, throttle, and the fallback and bulkhead the caller
//! names the same) carries `dependency = "inventory"`, with the host as a
//! separate `host` label. A real recorder over a real server on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{client, status, TestServer};
use metrics_util::debugging::DebugValue;
use rebound::fallback::Fallback;
use rebound::throttle::AdaptiveThrottle;
use rebound::RetryPolicy;
use rebound::{Backoff, Bulkhead, CircuitBreaker, Clock, Jitter, RandomSource, RetryBudget};
use rebound_http::{GiveUpExt, RetryMiddleware};

#[tokio::test]
async fn an_explicit_dependency_name_is_on_every_series_with_the_host_beside_it() {
    // Two of three attempts fail: the budget runs out, the throttle sheds
    // some attempts, the breaker opens and refuses the rest.
    let server = TestServer::start(|i, _| if i % 3 == 0 { status(200) } else { status(503) }).await;
    let host = server.authority();
    let snapshotter = common::metrics();
    let (clock, _time) = Clock::manual();
    let budget_clock = clock.clone();
    let mw = RetryMiddleware::builder()
        .dependency("inventory")
        .error_on_give_up(true)
        .policy(
            RetryPolicy::builder()
                .max_attempts(3)
                .clock(clock.clone())
                .random(RandomSource::seeded(1))
                .backoff(Backoff::constant(Duration::from_millis(10)).with_jitter(Jitter::None)),
        )
        .budget_per_host(move || {
            RetryBudget::ratio(0.1)
                .min_retries_per_second(0.1)
                .window(Duration::from_secs(10))
                .clock(budget_clock.clone())
                .build()
        })
        .throttle_per_host(
            AdaptiveThrottle::builder()
                .k(1.1)
                .clock(clock.clone())
                .random(RandomSource::seeded(2)),
        )
        .breaker_per_host(
            CircuitBreaker::builder()
                .failure_ratio(0.5)
                .min_calls(6)
                .clock(clock.clone()),
        )
        .build()
        .unwrap();
    let c = client(mw.clone());
    // The caller's own policies for the same dependency, named the same.
    let fallback = Fallback::builder().dependency("inventory").build();
    let bulkhead = Bulkhead::builder()
        .dependency("inventory")
        .max_concurrent(1)
        .build()
        .unwrap();

    let (mut served_by_fallback, mut live) = (0, 0);
    for _ in 0..60 {
        // Every give-up (a final 503, a budget, a throttle, an open
        // breaker) arrives as an error whose cause the fallback reads.
        let result = c.get(server.url("/stock")).send().await.map(|_| "live");
        let shown = fallback.call_with(result, GiveUpExt::cause, |_, _| Some("cached"));
        match shown.unwrap() {
            "cached" => served_by_fallback += 1,
            _ => live += 1,
        }
    }
    assert_eq!(served_by_fallback + live, 60);
    assert!(
        served_by_fallback > 0 && live > 0,
        "{served_by_fallback} / {live}"
    );
    let _held = bulkhead.try_acquire().unwrap();
    assert!(bulkhead.try_acquire().is_err());

    let h = mw.host(&host).expect("the host has state");
    assert_eq!(h.dependency(), "inventory");
    assert_eq!(h.breaker().unwrap().dependency(), "inventory");
    assert_eq!(h.breaker().unwrap().host(), Some(host.as_str()));

    // Every series of this test's dependency, by name, with its labels.
    let mut seen = BTreeSet::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |k: &str| {
            key.labels()
                .find(|l| l.key() == k)
                .map(|l| l.value().to_owned())
        };
        let dependency = label("dependency");
        let on_host = label("host").as_deref() == Some(host.as_str());
        if on_host {
            assert_eq!(
                dependency.as_deref(),
                Some("inventory"),
                "{} has host={host} but dependency={dependency:?}",
                key.name()
            );
        }
        assert_ne!(
            dependency.as_deref(),
            Some(host.as_str()),
            "{} is still named after the host",
            key.name()
        );
        if dependency.as_deref() != Some("inventory") {
            continue;
        }
        let counted = match value {
            DebugValue::Counter(n) => n > 0,
            DebugValue::Gauge(_) => true,
            DebugValue::Histogram(_) => true,
        };
        if counted {
            seen.insert((key.name().to_owned(), on_host));
        }
    }
    for (name, on_host) in [
        ("retry_attempts_total", true),
        ("retry_exhausted_total", true),
        ("retry_budget_exhausted_total", true),
        ("throttle_rejected_total", true),
        ("circuit_breaker_state", true),
        ("circuit_breaker_open_total", true),
        ("circuit_breaker_rejected_total", true),
        ("fallback_used_total", false),
        ("bulkhead_rejected_total", false),
    ] {
        assert!(
            seen.contains(&(name.to_owned(), on_host)),
            "no {name} series with dependency=inventory (host label: {on_host}); saw {seen:?}"
        );
    }
}

#[tokio::test]
async fn a_name_on_the_template_policy_counts_and_without_one_the_host_is_the_name() {
    let server = TestServer::start(|_, _| status(200)).await;
    let host = server.authority();
    let breaker = CircuitBreaker::builder().consecutive_failures(3);

    let named = RetryMiddleware::builder()
        .policy(RetryPolicy::builder().dependency("inventory"))
        .breaker_per_host(breaker.clone())
        .per_host(|_, p| Ok(p.max_attempts(2)))
        .build()
        .unwrap();
    assert_eq!(named.dependency(), Some("inventory"));
    client(named.clone())
        .get(server.url("/"))
        .send()
        .await
        .unwrap();
    let h = named.host(&host).unwrap();
    assert_eq!(
        (h.dependency(), h.policy().dependency(), h.policy().host()),
        ("inventory", "inventory", Some(host.as_str()))
    );
    assert_eq!(
        h.policy().max_attempts(),
        2,
        "a user's per-host hook still runs"
    );
    assert_eq!(h.breaker().unwrap().dependency(), "inventory");

    // No name anywhere: the authority names the series, as before.
    let plain = RetryMiddleware::builder()
        .breaker_per_host(breaker)
        .build()
        .unwrap();
    assert_eq!(plain.dependency(), None);
    client(plain.clone())
        .get(server.url("/"))
        .send()
        .await
        .unwrap();
    let h = plain.host(&host).unwrap();
    assert_eq!(h.dependency(), host);
    assert_eq!(h.breaker().unwrap().dependency(), host);
    assert_eq!(h.breaker().unwrap().host(), Some(host.as_str()));
}
