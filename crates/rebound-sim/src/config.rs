//! Custom scenarios from a TOML file (`rebound simulate --config FILE.toml`).
//!
//! The file describes a [`SystemSpec`] — clients, workload, the servers of
//! the stack and each caller's policy, in the same format as
//! [`PolicySpec`] — and optionally several `[[variants]]`, each replacing the
//! clients' policy, to compare policies on the same system. A bad file is
//! an error naming the file, line, column and field, never a panic.
//!
//! ```
//! use rebound_sim::config;
//!
//! let text = r#"
//! name = "retry-once"
//! duration = "30s"
//! clients = 10
//! workload = { kind = "open", rate = 200 }
//!
//! [policy]
//! max_attempts = 2
//! attempt_timeout = "1s"
//!
//! [[layers]]
//! name = "db"
//! workers = 1
//! service = { exponential = "3ms" }
//! "#;
//! let cfg = config::parse(text, "example.toml").unwrap();
//! assert_eq!(cfg.name, "retry-once");
//!
//! let bad = text.replace("workers = 1", "workers = \"one\"");
//! let err = config::parse(&bad, "example.toml").unwrap_err();
//! assert_eq!(err.line, Some(13));
//! assert_eq!(err.field.as_deref(), Some("layers[0].workers"));
//! assert!(err.to_string().starts_with("example.toml:13:11: `layers[0].workers`"), "{err}");
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::Dur;
use crate::model::{LayerSpec, SystemSpec, Workload};
use crate::policy::PolicySpec;
use crate::report::{Band, Cell, Chart, Report, Table};
use crate::scenarios::Options;

/// A custom scenario, as read from TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Name (folder of its files). Default `custom`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Title. Default: the name.
    #[serde(default)]
    pub title: Option<String>,
    /// Runs per variant. Default 3.
    #[serde(default = "default_runs")]
    pub runs: u32,
    /// How long to simulate.
    #[serde(default = "default_duration")]
    pub duration: Dur,
    /// Bin width of the series. Default 1 s.
    #[serde(default = "default_bin")]
    pub bin: Dur,
    /// Number of clients. Default 1.
    #[serde(default = "default_clients")]
    pub clients: u32,
    /// Where calls come from.
    pub workload: Workload,
    /// The clients' policy.
    #[serde(default)]
    pub policy: PolicySpec,
    /// Servers, front first.
    pub layers: Vec<LayerSpec>,
    /// End of the trigger, for the time to recover.
    #[serde(default)]
    pub trigger_end: Option<Dur>,
    /// Extra time without new calls at the end.
    #[serde(default)]
    pub drain: Option<Dur>,
    /// Policies to compare; each replaces `policy`. Default: just `policy`.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

/// One policy to compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name in tables and legends.
    pub name: String,
    /// The clients' policy for this variant.
    pub policy: PolicySpec,
}

fn default_name() -> String {
    "custom".into()
}
fn default_runs() -> u32 {
    3
}
fn default_duration() -> Dur {
    Dur(Duration::from_secs(60))
}
fn default_bin() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_clients() -> u32 {
    1
}

/// A bad config: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted path of the field, when known (`layers[0].workers`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(p) = &self.field {
            write!(f, "`{p}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Finds the line of `key = ...` (or `[key]`, `[[key]]`) for a field that
/// failed validation after parsing, so semantic errors point at a line too.
fn locate(text: &str, field: &str) -> Option<(usize, usize)> {
    // The last path segment, without an index: `layers[1].failure_rate` → `failure_rate`.
    let key = field.rsplit('.').next()?.split('[').next()?;
    // Indexed tables: count `[[layers]]` headers to find the n-th.
    let mut wanted_table: Option<(&str, usize)> = None;
    for seg in field.split('.') {
        if let Some((name, rest)) = seg.split_once('[') {
            let idx: usize = rest.trim_end_matches(']').parse().ok()?;
            wanted_table = Some((name, idx));
        }
    }
    let mut start = 0usize;
    if let Some((name, idx)) = wanted_table {
        let header = format!("[[{name}]]");
        let mut seen = 0;
        let mut found = None;
        for (i, l) in text.lines().enumerate() {
            if l.trim_start().starts_with(&header) {
                if seen == idx {
                    found = Some(i);
                    break;
                }
                seen += 1;
            }
        }
        start = found?;
    }
    for (i, l) in text.lines().enumerate().skip(start) {
        let t = l.trim_start();
        let is_key = t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
            || t.contains(&format!(" {key} ="))
            || t.contains(&format!("{{{key} ="))
            || t.starts_with(&format!("[{key}]"))
            || t.contains(&format!(".{key}]"));
        if is_key {
            let col = l.find(key).unwrap_or(0) + 1;
            return Some((i + 1, col));
        }
    }
    None
}

/// Parses and validates a config; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<ConfigFile, ConfigError> {
    let err = |line: Option<(usize, usize)>, field: Option<String>, message: String| ConfigError {
        file: file.into(),
        line: line.map(|l| l.0),
        column: line.map(|l| l.1),
        field,
        message,
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        err(
            e.span().map(|s| line_col(text, s.start)),
            None,
            e.message().trim().to_string(),
        )
    })?;
    let cfg: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        let pos = inner
            .span()
            .map(|s| line_col(text, s.start))
            .or_else(|| field.as_deref().and_then(|f| locate(text, f)));
        err(pos, field, inner.message().trim().to_string())
    })?;
    if cfg.runs == 0 || cfg.runs > 10_000 {
        return Err(err(
            locate(text, "runs"),
            Some("runs".into()),
            "must be between 1 and 10000".into(),
        ));
    }
    for (i, v) in cfg.variants.iter().enumerate() {
        let spec = cfg.spec(&v.policy);
        spec.validate().map_err(|e| {
            let field = e
                .field
                .replacen("policy", &format!("variants[{i}].policy"), 1);
            err(locate(text, &field), Some(field), e.message)
        })?;
    }
    cfg.spec(&cfg.policy).validate().map_err(|e| {
        let pos = locate(text, &e.field);
        err(pos, Some(e.field), e.message)
    })?;
    Ok(cfg)
}

