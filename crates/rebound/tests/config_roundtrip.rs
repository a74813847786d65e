//! Config files: every policy (de)serializes in TOML and JSON with human
//! durations, round-trips, builds through the builders, and a bad file
//! names the field and the line.
#![cfg(feature = "serde")]

use std::time::Duration;

use rebound::config::{
    BackoffConfig, BackoffKind, BreakerConfig, BudgetConfig, BulkheadConfig, CacheConfig,
    CoalesceConfig, DependencyConfig, GrowthConfig, HedgeConfig, JitterConfig, PipelineConfig,
    Policies, RetryConfig, StageConfig, StandardConfig, ThrottleConfig, WindowConfig,
};

const FILE: &str = r#"
[dependencies.inventory]
timeout = "750ms"

[dependencies.inventory.retry]
max_attempts = 4
attempt_timeout = "250ms"
total_timeout = "3s"
max_server_delay = "1m"
backoff = { kind = "exponential", base = "50ms", factor = 3.0, max_delay = "2s", jitter = { proportional = 0.2 } }
budget = { kind = "ratio", ratio = 0.1, min_retries_per_second = 5.0, window = "10s", buckets = 10 }

[dependencies.inventory.breaker]
failure_ratio = 0.5
min_calls = 10
window = { kind = "time", duration = "30s", buckets = 10 }
slow_call_duration = "2s"
slow_call_ratio = 0.8
break_duration = "15s"
max_break_duration = "5m"
break_growth = { exponential = 2.0 }
half_open_probes = 3

[dependencies.inventory.bulkhead]
max_concurrent = 20
max_queue = 5
max_wait = "100ms"

[dependencies.inventory.throttle]
k = 1.5
window = "2m"

[dependencies.inventory.hedge]
max_attempts = 2
delay = "40ms"
budget = { kind = "token_bucket", max_tokens = 10.0, token_ratio = 0.1 }

[dependencies.inventory.pipeline]
stages = [
  { type = "timeout", timeout = "5s" },
  { type = "retry", max_attempts = 3, backoff = { kind = "constant", base = "100ms" } },
  { type = "circuit_breaker", window = { kind = "time", duration = "30s" } },
  { type = "bulkhead", max_concurrent = 10 },
  { type = "timeout", timeout = "1s" },
]

[dependencies.search.pipeline.standard]
total_timeout = "4s"
attempt_timeout = "1s"
"#;

#[test]
fn a_full_file_parses_and_builds() {
    let p = Policies::from_toml_str(FILE).unwrap();
    let inv = p.dependency("inventory").unwrap();
    let retry = inv.retry_policy("inventory").unwrap().unwrap();
    assert_eq!(retry.max_attempts(), 4);
    assert_eq!(retry.total_timeout(), Some(Duration::from_secs(3)));
    assert_eq!(retry.max_server_delay(), Duration::from_secs(60));
    assert_eq!(retry.dependency(), "inventory");
    assert!(retry.budget().is_some());
    assert_eq!(inv.timeout, Some(Duration::from_millis(750)));
    assert_eq!(
        inv.bulkhead("inventory").unwrap().unwrap().max_concurrent(),
        20
    );
    assert_eq!(
        inv.hedge_policy("inventory")
            .unwrap()
            .unwrap()
            .current_delay(),
        Duration::from_millis(40)
    );
    let names: Vec<_> = inv
        .pipeline("inventory")
        .unwrap()
        .unwrap()
        .stages()
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(
        names,
        ["timeout", "retry", "circuit_breaker", "bulkhead", "timeout"]
    );
    assert!(p
        .dependency("search")
        .unwrap()
        .pipeline("search")
        .unwrap()
        .is_some());
}

#[test]
fn a_dependencys_breaker_and_throttle_guard_its_retries() {
    let p = Policies::from_toml_str(
        r#"
[dependencies.payments.retry]
max_attempts = 2

[dependencies.payments.breaker]
failure_ratio = 0.3

[dependencies.payments.throttle]
k = 1.1
"#,
    )
    .unwrap();
    let retry = p
        .dependency("payments")
        .unwrap()
        .retry_policy("payments")
        .unwrap()
        .unwrap();
    assert!(retry.breaker().is_some());
    assert!(retry.throttle().is_some());
    assert_eq!(retry.breaker().unwrap().dependency(), "payments");
}

