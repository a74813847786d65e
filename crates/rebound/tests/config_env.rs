//! Policies built from a file with a `BuildEnv` run on its clock and draw
//! from its randomness, the policies nested inside them included.
#![cfg(all(feature = "serde", feature = "tokio"))]

use std::time::Duration;

use rebound::config::{BuildEnv, DependencyConfig};
use rebound::{Clock, RandomSource};

fn table(src: &str) -> DependencyConfig {
    toml::from_str(src).unwrap()
}

#[test]
fn a_retry_policy_and_its_budget_follow_the_env_clock() {
    let (clock, time) = Clock::manual();
    let env = BuildEnv {
        clock,
        random: RandomSource::seeded(11),
    };
    let dep = table(
        r#"retry = { max_attempts = 3, budget = { kind = "ratio", ratio = 0.5, min_retries_per_second = 0, window = "10s" } }"#,
    );
    let policy = dep
        .retry
        .as_ref()
        .unwrap()
        .builder_in("inventory", &env)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(policy.random().seed(), Some(11));
    let budget = policy.budget().unwrap();
    budget.record_request();
    budget.record_request();
    // Past the window on the manual clock the first two requests are
    // forgotten: two new ones allow one retry (on any other clock, the
    // four would allow two).
    time.advance(Duration::from_secs(11));
    budget.record_request();
    budget.record_request();
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw());
    assert_eq!(policy.clock().now(), env.clock.now());
}

#[test]
fn a_hedge_and_a_pipeline_take_the_env_clock() {
    let (clock, time) = Clock::manual();
    let env = BuildEnv {
        clock: clock.clone(),
        random: RandomSource::seeded(3),
    };
    time.advance(Duration::from_secs(5));
    let hedge = table(r#"hedge = { delay = "20ms" }"#)
        .hedge
        .unwrap()
        .builder_in("catalog", &env)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(hedge.clock().now(), clock.now());
    let dep = table(
        r#"pipeline = { stages = [
            { type = "timeout", timeout = "2s" },
            { type = "retry", max_attempts = 2, backoff = { kind = "constant", base = "10ms" } },
            { type = "hedge", idempotent = true, delay = "50ms" },
            { type = "timeout", timeout = "500ms" },
        ] }"#,
    );
    let pipeline = dep
        .pipeline
        .as_ref()
        .unwrap()
        .build_in("catalog", &env)
        .unwrap();
    assert_eq!(pipeline.clock().now(), clock.now());
    let Some(rebound::pipeline::Stage::Retry(retry)) = pipeline.stages().get(1) else {
        panic!("the second stage is the retry");
    };
    assert_eq!(retry.random().seed(), Some(3));
    assert_eq!(retry.clock().now(), clock.now());
    let Some(rebound::pipeline::Stage::Hedge(h)) = pipeline.stages().get(2) else {
        panic!("the third stage is the hedge");
    };
    assert_eq!(h.clock().now(), clock.now());
}