impl ConfigFile {
    /// The system with the clients' policy `policy`.
    pub fn spec(&self, policy: &PolicySpec) -> SystemSpec {
        SystemSpec {
            duration: self.duration,
            bin: self.bin,
            clients: self.clients,
            workload: self.workload.clone(),
            policy: policy.clone(),
            layers: self.layers.clone(),
            trigger_end: self.trigger_end,
            drain: self.drain.unwrap_or_default(),
        }
    }

    /// The variants to run: the `[[variants]]`, or `policy` alone.
    pub fn variants(&self) -> Vec<Variant> {
        if self.variants.is_empty() {
            vec![Variant {
                name: self.policy.describe(),
                policy: self.policy.clone(),
            }]
        } else {
            self.variants.clone()
        }
    }

    /// Runs every variant and reports load, success, latency and goodput.
    pub fn run(&self, opts: &Options<'_>) -> Report {
        let runs = opts.runs.unwrap_or(self.runs).max(1);
        let variants = self.variants();
        let specs: Vec<SystemSpec> = variants.iter().map(|v| self.spec(&v.policy)).collect();
        let results = crate::scenarios::run_specs(opts, &self.name, &specs, runs);
        let mut rep = Report::new(
            &self.name,
            self.title.as_deref().unwrap_or(&self.name),
            "custom scenario (--config)",
            opts.seed,
            runs,
        );
        rep.setup = format!(
            "{} client(s), {} layer(s), {} simulated; {} variant(s).",
            self.clients,
            self.layers.len(),
            self.duration,
            variants.len()
        );
        let mut t = Table::new(
            "summary",
            "Per variant (mean over runs)",
            &[
                "variant",
                "first tries",
                "load (attempts/call)",
                "bottom load",
                "success",
                "p50 latency (ms)",
                "p99 latency (ms)",
                "timeouts",
                "wasted answers",
                "unfinished",
                "time to recover (s)",
            ],
        );
        let mut chart = Chart::new(
            "goodput",
            "Goodput over time (first run)",
            "time (s)",
            "goodput (calls/s)",
        );
        if let Some(te) = self.trigger_end {
            chart.bands.push(Band {
                from: 0.0,
                to: te.0.as_secs_f64(),
                label: "until trigger end".into(),
            });
        }
        for (v, mut rs) in variants.iter().zip(results) {
            let p50 = rs
                .iter_mut()
                .filter_map(|r| r.latency_percentile(50.0))
                .map(|x| x as f64 / 1e6)
                .collect::<Vec<_>>();
            let p99 = rs
                .iter_mut()
                .filter_map(|r| r.latency_percentile(99.0))
                .map(|x| x as f64 / 1e6)
                .collect::<Vec<_>>();
            let n = rs.len() as f64;
            let avg =
                |f: &dyn Fn(&crate::stats::RunStats) -> f64| rs.iter().map(f).sum::<f64>() / n;
            let rec: Vec<Option<f64>> = match self.trigger_end {
                Some(te) => rs
                    .iter()
                    .map(|r| r.recovery_after(crate::dist::nanos(te.0), 5, 0.9))
                    .collect(),
                None => Vec::new(),
            };
            let rec_cell = if rec.is_empty() {
                Cell::Empty
            } else if rec.iter().all(Option::is_some) {
                Cell::num(rec.iter().flatten().sum::<f64>() / rec.len() as f64, 1)
            } else {
                Cell::text("did not recover")
            };
            t.row(vec![
                Cell::text(&v.name),
                Cell::num(avg(&|r| r.first_tries as f64), 0),
                Cell::num(avg(&|r| r.amplification()), 3),
                Cell::num(avg(&|r| r.bottom_amplification()), 3),
                Cell::num(avg(&|r| r.success_rate()), 4),
                if p50.is_empty() {
                    Cell::Empty
                } else {
                    Cell::num(crate::stats::mean(&p50), 1)
                },
                if p99.is_empty() {
                    Cell::Empty
                } else {
                    Cell::num(crate::stats::mean(&p99), 1)
                },
                Cell::num(avg(&|r| r.timeouts as f64), 0),
                Cell::num(avg(&|r| r.wasted as f64), 0),
                Cell::num(avg(&|r| r.unfinished as f64), 0),
                rec_cell,
            ]);
            let secs = rs[0].bin_nanos as f64 / 1e9;
            chart.line(
                v.name.clone(),
                rs[0]
                    .goodput_per_second()
                    .iter()
                    .enumerate()
                    .map(|(i, &g)| [(i as f64 + 0.5) * secs, g])
                    .collect(),
            );
        }
        rep.tables.push(t);
        rep.charts.push(chart);
        rep
    }
}