#[test]
fn a_breaker_or_throttle_inside_retry_is_refused_with_where_it_goes() {
    for field in ["breaker", "throttle"] {
        let src = format!(
            "[dependencies.payments.retry]\nmax_attempts = 2\n\n[dependencies.payments.retry.{field}]\n"
        );
        let e = Policies::from_toml_str(&src).unwrap_err();
        assert_eq!(e.path(), format!("dependencies.payments.retry.{field}"));
        assert_eq!(e.line(), Some(4), "{e}");
        assert!(
            e.message()
                .contains(&format!("[dependencies.payments.{field}]")),
            "{e}"
        );
    }
}

fn sample() -> Policies {
    let mut p = Policies::default();
    p.dependencies.insert(
        "inventory".into(),
        DependencyConfig {
            retry: Some(RetryConfig {
                max_attempts: Some(3),
                backoff: Some(BackoffConfig {
                    kind: BackoffKind::Linear,
                    base: Duration::from_millis(250),
                    factor: None,
                    step: Some(Duration::from_millis(100)),
                    max_delay: Some(Duration::from_secs(30)),
                    jitter: Some(JitterConfig::Equal),
                }),
                attempt_timeout: Some(Duration::from_millis(500)),
                total_timeout: Some(Duration::from_secs(5)),
                max_server_delay: None,
                budget: Some(BudgetConfig::Ratio {
                    ratio: 0.2,
                    min_retries_per_second: None,
                    window: Some(Duration::from_secs(10)),
                    buckets: None,
                }),
                // One place for each: the dependency's own `breaker` and
                // `throttle` below.
                breaker: None,
                throttle: None,
            }),
            breaker: Some(BreakerConfig {
                failure_ratio: Some(0.25),
                window: Some(WindowConfig::Count { size: 50 }),
                min_calls: Some(10),
                break_growth: Some(GrowthConfig::Linear),
                ..Default::default()
            }),
            bulkhead: Some(BulkheadConfig {
                max_concurrent: Some(8),
                ..Default::default()
            }),
            timeout: Some(Duration::from_millis(1500)),
            throttle: Some(ThrottleConfig {
                k: Some(2.0),
                ..Default::default()
            }),
            hedge: Some(HedgeConfig {
                percentile: Some(0.9),
                initial_delay: Some(Duration::from_millis(80)),
                ..Default::default()
            }),
            pipeline: Some(PipelineConfig::Stages(vec![
                StageConfig::Timeout {
                    timeout: Duration::from_secs(5),
                },
                StageConfig::Retry(Box::default()),
                StageConfig::CircuitBreaker(BreakerConfig::default()),
            ])),
            coalesce: Some(CoalesceConfig {
                max_wait: Some(Duration::from_millis(300)),
                share_errors: Some(false),
            }),
            cache: Some(CacheConfig {
                ttl: Duration::from_secs(60),
                jitter: Some(0.1),
                early_refresh: Some(1.0),
                stale_while_loading: Some(true),
                max_age: Some(Duration::from_secs(600)),
                max_entries: None,
            }),
        },
    );
    p.dependencies.insert(
        "search".into(),
        DependencyConfig {
            pipeline: Some(PipelineConfig::Standard(StandardConfig {
                max_attempts: Some(2),
                ..Default::default()
            })),
            ..Default::default()
        },
    );
    p
}

#[test]
fn toml_round_trips() {
    let p = sample();
    let text = p.to_toml_string().unwrap();
    assert!(text.contains("\"250ms\""), "{text}");
    assert!(text.contains("\"1s 500ms\""), "{text}");
    assert_eq!(Policies::from_toml_str(&text).unwrap(), p, "{text}");
}

#[test]
fn json_round_trips() {
    let p = sample();
    let text = p.to_json_string().unwrap();
    assert!(text.contains("\"500ms\""), "{text}");
    assert_eq!(Policies::from_json_str(&text).unwrap(), p, "{text}");
}

#[test]
fn the_checked_in_file_round_trips_too() {
    let p = Policies::from_toml_str(FILE).unwrap();
    let again = Policies::from_toml_str(&p.to_toml_string().unwrap()).unwrap();
    assert_eq!(again, p);
    let again = Policies::from_json_str(&p.to_json_string().unwrap()).unwrap();
    assert_eq!(again, p);
}

#[test]
fn a_bad_type_names_the_field_and_line() {
    let src = "[dependencies.a.retry]\nmax_attempts = 3\nattempt_timeout = \"fast\"\n";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.to_string().contains("attempt_timeout"), "{e}");

    let src = "[dependencies.a.breaker]\nfailure_ratio = 0.5\nfailure_ratoi = 0.1\n";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.to_string().contains("failure_ratoi"), "{e}");
}

