//! `rebound check FILE`: the retry decision checklist, executable.
//!
//! For every dependency of a service's policy file (the core's
//! [`rebound::config::Policies`] schema), the six questions to answer
//! before adding retries — is the failure transient, is the operation safe
//! to retry, who owns the retry, what is the policy, what happens when
//! retries fail, can you observe it — answered from the real policy
//! objects the file builds: the layers that retry and how they multiply,
//! the load on a dead dependency (measured by running those policies in
//! the simulator's virtual time, with and without their budgets), the
//! worst-case latency against the total timeout, what a give-up returns,
//! and the series that show it. Dangerous settings fail the check.

mod analyze;
mod load;
mod path;
mod render;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rebound::config::Policies;
use serde::Serialize;

pub use report::{DependencyReport, Severity};

/// Examples for `rebound check --help`.
pub const EXAMPLES: &str = "\
Examples:
  rebound check policies.toml
      The checklist for every dependency; exit 1 on a dangerous setting.
  rebound check policies.json --format markdown > RETRIES.md
      The same as Markdown, for a design review or a pull request.
  rebound check policies.toml --format json --rate 500
      Machine-readable; the dead-dependency load measured at 500 calls/s.

Dangerous (exit 1): retries with nothing limiting them across calls (no budget,
breaker or throttle), retries at several layers without a budget on each, a
timeout around a layer shorter than one of its attempts. --strict also fails on
warnings. A file that does not parse or validate exits 2, naming line and field.";

/// Arguments of `rebound check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A service's policy file: TOML, or JSON when it ends in `.json`.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// How to print the report.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Calls per second for the dead-dependency measurement (a ratio
    /// budget's floor matters more at low traffic).
    #[arg(long, value_name = "CALLS_PER_S", default_value_t = 100.0)]
    rate: f64,

    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    strict: bool,

    /// Check only this dependency (repeat for several).
    #[arg(long, short = 'd', value_name = "NAME")]
    dependency: Vec<String>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// For a terminal.
    Text,
    /// For a review or a README.
    Markdown,
    /// For tools.
    Json,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The file checked.
    pub file: String,
    /// `pass` or `fail`.
    pub verdict: &'static str,
    /// Dangerous findings.
    pub dangers: usize,
    /// Warnings.
    pub warnings: usize,
    /// Per dependency.
    pub dependencies: Vec<DependencyReport>,
}

/// Runs the command.
pub fn run(args: CheckArgs) -> ExitCode {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 1e6) {
        eprintln!(
            "error: --rate must be a number of calls per second in (0, 1000000]; got {}",
            args.rate
        );
        return ExitCode::from(2);
    }
    let display = args.file.display().to_string();
    let src = match std::fs::read_to_string(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {display}: {e}");
            return ExitCode::from(2);
        }
    };
    let json = args
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = if json {
        Policies::from_json_str(&src)
    } else {
        Policies::from_toml_str(&src)
    };
    let policies = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {display}: {e}");
            return ExitCode::from(2);
        }
    };
    for name in &args.dependency {
        if policies.dependency(name).is_none() {
            let known: Vec<&str> = policies.dependencies.keys().map(String::as_str).collect();
            eprintln!(
                "error: {display} has no dependency `{name}` (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
            return ExitCode::from(2);
        }
    }
    if policies.dependencies.is_empty() {
        eprintln!("error: {display} declares no dependency (`[dependencies.NAME]` tables)");
        return ExitCode::from(2);
    }
    let mut dependencies = Vec::new();
    for (name, dep) in &policies.dependencies {
        if !args.dependency.is_empty() && !args.dependency.contains(name) {
            continue;
        }
        match analyze::dependency(name, dep, args.rate) {
            Ok(r) => dependencies.push(r),
            Err(e) => {
                eprintln!("error: {display}: `dependencies.{name}.{}`: {e}", e.path());
                return ExitCode::from(2);
            }
        }
    }
    let count = |s: Severity| {
        dependencies
            .iter()
            .flat_map(|d| &d.findings)
            .filter(|f| f.severity == s)
            .count()
    };
    let dangers = count(Severity::Danger);
    let warnings = count(Severity::Warning);
    let fail = dangers > 0 || (args.strict && warnings > 0);
    let report = Report {
        file: display,
        verdict: if fail { "fail" } else { "pass" },
        dangers,
        warnings,
        dependencies,
    };
    let out = match args.format {
        Format::Text => render::text(&report),
        Format::Markdown => render::markdown(&report),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("error: cannot write the report as JSON: {e}");
                return ExitCode::from(2);
            }
        },
    };
    print!("{out}");
    if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
