//! The built-in scenarios: each reproduces a published result with the real
//! rebound policies, and checks it.
//!
//! | name | published result |
//! |---|---|
//! | `jitter-occ` | Brooker 2015: full jitter halves the work of exponential backoff and finishes far sooner |
//! | `amplification` | load = Σ fⁱ, success = 1 − fⁿ⁺¹; at f = 1, 1 + n times the work |
//! | `budgets` | a retry budget caps load near 1 + ratio; per-client token buckets degrade as clients multiply |
//! | `layers` | 3 layers × 4 attempts = 64×, 5 × 3 = 243×; a budget per layer ≈ 1.1× per layer |
//! | `throttle` | Google SRE: adaptive throttling in overload sends ≈ K attempts per accept (K = 2, 1.1) |
//! | `metastable` | Bronson et al. 2021: 1 retry after a 1 s timeout, capacity 300 QPS, collapse above 150 QPS |
//! | `spike` | an M/M/1 with retries on timeout stays down long after a load spike |
//! | `herd` | cache stampede: without protection about N loads at an expiry; coalescing one per key; staggered expiry spreads them; XFetch early refresh (Vattani et al. 2015) reloads before expiry |
//! | `tail-at-scale` | Dean and Barroso 2013: hedging after the p95 cuts the p99.9 by an order of magnitude for a few percent more requests; a budget caps the load when the service is broadly slow |
//!
//! ```
//! use rebound_sim::scenarios::{self, Options, Size};
//!
//! let opts = Options { size: Size::Tour, runs: Some(1), ..Options::default() };
//! let report = scenarios::find("layers").unwrap().run(&opts);
//! assert!(report.all_hold(), "{:#?}", report.checks);
//! ```

use crate::report::ScenarioReport;
use crate::seed::DEFAULT_SEED;
use crate::sweep::{NoProgress, Progress};

pub mod amplification;
pub mod budgets;
pub mod herd;
pub mod jitter_occ;
pub mod layers;
pub mod metastable;
pub mod spike;
pub mod tables;
pub mod tail_at_scale;
pub mod throttle;

/// How big a sweep to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Size {
    /// The published size (e.g. 19 × 5 × 100 runs for `jitter-occ`).
    #[default]
    Full,
    /// A few seconds per scenario: what `rebound simulate` shows with no
    /// arguments.
    Tour,
    /// Smallest sizes that still show the effect (tests in debug builds).
    Test,
}

/// Options of a scenario run.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// Seed of the sweep; run seeds are derived from it.
    pub seed: u64,
    /// Runs per point; `None` for the size's default.
    pub runs: Option<u32>,
    /// Sweep size.
    pub size: Size,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            seed: DEFAULT_SEED,
            runs: None,
            size: Size::Full,
            progress: &NoProgress,
        }
    }
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("seed", &self.seed)
            .field("runs", &self.runs)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Options<'_> {
    /// Runs per point: the user's choice, else `full`/`tour`/`test` by size.
    pub fn runs_or(&self, full: u32, tour: u32, test: u32) -> u32 {
        self.runs
            .unwrap_or(match self.size {
                Size::Full => full,
                Size::Tour => tour,
                Size::Test => test,
            })
            .max(1)
    }

    /// Picks a value by size.
    pub fn pick<T>(&self, full: T, tour: T, test: T) -> T {
        match self.size {
            Size::Full => full,
            Size::Tour => tour,
            Size::Test => test,
        }
    }
}

/// A built-in scenario.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Name on the command line.
    pub name: &'static str,
    /// What it shows, in a line.
    pub summary: &'static str,
    run: fn(&Options<'_>) -> ScenarioReport,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .finish()
    }
}

impl Scenario {
    /// Runs the scenario.
    pub fn run(&self, opts: &Options<'_>) -> ScenarioReport {
        (self.run)(opts)
    }
}

/// Every built-in scenario, in tour order.
pub fn all() -> &'static [Scenario] {
    &[
        Scenario {
            name: "jitter-occ",
            summary: "Brooker 2015: backoff and jitter on contended optimistic writes",
            run: jitter_occ::run,
        },
        Scenario {
            name: "amplification",
            summary: "load and success of n retries at failure rate f (closed forms)",
            run: amplification::run,
        },
        Scenario {
            name: "budgets",
            summary: "retry budgets, token buckets and breakers at 10, 100, 1000 clients",
            run: budgets::run,
        },
        Scenario {
            name: "layers",
            summary: "retries at every layer of a stack: 64x, 243x, and budgets",
            run: layers::run,
        },
        Scenario {
            name: "throttle",
            summary: "Google SRE adaptive throttling: about K attempts per accept in overload",
            run: throttle::run,
        },
        Scenario {
            name: "metastable",
            summary: "Bronson et al. 2021: a retry storm that outlives its trigger",
            run: metastable::run,
        },
        Scenario {
            name: "spike",
            summary: "M/M/1 with retries on timeout after a load spike",
            run: spike::run,
        },
        Scenario {
            name: "tail-at-scale",
            summary:
                "Dean and Barroso 2013: hedged requests cut the p99.9, a budget caps their cost",
            run: tail_at_scale::run,
        },
        Scenario {
            name: "herd",
            summary:
                "the thundering herd at a cache expiry: coalescing, staggered expiry, early refresh",
            run: herd::run,
        },
    ]
}

/// Scenarios announced but not available yet, with the reason (none at
/// the moment: every scenario of the issue is in [`all`]).
pub fn planned() -> &'static [(&'static str, &'static str)] {
    &[]
}

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    all().iter().find(|s| s.name == name)
}

/// Runs every spec `runs` times in parallel; `out[i][r]` is run `r` of
/// spec `i`. Seeds derive from the scenario name, the spec's index and the
/// run index.
pub(crate) fn run_specs(
    opts: &Options<'_>,
    label: &str,
    specs: &[crate::model::SystemSpec],
    runs: u32,
) -> Vec<Vec<crate::stats::RunStats>> {
    let tasks: Vec<(usize, u32)> = (0..specs.len())
        .flat_map(|i| (0..runs).map(move |r| (i, r)))
        .collect();
    opts.progress.start(label, tasks.len() as u64);
    let id = crate::seed::name_id(label);
    let mut flat = crate::sweep::run_all(&tasks, opts.progress, |&(i, r)| {
        let seed = crate::seed::derive(opts.seed, &[id, i as u64, r as u64]);
        crate::model::run(&specs[i], seed).expect("built-in scenarios are valid")
    })
    .into_iter();
    opts.progress.finish();
    (0..specs.len())
        .map(|_| flat.by_ref().take(runs as usize).collect())
        .collect()
}
