//! Scenario files: policies in the core's syntax, embedded or read from a
//! service's policy file unchanged; every bad input named by file, line
//! and field.

use std::path::{Path, PathBuf};

use rebound::config::Policies;
use rebound_sim::model;
use rebound_sim::policy::PolicySource;
use rebound_sim::scenario_file::{self, ScenarioFile, EXAMPLE};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A scenario "written" next to the test policy files.
fn parse_here(text: &str) -> Result<ScenarioFile, scenario_file::ScenarioFileError> {
    scenario_file::parse(text, &data("scenario.toml").display().to_string())
}

/// A dependency failing 20% of requests; `top` on line 6, then the layer,
/// then `variants`.
fn scenario(top: &str, variants: &str) -> String {
    format!(
        r#"
name = "files"
duration = "20s"
clients = 4
workload = {{ kind = "open", rate = 200 }}
{top}

[[layers]]
name = "inventory"
failure_rate = 0.2
service = {{ constant = "5ms" }}
{variants}"#
    )
}

#[test]
fn a_service_policy_file_is_simulated_unchanged() {
    // The file the service loads...
    let text = std::fs::read_to_string(data("policies.toml")).unwrap();
    let service = Policies::from_toml_str(&text).expect("the service loads it");
    let inventory = service.dependency("inventory").unwrap().clone();
    // ...named by a scenario, and the same tables embedded.
    let s = parse_here(&scenario(
        "",
        r#"
[[variants]]
name = "from the service's file"
policy = { file = "policies.toml", dependency = "inventory" }

[[variants]]
name = "from its JSON twin"
policy = { dependency = "inventory", file = "policies.json" }

[[variants]]
name = "embedded"
policy.retry = { max_attempts = 3, attempt_timeout = "300ms", backoff = { kind = "exponential", base = "50ms", max_delay = "1s", jitter = "full" }, budget = { kind = "ratio", ratio = 0.1, min_retries_per_second = 0 }, breaker = { failure_ratio = 0.5, min_calls = 20, window = { kind = "count", size = 50 }, break_duration = "5s" } }
"#,
    ))
    .unwrap();
    let [from_file, from_json, embedded] = [0, 1, 2].map(|i| s.variants[i].policy.clone());
    let PolicySource::Config { dependency, config } = &from_file.source else {
        panic!("a file's policies are its DependencyConfig");
    };
    assert_eq!(dependency, "inventory");
    assert_eq!(**config, inventory, "the service's table, unchanged");
    // The same policy, so the same run, bit for bit.
    let run = |p: &rebound_sim::policy::CallerPolicy| {
        let mut spec = s.system.clone();
        spec.policy = p.clone();
        model::run(&spec, 9).unwrap()
    };
    let a = run(&from_file);
    assert_eq!(a, run(&from_json));
    assert_eq!(a, run(&embedded));
    // And it does what the file says: a 10% budget caps the retries of
    // 20% failures (1 + 0.2 + 0.04 without it).
    let load = a.amplification();
    assert!((1.08..=1.11).contains(&load), "{load}");
}

#[test]
fn a_policy_file_the_simulator_cannot_drive_is_named_at_its_line() {
    // `payments` has a standalone bulkhead, which the service combines with
    // its calls in its own code.
    let e = parse_here(&scenario(
        "policy = { file = \"policies.toml\", dependency = \"payments\" }",
        "",
    ))
    .unwrap_err();
    assert!(e.file.ends_with("policies.toml"), "{e}");
    assert_eq!(e.field.as_deref(), Some("dependencies.payments.bulkhead"));
    assert_eq!(e.line, Some(31), "{e}");
    assert!(e.message.contains("pipeline"), "{e}");

    // A dependency the file does not have: named in the scenario file.
    let e = parse_here(&scenario(
        "policy = { file = \"policies.toml\", dependency = \"ledger\" }",
        "",
    ))
    .unwrap_err();
    assert!(e.file.ends_with("scenario.toml"), "{e}");
    assert_eq!(e.field.as_deref(), Some("policy.dependency"));
    assert_eq!(e.line, Some(6), "{e}");
    assert!(
        e.message.contains("catalog, inventory, payments, search"),
        "{e}"
    );

    // A file that is not there.
    let e = parse_here(&scenario(
        "policy = { file = \"nowhere.toml\", dependency = \"x\" }",
        "",
    ))
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("policy.file"));
    assert!(e.message.contains("cannot read"), "{e}");

    // A reference with a stray key.
    let e = parse_here(&scenario(
        "policy = { file = \"policies.toml\", dependency = \"x\", retry = {} }",
        "",
    ))
    .unwrap_err();
    assert!(e.message.contains("unknown field `retry`"), "{e}");
    assert_eq!(e.line, Some(6), "{e}");
}

