//! Custom scenarios from a TOML file (`rebound simulate --config FILE.toml`).
//!
//! The file describes a system — clients, workload, the servers of the
//! stack — and the policies to compare on it. **Policies are written in
//! the core's syntax**, the table a service's policy file holds under
//! `[dependencies.NAME]` ([`rebound::config::DependencyConfig`]), either
//! embedded:
//!
//! ```toml
//! policy = { retry = { max_attempts = 2, attempt_timeout = "1s" } }
//! ```
//!
//! or taken from a service's policy file, unchanged, by dependency name
//! (the path is relative to the scenario file; `.json` files are read as
//! JSON):
//!
//! ```toml
//! policy = { file = "policies.toml", dependency = "inventory" }
//! ```
//!
//! The clients' policy is the top-level `policy`, with `scope` saying who
//! shares a policy object (`client`, the default, or `shared`: a simulator
//! setting, outside the policy); each `[[layers]]` entry may have a
//! `policy` for how it calls the layer below; each `[[variants]]` entry
//! (`name`, `policy`, optionally `scope`) replaces the clients' policy, to
//! compare policies on the same system. A bad file is an error naming the
//! file, line and field — in the scenario file, or in the policy file it
//! points at — never a panic.
//!
//! ```
//! use rebound_sim::scenario_file;
//!
//! let text = r#"
//! name = "retry-once"
//! duration = "30s"
//! clients = 10
//! workload = { kind = "open", rate = 200 }
//! policy = { retry = { max_attempts = 2, attempt_timeout = "1s" } }
//!
//! [[layers]]
//! name = "db"
//! workers = 1
//! service = { exponential = "3ms" }
//! "#;
//! let scenario = scenario_file::parse(text, "example.toml")?;
//! assert_eq!(scenario.name, "retry-once");
//!
//! let bad = text.replace("workers = 1", "workers = \"one\"");
//! let err = scenario_file::parse(&bad, "example.toml").unwrap_err();
//! assert_eq!(err.line, Some(10));
//! assert_eq!(err.field.as_deref(), Some("layers[0].workers"));
//! assert!(err.to_string().starts_with("example.toml:10:11: `layers[0].workers`"), "{err}");
//!
//! let bad = text.replace("max_attempts = 2", "max_attempts = 0");
//! let err = scenario_file::parse(&bad, "example.toml").unwrap_err();
//! assert_eq!((err.line, err.field.as_deref()), (Some(6), Some("policy.retry.max_attempts")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rebound::config::{toml_line_of, Policies};
use serde::Deserialize;

use crate::engine::VirtualTime;
use crate::model::{LayerSpec, SystemSpec, Workload};
use crate::policy::{CallerPolicy, PolicySource, Scope};

mod entry;
mod example;
mod report;

pub use entry::PolicyEntry;
pub use example::EXAMPLE;

/// A custom scenario, read from TOML, its policy references resolved.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    /// Name (folder of its files). Default `custom`.
    pub name: String,
    /// Title. Default: the name.
    pub title: Option<String>,
    /// Runs per variant. Default 3.
    pub runs: u32,
    /// The system, with the clients' policy (the top-level `policy`).
    pub system: SystemSpec,
    /// The policies to compare; each replaces the clients' policy.
    /// Default: just the top-level one.
    pub variants: Vec<Variant>,
}

/// One policy to compare.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Name in tables and legends.
    pub name: String,
    /// The clients' policy for this variant.
    pub policy: CallerPolicy,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default = "default_runs")]
    runs: u32,
    #[serde(default = "default_duration", with = "humantime_serde")]
    duration: Duration,
    #[serde(default = "default_bin", with = "humantime_serde")]
    bin: Duration,
    #[serde(default = "default_clients")]
    clients: u32,
    workload: Workload,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    policy: Option<PolicyEntry>,
    layers: Vec<LayerSpec<PolicyEntry>>,
    #[serde(default, with = "humantime_serde")]
    trigger_end: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    drain: Option<Duration>,
    #[serde(default)]
    variants: Vec<VariantForm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantForm {
    name: String,
    #[serde(default)]
    scope: Option<Scope>,
    policy: PolicyEntry,
}

fn default_name() -> String {
    "custom".into()
}
fn default_runs() -> u32 {
    3
}
fn default_duration() -> Duration {
    Duration::from_secs(60)
}
fn default_bin() -> Duration {
    Duration::from_secs(1)
}
fn default_clients() -> u32 {
    1
}

/// A bad scenario file: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioFileError {
    /// The file, as given (the scenario file, or a policy file it points
    /// at).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted path of the field, when known (`layers[0].workers`,
    /// `dependencies.inventory.retry.max_attempts`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioFileError {
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

impl std::error::Error for ScenarioFileError {}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A file being read: its name and text, for errors.
struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// An error at `field`, its line found in the text.
    fn at(&self, field: impl Into<String>, message: impl Into<String>) -> ScenarioFileError {
        let field = field.into();
        ScenarioFileError {
            file: self.name.into(),
            line: toml_line_of(self.text, &field),
            column: None,
            field: Some(field),
            message: message.into(),
        }
    }
}

