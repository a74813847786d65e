//! The middleware from a policy file: every setting from its one place,
//! over real sockets on 127.0.0.1, on a manual clock.
#![cfg(feature = "config")]

mod common;

use common::{client, status, TestServer};
use rebound::config::{BuildEnv, Policies};
use rebound::{Clock, RandomSource, Stop};
use rebound_http::{GiveUpExt, RetryMiddlewareBuilder, RetryReport};

const FILE: &str = r#"
[dependencies.inventory.retry]
max_attempts = 2
backoff = { kind = "constant", base = "10ms", jitter = "none" }
budget = { kind = "token_bucket", max_tokens = 10, token_ratio = 0.1 }

[dependencies.inventory.breaker]
consecutive_failures = 2
break_duration = "30s"

[dependencies.ledger.breaker]
consecutive_failures = 1

[dependencies.search.hedge]
delay = "20ms"
"#;

#[tokio::test]
async fn the_files_retry_budget_and_breaker_apply_per_host_under_the_files_name() {
    let server = TestServer::start(|_, _| status(503)).await;
    let policies = Policies::from_toml_str(FILE).unwrap();
    let (clock, _time) = Clock::manual();
    let env = BuildEnv {
        clock,
        random: RandomSource::seeded(3),
    };
    let inventory = policies.dependency("inventory").unwrap();
    let mw = RetryMiddlewareBuilder::from_dependency_in("inventory", inventory, &env)
        .unwrap()
        .build()
        .unwrap();
    let c = client(mw.clone());

    // max_attempts = 2: two attempts, both failures: the breaker opens.
    let r = c.get(server.url("/")).send().await.unwrap();
    let report = RetryReport::of(&r).unwrap();
    assert_eq!(report.attempts(), 2);
    assert_eq!(report.dependency(), "inventory");
    assert_eq!(server.count(), 2);

    let host = mw.host(&server.authority()).unwrap();
    assert_eq!(host.policy().max_attempts(), 2);
    assert!(host.budget().is_some(), "the file's budget, for this host");
    let breaker = host.breaker().expect("the file's breaker, for this host");
    assert_eq!(breaker.dependency(), "inventory");
    assert_eq!(breaker.host(), Some(server.authority().as_str()));
    assert_eq!(breaker.state(), rebound::breaker::State::Open);

    // Open: the next request is refused without reaching the server.
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(e.gave_up().unwrap().stop(), Stop::BreakerOpen);
    assert_eq!(e.cause(), rebound::fallback::Cause::BreakerOpen);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_dependency_without_retry_gets_one_attempt_through_its_breaker() {
    let server = TestServer::start(|_, _| status(503)).await;
    let policies = Policies::from_toml_str(FILE).unwrap();
    let mw = RetryMiddlewareBuilder::from_policies(&policies, "ledger")
        .unwrap()
        .build()
        .unwrap();
    let c = client(mw.clone());
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(RetryReport::of(&r).unwrap().attempts(), 1);
    let e = c.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(e.gave_up().unwrap().stop(), Stop::BreakerOpen);
    assert_eq!(server.count(), 1);
}

#[test]
fn what_the_middleware_would_not_apply_is_refused_by_name() {
    let policies = Policies::from_toml_str(FILE).unwrap();
    let e = RetryMiddlewareBuilder::from_policies(&policies, "search").unwrap_err();
    assert_eq!(e.path(), "hedge");
    assert!(e.to_string().contains("not applied"), "{e}");

    let e = RetryMiddlewareBuilder::from_policies(&policies, "payments").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("`payments`"), "{text}");
    assert!(text.contains("inventory, ledger, search"), "{text}");
}