#[test]
fn a_bad_policy_file_is_named_with_its_own_line() {
    let dir = std::env::temp_dir().join(format!("rebound-sim-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(data("policies.toml")).unwrap();
    std::fs::write(
        dir.join("policies.toml"),
        text.replace("max_attempts = 3", "max_attempts = 0"),
    )
    .unwrap();
    let scenario_path = dir.join("scenario.toml");
    std::fs::write(
        &scenario_path,
        scenario(
            "policy = { file = \"policies.toml\", dependency = \"inventory\" }",
            "",
        ),
    )
    .unwrap();
    let e = scenario_file::load(&scenario_path).unwrap_err();
    assert_eq!(e.file, dir.join("policies.toml").display().to_string());
    assert_eq!(
        e.field.as_deref(),
        Some("dependencies.inventory.retry.max_attempts")
    );
    assert_eq!(e.line, Some(5), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_parses_and_every_variant_builds() {
    let s = scenario_file::parse(EXAMPLE, "example.toml").unwrap();
    assert_eq!(s.variants.len(), 4);
    assert_eq!(s.system.layers[0].workers, Some(1));
    let sources: Vec<String> = s
        .variants
        .iter()
        .map(|v| v.policy.source.to_string())
        .collect();
    assert!(sources[2].contains("throttle = { k = 2.0"), "{sources:?}");
    assert!(
        sources[3].starts_with("pipeline = { stages = ["),
        "{sources:?}"
    );
}

#[test]
fn semantic_errors_name_field_and_line() {
    let bad = EXAMPLE.replace("workers = 1", "workers = 1\nfailure_rate = 1.5");
    let e = scenario_file::parse(&bad, "x.toml").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("layers[0].failure_rate"));
    assert_eq!(e.line, Some(13), "{e}");
    assert_eq!(e.file, "x.toml");

    let bad = EXAMPLE.replacen("max_attempts = 2", "max_attempts = 0", 1);
    let e = scenario_file::parse(&bad, "x.toml").unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("variants[0].policy.retry.max_attempts"),
        "{e}"
    );
    assert_eq!(e.line, Some(23), "{e}");
    assert!(e.message.contains("at least 1"), "{e}");

    // The simulator's own refusal, in an embedded table.
    let bad = EXAMPLE.replacen(
        "policy.retry = { max_attempts = 2,",
        "policy.hedge = { delay = \"20ms\" }\npolicy.retry = { max_attempts = 2,",
        1,
    );
    let e = scenario_file::parse(&bad, "x.toml").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("variants[0].policy.hedge"), "{e}");
    assert_eq!(e.line, Some(23), "{e}");
}

#[test]
fn a_bad_throttle_names_its_field_and_line() {
    let bad = EXAMPLE.replace("k = 2.0", "k = 0.5");
    let e = scenario_file::parse(&bad, "x.toml").unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("variants[2].policy.throttle.k"),
        "{e}"
    );
    assert_eq!(e.line, Some(32), "{e}");
    assert!(e.message.contains("at least 1"), "{e}");
    let bad = EXAMPLE.replace("k = 2.0", "kay = 2.0");
    let e = scenario_file::parse(&bad, "x.toml").unwrap_err();
    assert!(e.message.contains("unknown field `kay`"), "{e}");
    assert_eq!(e.line, Some(32), "{e}");
}

#[test]
fn a_pipeline_the_core_refuses_names_its_stage() {
    // A hedge delay the attempt timeout inside it always beats.
    let bad = EXAMPLE.replace(
        "  { type = \"timeout\", timeout = \"1s\" },\n]",
        "  { type = \"hedge\", idempotent = true, delay = \"2s\" },\n  { type = \"timeout\", timeout = \"1s\" },\n]",
    );
    let e = scenario_file::parse(&bad, "x.toml").unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("variants[3].policy.pipeline.stages[2].delay"),
        "{e}"
    );
    assert_eq!(e.line, Some(39), "{e}");
    // A bulkhead that would queue: waiting is not simulated.
    let bad = EXAMPLE.replace(
        "  { type = \"timeout\", timeout = \"1s\" },\n]",
        "  { type = \"bulkhead\", max_concurrent = 5, max_queue = 10 },\n  { type = \"timeout\", timeout = \"1s\" },\n]",
    );
    let e = scenario_file::parse(&bad, "x.toml").unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("variants[3].policy.pipeline.stages[2].max_queue"),
        "{e}"
    );
    assert_eq!(e.line, Some(39), "{e}");
}

#[test]
fn syntax_errors_and_unknown_fields() {
    let e = scenario_file::parse("name = ", "x.toml").unwrap_err();
    assert_eq!(e.line, Some(1));
    let e = scenario_file::parse(
        &EXAMPLE.replace("clients = 10", "clients = 10\nclient = 3"),
        "x.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("unknown field `client`"), "{e}");
    assert_eq!(e.line, Some(7));
    let e = scenario_file::parse(&EXAMPLE.replace("\"3.333ms\"", "\"3 parsecs\""), "x.toml")
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("layers[0].service.exponential"));
    assert_eq!(e.line, Some(13), "{e}");
    // A policy table with a key the core does not know.
    let e = scenario_file::parse(
        &EXAMPLE.replacen("policy.retry = {", "policy.retyr = {", 1),
        "x.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("unknown field `retyr`"), "{e}");
    assert_eq!(e.line, Some(23), "{e}");
}

#[test]
fn scope_sits_beside_the_policy() {
    use rebound_sim::policy::Scope;
    let s = parse_here(&scenario(
        "scope = \"shared\"\npolicy.retry = { max_attempts = 2 }",
        r#"
[[variants]]
name = "one policy object per client"
scope = "client"
policy = { file = "policies.toml", dependency = "inventory" }

[[variants]]
name = "the top-level scope"
policy.hedge = { delay = "20ms" }
"#,
    ))
    .unwrap();
    assert_eq!(s.system.policy.scope, Scope::Shared);
    assert_eq!(s.variants[0].policy.scope, Scope::Client);
    assert_eq!(s.variants[1].policy.scope, Scope::Shared);
    // `scope` is the simulator's, not the core's: inside the policy table
    // it is an unknown field.
    let e = parse_here(&scenario(
        "policy = { retry = { max_attempts = 2 }, scope = \"shared\" }",
        "",
    ))
    .unwrap_err();
    assert!(e.message.contains("unknown field `scope`"), "{e}");
}
