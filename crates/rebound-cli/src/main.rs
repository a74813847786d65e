//! `rebound`: see what a retry policy does to a struggling system before it
//! ships.
//!
//! ```text
//! rebound simulate                          # a short tour of every scenario
//! rebound simulate --scenario jitter-occ    # one scenario at its published size
//! rebound simulate --config my-system.toml  # your own system and policies
//! rebound demo --open                       # the order → inventory story, live
//! ```
//!
//! The command is a thin front door: the simulator is the `rebound-sim`
//! library, which drives the real `rebound` policies in virtual time.

mod chaos;
mod check;
mod demo;
mod dlq;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rebound_sim::scenarios::{self, Options, Size};
use rebound_sim::sweep::Progress;
use rebound_sim::{output, scenario_file};

const SIMULATE_EXAMPLES: &str = "\
Examples:
  rebound simulate
      A short tour of every scenario (well under a minute); the report goes to ./rebound-report/.
  rebound simulate --scenario jitter-occ
      Brooker's backoff-and-jitter study at its published size (19 x 5 x 100 runs).
  rebound simulate --scenario metastable --scenario spike --runs 5 --seed 7 --out storm/
      Two scenarios, 5 runs per point, another seed, into storm/.
  rebound simulate --scenario tail-at-scale
      Dean and Barroso's hedged requests: the p99.9 cut tenfold, and what hedging costs.
  rebound simulate --config retry-storm.toml
      Your own system and policies, written as your service's policy file writes them or
      read from it (`policy = { file = \"policies.toml\", dependency = \"inventory\" }`);
      see `rebound simulate --example-config`.
  rebound simulate --list
      The scenarios and what each reproduces.

Outputs: a table per scenario on the terminal; in the output folder, index.html linking
every chart (SVG and PNG), a CSV per table and chart, report.json per scenario and summary.json.
The same seed gives byte-identical CSV, JSON, SVG and HTML.";