/// Reads and checks a scenario file from disk; policy files it points at
/// are read relative to it.
pub fn load(path: &Path) -> Result<ScenarioFile, ScenarioFileError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioFileError {
        file: name.clone(),
        line: None,
        column: None,
        field: None,
        message: format!("cannot read it: {e}"),
    })?;
    parse(&text, &name)
}

/// Parses and checks a scenario; `file` names it in errors, and policy
/// files it points at are read relative to its folder.
pub fn parse(text: &str, file: &str) -> Result<ScenarioFile, ScenarioFileError> {
    let src = Source { name: file, text };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let pos = e.span().map(|s| line_col(text, s.start));
        ScenarioFileError {
            file: file.into(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            field: None,
            message: e.message().trim().to_string(),
        }
    })?;
    let form: Form = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        let pos = inner.span().map(|s| line_col(text, s.start));
        ScenarioFileError {
            file: file.into(),
            line: pos
                .map(|p| p.0)
                .or_else(|| field.as_deref().and_then(|f| toml_line_of(text, f))),
            column: pos.map(|p| p.1),
            field,
            message: inner.message().trim().to_string(),
        }
    })?;
    if form.runs == 0 || form.runs > 10_000 {
        return Err(src.at("runs", "must be between 1 and 10000"));
    }
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let source_of =
        |entry: PolicyEntry, at: &str, label: &str| resolve(entry, base, &src, at, label);
    let client = match form.policy {
        Some(e) => source_of(e, "policy", &form.name)?,
        None => PolicySource::default(),
    };
    let mut layers = Vec::with_capacity(form.layers.len());
    for (i, l) in form.layers.into_iter().enumerate() {
        let label = if l.name.is_empty() {
            format!("layer {i}")
        } else {
            l.name.clone()
        };
        layers.push(l.try_map_policy(|e| source_of(e, &format!("layers[{i}].policy"), &label))?);
    }
    let system = SystemSpec {
        duration: form.duration,
        bin: form.bin,
        clients: form.clients,
        workload: form.workload,
        policy: CallerPolicy {
            source: client,
            scope: form.scope,
        },
        layers,
        trigger_end: form.trigger_end,
        drain: form.drain.unwrap_or_default(),
    };
    let mut variants = Vec::with_capacity(form.variants.len());
    for (i, v) in form.variants.into_iter().enumerate() {
        let at = format!("variants[{i}].policy");
        variants.push(Variant {
            name: v.name,
            policy: CallerPolicy {
                source: source_of(v.policy, &at, &form.name)?,
                scope: v.scope.unwrap_or(form.scope),
            },
        });
    }
    for (i, v) in variants.iter().enumerate() {
        let spec = with_policy(&system, &v.policy);
        spec.validate().map_err(|e| {
            let field = match e.field.strip_prefix("policy") {
                Some(rest) => format!("variants[{i}].policy{rest}"),
                None => e.field,
            };
            src.at(field, e.message)
        })?;
    }
    system.validate().map_err(|e| src.at(e.field, e.message))?;
    Ok(ScenarioFile {
        name: form.name,
        title: form.title,
        runs: form.runs,
        system,
        variants,
    })
}

/// A policy entry as the source it names: an embedded table as is
/// (labelled `label`), a reference read from its file, checked there.
fn resolve(
    entry: PolicyEntry,
    base: &Path,
    src: &Source<'_>,
    at: &str,
    label: &str,
) -> Result<PolicySource, ScenarioFileError> {
    let (file, dependency) = match entry {
        PolicyEntry::Inline(config) => return Ok(PolicySource::config(label, *config)),
        PolicyEntry::File { file, dependency } => (file, dependency),
    };
    let path = base.join(&file);
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| src.at(format!("{at}.file"), format!("cannot read {name}: {e}")))?;
    let json = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("json"));
    let policies = if json {
        Policies::from_json_str(&text)
    } else {
        Policies::from_toml_str(&text)
    }
    .map_err(|e| ScenarioFileError {
        file: name.clone(),
        line: e.line(),
        column: None,
        field: (!e.path().is_empty()).then(|| e.path().to_string()),
        message: e.message().to_string(),
    })?;
    let Some(config) = policies.dependency(&dependency) else {
        let known: Vec<&str> = policies.dependencies.keys().map(String::as_str).collect();
        return Err(src.at(
            format!("{at}.dependency"),
            format!(
                "{name} has no dependency `{dependency}` (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let source = PolicySource::config(&dependency, config.clone());
    // The core checked the file; what the simulator cannot drive is
    // named where it is written.
    if let Err(e) = source.build(&VirtualTime::new(), 0) {
        let field = format!("dependencies.{dependency}.{}", e.path());
        let line = if json {
            None
        } else {
            toml_line_of(&text, &field)
        };
        return Err(ScenarioFileError {
            file: name,
            line,
            column: None,
            field: Some(field),
            message: e.to_string(),
        });
    }
    Ok(source)
}

/// `system` with the clients' policy `policy`.
fn with_policy(system: &SystemSpec, policy: &CallerPolicy) -> SystemSpec {
    SystemSpec {
        policy: policy.clone(),
        ..system.clone()
    }
}