/// An example config, shown by `rebound simulate --help` and tested.
pub const EXAMPLE: &str = r#"# A 300 QPS server, clients retrying once after a 1 s timeout, a 10 s stall.
name = "retry-storm"
title = "Does a budget save us from a retry storm?"
runs = 2
duration = "90s"
clients = 10
trigger_end = "20s"
workload = { kind = "open", rate = 200 }

[[layers]]
name = "api"
workers = 1
service = { exponential = "3.333ms" }
outages = [{ start = "10s", end = "20s", mode = "stall" }]

[[variants]]
name = "retry once"
policy = { max_attempts = 2, attempt_timeout = "1s", backoff = { schedule = "constant", base = "0s" } }

[[variants]]
name = "retry once, 10% budget"
policy = { max_attempts = 2, attempt_timeout = "1s", backoff = { schedule = "constant", base = "0s" }, budget = { ratio = 0.1, min_retries_per_second = 0 } }

[[variants]]
name = "retry once, adaptive throttle"
policy = { max_attempts = 2, attempt_timeout = "1s", backoff = { schedule = "constant", base = "0s" }, throttle = { k = 2.0, window = "30s" } }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses() {
        let c = parse(EXAMPLE, "example.toml").unwrap();
        assert_eq!(c.variants.len(), 3);
        assert!(c.variants[2].policy.throttle.is_some());
        assert_eq!(c.layers[0].workers, Some(1));
    }

    #[test]
    fn semantic_errors_name_field_and_line() {
        let bad = EXAMPLE.replace("workers = 1", "workers = 1\nfailure_rate = 1.5");
        let e = parse(&bad, "x.toml").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("layers[0].failure_rate"));
        assert_eq!(e.line, Some(13), "{e}");
        let bad = EXAMPLE.replace("max_attempts = 2, attempt_timeout = \"1s\", backoff = { schedule = \"constant\", base = \"0s\" } }", "max_attempts = 0 }");
        let e = parse(&bad, "x.toml").unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("variants[0].policy.max_attempts"),
            "{e}"
        );
        assert_eq!(e.line, Some(18), "{e}");
    }

    #[test]
    fn a_bad_throttle_names_its_field_and_line() {
        let bad = EXAMPLE.replace("k = 2.0", "k = 0.5");
        let e = parse(&bad, "x.toml").unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("variants[2].policy.throttle.k"),
            "{e}"
        );
        assert_eq!(e.line, Some(26), "{e}");
        assert!(e.message.contains("at least 1"), "{e}");
        let bad = EXAMPLE.replace("k = 2.0", "kay = 2.0");
        let e = parse(&bad, "x.toml").unwrap_err();
        assert!(e.message.contains("unknown field `kay`"), "{e}");
        assert_eq!(e.line, Some(26), "{e}");
    }

    #[test]
    fn syntax_errors_and_unknown_fields() {
        let e = parse("name = ", "x.toml").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = parse(
            &EXAMPLE.replace("clients = 10", "clients = 10\nclient = 3"),
            "x.toml",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown field `client`"), "{e}");
        assert_eq!(e.line, Some(7));
        let e = parse(&EXAMPLE.replace("\"3.333ms\"", "\"3 parsecs\""), "x.toml").unwrap_err();
        assert!(e.message.contains("invalid duration"), "{e}");
        assert_eq!(e.field.as_deref(), Some("layers[0].service.exponential"));
        assert_eq!(e.line, Some(13));
    }
}
