//! `rebound check`: the retry checklist on good and bad policy files, run
//! through the real binary; figures read from its JSON output.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn rebound(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .output()
        .expect("the binary runs")
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn dependency<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

fn rules(dep: &Value, severity: &str) -> Vec<String> {
    dep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == severity)
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

/// A budgeted retry with timeouts that fit: passes.
const GOOD: &str = r#"[dependencies.inventory.retry]
max_attempts = 3
attempt_timeout = "300ms"
total_timeout = "2s"
backoff = { kind = "exponential", base = "100ms", max_delay = "1s", jitter = "full" }
budget = { kind = "ratio", ratio = 0.1 }
"#;

/// Three dangers: retries nothing limits, two retrying layers with one
/// unbudgeted, a timeout shorter than the attempt it wraps.
const BAD: &str = r#"[dependencies.payments.retry]
max_attempts = 5

[dependencies.catalog]
retry = { max_attempts = 3, attempt_timeout = "1s", budget = { kind = "ratio", ratio = 0.1 } }
hedge = { idempotent = true, delay = "50ms", max_attempts = 3 }

[dependencies.search]
timeout = "100ms"
retry = { max_attempts = 2, attempt_timeout = "300ms", budget = { kind = "ratio", ratio = 0.1 } }
"#;

#[test]
fn a_good_file_passes_and_answers_every_question() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policies.toml", GOOD);
    let out = rebound(&["check", "policies.toml"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for question in [
        "Is the failure transient?",
        "Is the operation safe to retry?",
        "Who owns the retry?",
        "What is the retry policy?",
        "What happens if retries fail?",
        "Can you observe it?",
    ] {
        assert!(text.contains(question), "{question} missing:\n{text}");
    }
    assert!(
        text.contains("status 408, 429, 500, 502, 503, 504"),
        "{text}"
    );
    assert!(
        text.contains("only with an Idempotency-Key: POST PATCH"),
        "{text}"
    );
    assert!(
        text.contains("retry_budget_exhausted_total{dependency=\"inventory\"}"),
        "{text}"
    );
    assert!(text.contains("PASS: 0 dangerous"), "{text}");
}

#[test]
fn figures_come_from_the_policies() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policies.toml", GOOD);
    let out = rebound(&["check", "policies.toml", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    assert_eq!(report["verdict"], "pass");
    let inv = dependency(&report, "inventory");
    // 3 × 300 ms attempts + the longest backoffs before retries 1 and 2
    // (100 ms, 200 ms) = 1.2 s, within the 2 s total: all 3 attempts fit.
    assert_eq!(inv["latency"]["worst_case_ms"], 1200.0);
    assert_eq!(inv["latency"]["total_timeout_ms"], 2000.0);
    assert_eq!(inv["latency"]["attempts_that_fit"][0]["fit"], 3);
    // A dead dependency at 100 calls/s: without the budget every call makes
    // its 3 attempts; the ratio budget allows 10 % of calls plus a floor of
    // 10 retries/s, about 1.2 attempts per call.
    let dead = &inv["dead_dependency"];
    assert_eq!(dead["attempts_per_call"], 3);
    let with = dead["with_budget"].as_f64().unwrap();
    let without = dead["without_budget"].as_f64().unwrap();
    assert!(without > 2.9 && without <= 3.0, "{dead}");
    assert!((1.1..1.35).contains(&with), "{dead}");
    assert_eq!(
        inv["give_up"]["reasons"],
        serde_json::json!(["attempts", "deadline", "budget", "throttled"])
    );
    // A lower rate: the budget's floor is a larger share of the traffic.
    let out = rebound(
        &["check", "policies.toml", "-f", "json", "--rate", "20"],
        dir.path(),
    );
    let slow = json(&out);
    let with_slow = dependency(&slow, "inventory")["dead_dependency"]["with_budget"]
        .as_f64()
        .unwrap();
    assert!(with_slow > with + 0.2, "{with_slow} vs {with}");
}

#[test]
fn a_bad_file_fails_naming_each_danger() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policies.toml", BAD);
    let out = rebound(&["check", "policies.toml", "--format", "json"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["dangers"], 3);
    let payments = dependency(&report, "payments");
    assert_eq!(rules(payments, "danger"), ["unbounded-amplification"]);
    assert!(rules(payments, "warning").contains(&"no-attempt-timeout".to_string()));
    assert_eq!(payments["latency"]["worst_case_ms"], Value::Null);
    let catalog = dependency(&report, "catalog");
    assert_eq!(rules(catalog, "danger"), ["layered-retries-without-budget"]);
    assert_eq!(catalog["dead_dependency"]["attempts_per_call"], 9);
    let search = dependency(&report, "search");
    assert_eq!(rules(search, "danger"), ["timeout-shorter-than-attempt"]);

    // The same as text and Markdown.
    let out = rebound(&["check", "policies.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DANGER: [unbounded-amplification]"), "{text}");
    assert!(text.contains("FAIL: 3 dangerous"), "{text}");
    let out = rebound(&["check", "policies.toml", "-f", "markdown"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("# Retry checklist: `policies.toml`"), "{md}");
    assert!(
        md.contains("| DANGER | `layered-retries-without-budget` |"),
        "{md}"
    );
    assert!(md.contains("## `search`"), "{md}");
}

#[test]
fn strict_fails_on_warnings_and_json_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    // A breaker limits the load, but the retry has no budget: a warning.
    write(
        dir.path(),
        "policies.json",
        r#"{"dependencies": {"ledger": {
            "retry": {"max_attempts": 2, "attempt_timeout": "200ms", "total_timeout": "1s"},
            "breaker": {"consecutive_failures": 5}}}}"#,
    );
    let out = rebound(&["check", "policies.json", "-f", "json"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(
        rules(dependency(&report, "ledger"), "warning"),
        ["no-budget"]
    );
    // The breaker opens and sheds the load: far below one attempt per call.
    let with = dependency(&report, "ledger")["dead_dependency"]["with_budget"]
        .as_f64()
        .unwrap();
    assert!(with < 0.2, "{with}");
    let out = rebound(&["check", "policies.json", "--strict"], dir.path());
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_invalid_file_exits_2_naming_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "policies.toml",
        r#"[dependencies.pricing.pipeline]
stages = [
  { type = "timeout", timeout = "200ms" },
  { type = "retry", max_attempts = 3, attempt_timeout = "500ms" },
]
"#,
    );
    let out = rebound(&["check", "policies.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policies.toml: line 2"), "{err}");
    assert!(
        err.contains("dependencies.pricing.pipeline.stages"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = rebound(&["check", "missing.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read missing.toml"));

    write(dir.path(), "empty.toml", "");
    let out = rebound(&["check", "empty.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("declares no dependency"));
}