/// See what a retry policy does to a struggling system before it ships.
///
/// rebound is a Rust resilience toolkit: retries with backoff and jitter,
/// retry budgets, circuit breakers, hedging. This command runs its
/// simulator, which drives the real rebound policy objects in virtual time.
#[derive(Debug, Parser)]
#[command(name = "rebound", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate retry storms, budgets, breakers, adaptive throttling,
    /// metastable failure and hedged requests; write tables, charts and an
    /// HTML report.
    #[command(after_help = SIMULATE_EXAMPLES)]
    Simulate(SimulateArgs),
    /// Run a fault-injecting HTTP proxy in front of a service, for tests in
    /// any language: latency, 5xx, 429/503 with Retry-After, resets, dropped
    /// answers, slow bodies, blackholes; on a timeline, with a control API.
    #[command(after_help = chaos::EXAMPLES)]
    Chaos(chaos::ChaosArgs),
    /// Inspect and operate the dead-letter queue of a rebound-jobs queue:
    /// list, show, redrive, purge, depth.
    Dlq(dlq::DlqArgs),
    /// The order → inventory story live on loopback: naive retries beside
    /// rebound (idempotency keys, retry budget, breaker, fallback queue,
    /// dead-letter queue) under a chaos timeline, on a web dashboard.
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
    /// The retry decision checklist for every dependency of a policy file:
    /// what is retried, is it safe, which layers retry and how they
    /// multiply, the load on a dead dependency with and without budgets,
    /// the worst-case latency, what a give-up returns, which series show
    /// it. Exits 1 on dangerous settings.
    #[command(after_help = check::EXAMPLES)]
    Check(check::CheckArgs),
    // `proxy` will join here.
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// Run this built-in scenario (repeat for several). Without it and
    /// without --config, a short tour of all of them runs.
    #[arg(long, short = 's', value_name = "NAME")]
    scenario: Vec<String>,

    /// Runs per point of a sweep (default: the scenario's; fewer in the tour).
    #[arg(long, short = 'r', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: Option<u32>,

    /// Seed of the sweep; the same seed gives the same results, byte for byte.
    #[arg(long, value_name = "SEED", default_value_t = rebound_sim::seed::DEFAULT_SEED)]
    seed: u64,

    /// Folder for the report (created if missing).
    #[arg(
        long,
        short = 'o',
        value_name = "DIR",
        default_value = "rebound-report"
    )]
    out: PathBuf,

    /// A custom scenario: clients, servers, failures and the policies to
    /// compare, in TOML; policies in the syntax of a service's policy file,
    /// or read from one.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE.toml",
        conflicts_with = "scenario"
    )]
    config: Option<PathBuf>,

    /// Use the tour's reduced sizes for the named scenarios too.
    #[arg(long)]
    quick: bool,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// Print an example --config file and exit.
    #[arg(long)]
    example_config: bool,

    /// Do not print the tables.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// An indicatif bar, hidden when stderr is not a terminal or under CI.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let hidden =
            !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some_and(|v| v == "true");
        let pb = ProgressBar::with_draw_target(
            None,
            if hidden {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        pb.set_style(
            ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} runs ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Bar(pb)
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        self.0.reset();
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_message(label.to_string());
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => match simulate(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Chaos(args) => chaos::run(args),
        Command::Dlq(args) => dlq::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Check(args) => check::run(args),
    }
}

fn simulate(args: SimulateArgs) -> Result<(), String> {
    if args.list {
        say("Built-in scenarios (rebound simulate --scenario NAME):\n\n");
        for s in scenarios::all() {
            say(&format!("  {:<14} {}\n", s.name, s.summary));
        }
        for (name, why) in scenarios::planned() {
            say(&format!("  {name:<14} not yet: {why}\n"));
        }
        return Ok(());
    }
    if args.example_config {
        say(scenario_file::EXAMPLE);
        return Ok(());
    }
    let bar = Bar::new();
    let tour = args.scenario.is_empty() && args.config.is_none();
    let size = if tour || args.quick {
        Size::Tour
    } else {
        Size::Full
    };
    let opts = Options {
        seed: args.seed,
        runs: args.runs,
        size,
        progress: &bar,
    };
    let started = Instant::now();
    let mut reports = Vec::new();
    if let Some(path) = &args.config {
        let scenario = scenario_file::load(path).map_err(|e| e.to_string())?;
        reports.push(scenario.run(&opts));
    } else {
        let chosen: Vec<&scenarios::Scenario> = if tour {
            scenarios::all().iter().collect()
        } else {
            args.scenario
                .iter()
                .map(|n| {
                    scenarios::find(n).ok_or_else(|| {
                        match scenarios::planned().iter().find(|(p, _)| p == n) {
                            Some((_, why)) => {
                                format!("scenario `{n}` is not available yet: it {why}")
                            }
                            None => format!(
                                "no scenario named `{n}`; try one of: {}",
                                scenarios::all()
                                    .iter()
                                    .map(|s| s.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        }
                    })
                })
                .collect::<Result<_, _>>()?
        };
        if tour {
            say(
                "A short tour of every scenario (use --scenario NAME for the published sizes).\n\n",
            );
        }
        for s in chosen {
            let r = s.run(&opts);
            if !args.quiet {
                say(&output::terminal(&r));
            }
            reports.push(r);
        }
    }
    if args.config.is_some() && !args.quiet {
        for r in &reports {
            say(&output::terminal(r));
        }
    }
    let index = output::write_all(&args.out, &reports)
        .map_err(|e| format!("cannot write the report to {}: {e}", args.out.display()))?;
    let held = reports
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| c.holds)
        .count();
    let total: usize = reports.iter().map(|r| r.checks.len()).sum();
    if total > 0 {
        say(&format!("{held} of {total} published claims reproduced.\n"));
    }
    say(&format!(
        "Report written to {}/ (open {}) in {:.1} s.
",
        args.out.display(),
        index.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Writes to stdout; a reader that went away (`| head`) is not an error:
/// the report is still written to its folder.
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
