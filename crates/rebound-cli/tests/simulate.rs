//! `rebound simulate --config`: a scenario reading a service's policy file
//! runs; a bad file exits with 2 and names the file, line and field.

use std::path::Path;
use std::process::{Command, Output};

fn rebound(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .output()
        .expect("the binary runs")
}

const POLICIES: &str = r#"[dependencies.catalog.pipeline]
stages = [
  { type = "timeout", timeout = "2s" },
  { type = "retry", max_attempts = 2, backoff = { kind = "constant", base = "20ms" } },
  { type = "hedge", idempotent = true, delay = "30ms" },
  { type = "timeout", timeout = "500ms" },
]

[dependencies.inventory.retry]
max_attempts = 3
"#;

const SCENARIO: &str = r#"name = "catalog"
runs = 1
duration = "5s"
workload = { kind = "open", rate = 200 }

[[layers]]
name = "catalog"
service = { constant = "10ms" }
hiccups = { probability = 0.2, extra = { constant = "1s" } }

[[variants]]
name = "as deployed"
policy = { file = "policies.toml", dependency = "catalog" }

[[variants]]
name = "no policy"
policy = {}
"#;

#[test]
fn a_scenario_simulates_a_service_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.toml"), POLICIES).unwrap();
    std::fs::write(dir.path().join("scenario.toml"), SCENARIO).unwrap();
    let out = rebound(
        &["simulate", "--config", "scenario.toml", "--out", "report"],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("as deployed"), "{stdout}");
    let summary = std::fs::read_to_string(dir.path().join("report/catalog/summary.csv")).unwrap();
    let rows: Vec<&str> = summary.lines().collect();
    assert_eq!(rows.len(), 3, "{summary}");
    // The pipeline hedges the fifth of the calls that hang; with no policy
    // each call is one request.
    let load = |row: &str| row.split(',').nth(2).unwrap().parse::<f64>().unwrap();
    assert!(rows[1].starts_with("as deployed,"), "{summary}");
    assert!((1.15..1.3).contains(&load(rows[1])), "{summary}");
    assert!(rows[2].starts_with("no policy,"), "{summary}");
    assert_eq!(load(rows[2]), 1.0, "{summary}");
}

#[test]
fn a_bad_policy_file_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policies.toml"),
        POLICIES.replace("max_attempts = 3", "max_attempts = 0"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("scenario.toml"),
        SCENARIO.replace("dependency = \"catalog\"", "dependency = \"inventory\""),
    )
    .unwrap();
    let out = rebound(&["simulate", "--config", "scenario.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("policies.toml:10: `dependencies.inventory.retry.max_attempts`"),
        "{stderr}"
    );
    assert!(!dir.path().join("rebound-report").exists());
}

#[test]
fn the_example_config_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = rebound(&["simulate", "--example-config"], dir.path());
    assert!(out.status.success());
    std::fs::write(dir.path().join("example.toml"), &out.stdout).unwrap();
    let out = rebound(
        &["simulate", "--config", "example.toml", "--runs", "1", "-q"],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Report written to rebound-report/"),
        "{stdout}"
    );
    let summary =
        std::fs::read_to_string(dir.path().join("rebound-report/retry-storm/summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 5, "four variants: {summary}");
}