#[test]
fn the_line_comes_from_the_document_not_from_its_text() {
    // A comment naming the field, and the same field under another
    // dependency, come before the bad value: the parser's spans skip both.
    let src = "\
[dependencies.b.breaker]
failure_ratio = 0.5
[dependencies.a.breaker]
# failure_ratio = 0.9 was too lax
min_calls = 5
failure_ratio = 1.5
";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(e.path(), "dependencies.a.breaker.failure_ratio");
    assert_eq!(e.line(), Some(6), "{e}");
    // A field in a sub-table with its own header, after an inline table.
    let src =
        "[dependencies.c]\nretry = { max_attempts = 3 }\n[dependencies.c.breaker]\nmin_calls = 0\n";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(e.line(), Some(4), "{e}");

    // The same in JSON, with a dependency named `retry`: a text search
    // would take `b`'s retry key for it and stop at `b`'s failure_ratio.
    let src = r#"{
  "dependencies": {
    "b": {
      "retry": { "max_attempts": 2 },
      "breaker": { "failure_ratio": 0.5 }
    },
    "retry": {
      "breaker": {
        "min_calls": 5,
        "failure_ratio": 1.5
      }
    }
  }
}"#;
    let e = Policies::from_json_str(src).unwrap_err();
    assert_eq!(e.path(), "dependencies.retry.breaker.failure_ratio", "{e}");
    assert_eq!(e.line(), Some(10), "{e}");
}

#[test]
fn a_bad_value_names_the_field_and_line() {
    let src = "[dependencies.a.breaker]\nmin_calls = 5\nfailure_ratio = 1.5\n";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(e.path(), "dependencies.a.breaker.failure_ratio");
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.message().contains("ratio in [0, 1]"), "{e}");

    let src = "{\n  \"dependencies\": {\n    \"a\": {\n      \"bulkhead\": {\n        \"max_concurrent\": 0\n      }\n    }\n  }\n}";
    let e = Policies::from_json_str(src).unwrap_err();
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(e.to_string().contains("max_concurrent"), "{e}");

    // The pipeline's own rules apply to files too.
    let src = r#"
[dependencies.a.pipeline]
stages = [
  { type = "timeout", timeout = "1s" },
  { type = "retry", max_attempts = 3 },
  { type = "timeout", timeout = "500ms" },
]
"#;
    let e = Policies::from_toml_str(src).unwrap_err();
    assert!(e.message().contains("total_timeout"), "{e}");
    // A rule about the combination points at the stages, where they are
    // written: a path and a line that are in the file.
    assert_eq!(e.path(), "dependencies.a.pipeline.stages", "{e}");
    assert_eq!(e.line(), Some(3), "{e}");
    // A rule about one stage points at that stage's field.
    let src = r#"
[dependencies.a.pipeline]
stages = [
  { type = "timeout", timeout = "2s" },
  { type = "retry", max_attempts = 2 },
  { type = "hedge", idempotent = true, delay = "600ms" },
  { type = "timeout", timeout = "500ms" },
]
"#;
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(e.path(), "dependencies.a.pipeline.stages[2].delay", "{e}");
    assert_eq!(e.line(), Some(6), "{e}");
    // A stage's own policy names its field under the stage.
    let e =
        Policies::from_toml_str(&src.replace("max_attempts = 2", "max_attempts = 0")).unwrap_err();
    assert_eq!(
        e.path(),
        "dependencies.a.pipeline.stages[1].max_attempts",
        "{e}"
    );
    assert_eq!(e.line(), Some(5), "{e}");
    // The standard preset's fields, under `standard`.
    let src = "[dependencies.a.pipeline.standard]\ntotal_timeout = \"2s\"\nattempt_timeout = \"1ms\"\nmax_attempts = 4294967295\n";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(
        e.path(),
        "dependencies.a.pipeline.standard.total_timeout",
        "{e}"
    );
    assert_eq!(e.line(), Some(2), "{e}");
    // A retry's backoff, under the retry.
    let src = "[dependencies.a.retry]\nmax_attempts = 2\nbackoff = { kind = \"linear\", base = \"10ms\" }\n";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert_eq!(e.path(), "dependencies.a.retry.backoff.step", "{e}");
    assert_eq!(e.line(), Some(3), "{e}");

    let src = "[dependencies.a.hedge]\ndelay = \"10ms\"\npercentile = 0.9\n";
    let e = Policies::from_toml_str(src).unwrap_err();
    assert!(e.message().contains("delay"), "{e}");
    assert_eq!(e.line(), Some(2), "{e}");
}
