//! Hedge and pipeline policies simulated through the core's machines: on
//! servers whose latencies are exact, the loads, latencies, timeouts and
//! abandoned copies are what the policies' rules give.

use std::time::Duration;

use rebound::config::{DependencyConfig, Policies};
use rebound_sim::model::{self, Hiccups, LayerSpec, SystemSpec, Workload};
use rebound_sim::policy::{CallerPolicy, PolicySource};
use rebound_sim::stats::RunStats;
use rebound_sim::Dist;

const MS: Duration = Duration::from_millis(1);

/// 20 000 calls to a server answering in `service`, `hiccup` of the
/// requests `extra` later.
fn system(policy: PolicySource, service: Duration, hiccup: f64, extra: Duration) -> SystemSpec {
    SystemSpec {
        duration: Duration::from_secs(20),
        workload: Workload::open(1000.0),
        policy: CallerPolicy::shared(policy),
        layers: vec![LayerSpec {
            service: Dist::constant(service),
            hiccups: Some(Hiccups {
                probability: hiccup,
                extra: Dist::constant(extra),
            }),
            ..LayerSpec::default()
        }],
        drain: Duration::from_secs(5),
        ..SystemSpec::default()
    }
}

fn ms(r: &mut RunStats, p: f64) -> f64 {
    r.latency_percentile(p).unwrap() as f64 / 1e6
}

fn per_call(n: u64, r: &RunStats) -> f64 {
    n as f64 / r.first_tries as f64
}

#[test]
fn a_hedge_policy_races_a_second_copy_after_its_delay() {
    let table: DependencyConfig = toml::from_str(r#"hedge = { delay = "100ms" }"#).unwrap();
    // Half the requests take 1 s more.
    let spec = system(
        PolicySource::config("catalog", table),
        50 * MS,
        0.5,
        1000 * MS,
    );
    let mut r = model::run(&spec, 3).unwrap();
    assert_eq!(r, model::run(&spec, 3).unwrap(), "same seed, same run");
    // A slow first copy (half the calls) gets a hedge at 100 ms.
    let load = r.amplification();
    assert!((load - 1.5).abs() < 0.02, "{load}");
    // Fast: 50 ms; slow then a fast hedge: 100 + 50 ms; both slow: the
    // first answers at 1050 ms, before the hedge's 1150.
    assert_eq!(ms(&mut r, 45.0), 50.0);
    assert_eq!(ms(&mut r, 70.0), 150.0);
    assert_eq!(ms(&mut r, 90.0), 1050.0);
    assert_eq!(r.success_rate(), 1.0);
    // Every hedged call abandons its losing copy, which is still served
    // and answers to nobody.
    let abandoned = per_call(r.abandoned, &r);
    assert!((abandoned - 0.5).abs() < 0.02, "{abandoned}");
    assert_eq!(r.wasted, r.abandoned);
    assert_eq!(r.timeouts, 0);
    assert_eq!(r.unfinished, 0);
}

#[test]
fn a_pipeline_from_a_policy_file_runs_its_stages() {
    // The service's file: timeout 2 s → retry (2 attempts, 20 ms apart)
    // → hedge after 30 ms → timeout 500 ms.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/policies.toml"
    ))
    .unwrap();
    let policies = Policies::from_toml_str(&text).unwrap();
    let catalog = policies.dependency("catalog").unwrap().clone();
    // A fifth of the requests hang for a second.
    let spec = system(
        PolicySource::config("catalog", catalog),
        10 * MS,
        0.2,
        1000 * MS,
    );
    let mut r = model::run(&spec, 5).unwrap();
    assert_eq!(r, model::run(&spec, 5).unwrap(), "same seed, same run");
    // An attempt: one copy, and a hedge when it hangs (1.2 requests); it
    // fails when both hang (4%), cut off at 500 ms each, and is retried once.
    let load = r.amplification();
    let expected = 1.2 * (1.0 + 0.04);
    assert!((load - expected).abs() < 0.015, "{load} vs {expected}");
    let success = r.success_rate();
    assert!((success - (1.0 - 0.04 * 0.04)).abs() < 0.001, "{success}");
    let timeouts = per_call(r.timeouts, &r);
    let expected = 2.0 * 0.04 * (1.0 + 0.04);
    assert!(
        (timeouts - expected).abs() < 0.01,
        "{timeouts} vs {expected}"
    );
    // 80% answer in 10 ms, 16% after a hedge at 30 ms + 10 ms; the rest
    // after a failed attempt (530 ms), the 20 ms backoff and the second.
    assert_eq!(ms(&mut r, 75.0), 10.0);
    assert_eq!(ms(&mut r, 95.0), 40.0);
    let p99 = ms(&mut r, 99.0);
    assert!((560.0..=590.0).contains(&p99), "{p99}");
    // Copies cut off by a timeout or beaten by their hedge are abandoned,
    // and each answers to nobody later.
    assert!(r.abandoned > r.timeouts);
    assert_eq!(r.wasted, r.abandoned);
    assert_eq!(r.unfinished, 0);
}
