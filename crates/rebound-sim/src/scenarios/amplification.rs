//! `amplification`: what n retries do at an i.i.d. failure rate f.
//!
//! With every attempt failing independently with probability f and up to n
//! retries, a call makes Σ_{i=0..n} fⁱ attempts on average and succeeds with
//! probability 1 − fⁿ⁺¹. At f = 1 the dependency gets 1 + n times the work
//! (Brooker, "What is Backoff For?", 2022).

use std::time::Duration;

use crate::model::{LayerSpec, SystemSpec, Workload};
use crate::policy::CallerPolicy;
use crate::report::{Cell, Chart, ScenarioReport, Table};
use crate::scenarios::tables;
use crate::scenarios::Options;

/// Retries in the main sweep.
pub const RETRIES: u32 = 3;

/// Closed-form load (attempts per call): Σ_{i=0..n} fⁱ.
pub fn load(f: f64, n: u32) -> f64 {
    (0..=n).map(|i| f.powi(i as i32)).sum()
}

/// Closed-form success rate: 1 − fⁿ⁺¹.
pub fn success(f: f64, n: u32) -> f64 {
    1.0 - f.powi(n as i32 + 1)
}

/// A single server failing at rate `f`, called `first_tries` times at
/// 1000/s by clients allowing `retries` retries.
pub fn spec(f: f64, retries: u32, first_tries: u64) -> SystemSpec {
    let rate = 1000.0;
    SystemSpec {
        duration: Duration::from_secs_f64(first_tries as f64 / rate),
        clients: 1,
        workload: Workload::open(rate),
        policy: CallerPolicy::new(tables::retry(tables::attempts(retries + 1))),
        drain: Duration::from_secs(10),
        layers: vec![LayerSpec {
            name: "dependency".into(),
            failure_rate: f,
            ..LayerSpec::default()
        }],
        ..SystemSpec::default()
    }
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let runs = opts.runs_or(1, 1, 1);
    let first_tries: u64 = opts.pick(100_000, 100_000, 100_000);
    let fs: Vec<f64> = opts.pick(
        vec![
            0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
        ],
        vec![0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.99, 1.0],
        vec![0.1, 0.5, 0.9, 1.0],
    );
    let ns: Vec<u32> = (0..=5).collect();
    let mut specs: Vec<SystemSpec> = fs.iter().map(|&f| spec(f, RETRIES, first_tries)).collect();
    // At f = 1: 1 + n for n = 0..5, on fewer calls (the answer is exact).
    specs.extend(ns.iter().map(|&n| spec(1.0, n, 10_000)));
    let results = super::run_specs(opts, "amplification", &specs, runs);

    let mut rep = ScenarioReport::new(
        "amplification",
        "Retry amplification at an i.i.d. failure rate",
        "closed form; Marc Brooker, \"What is Backoff For?\", 2022 (\"1 + n times as much work\")",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "One dependency fails each attempt independently with probability f; clients call it {} times \
         per point (Poisson, 1000/s) with a rebound RetryPolicy (`retry = {{ max_attempts = {}, backoff = {{ kind = \"constant\", base = \"0s\" }} }}`) (n = {} retries). \
         Load = attempts / first tries; success = calls that succeeded / calls.",
        first_tries,
        RETRIES + 1,
        RETRIES
    );
    let mut t = Table::new(
        "load",
        &format!("Load and success at failure rate f, n = {RETRIES} retries"),
        &[
            "f",
            "first tries",
            "load",
            "load (closed form)",
            "load error",
            "success",
            "success (closed form)",
            "success error",
        ],
    );
    let mut worst_load: f64 = 0.0;
    let mut worst_success: f64 = 0.0;
    let mut c_load = Chart::new(
        "load",
        "Load vs failure rate (n = 3)",
        "failure rate f",
        "attempts per first try",
    );
    let mut c_succ = Chart::new(
        "success",
        "Success vs failure rate (n = 3)",
        "failure rate f",
        "success rate",
    );
    let (mut pl, mut ps) = (Vec::new(), Vec::new());
    for (i, &f) in fs.iter().enumerate() {
        let rs = &results[i];
        let tries: u64 = rs.iter().map(|r| r.first_tries).sum();
        let attempts: u64 = rs.iter().map(|r| r.attempts[0]).sum();
        let ok: u64 = rs.iter().map(|r| r.successes).sum();
        let done: u64 = rs.iter().map(|r| r.successes + r.failures.total()).sum();
        let l = attempts as f64 / tries as f64;
        let s = ok as f64 / done.max(1) as f64;
        let (el, es) = (load(f, RETRIES), success(f, RETRIES));
        let le = l / el - 1.0;
        // Success is a proportion: its error is absolute (percentage points),
        // since near f = 1 a relative error of a tiny rate is all noise.
        let se = s - es;
        worst_load = worst_load.max(le.abs());
        worst_success = worst_success.max(se.abs());
        t.row(vec![
            Cell::num(f, 2),
            Cell::int(tries),
            Cell::num(l, 4),
            Cell::num(el, 4),
            Cell::text(format!("{:+.2}%", le * 100.0)),
            Cell::num(s, 4),
            Cell::num(es, 4),
            Cell::text(format!("{:+.2} pt", se * 100.0)),
        ]);
        pl.push([f, l]);
        ps.push([f, s]);
    }
    let grid: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
    c_load.line("simulated", pl);
    c_load.dashed(
        "Σ fⁱ",
        grid.iter().map(|&f| [f, load(f, RETRIES)]).collect(),
    );
    c_succ.line("simulated", ps);
    c_succ.dashed(
        "1 − fⁿ⁺¹",
        grid.iter().map(|&f| [f, success(f, RETRIES)]).collect(),
    );
    rep.tables.push(t);

    let mut t2 = Table::new(
        "dead",
        "A dead dependency (f = 1): load = 1 + n",
        &["retries n", "load", "expected 1 + n"],
    );
    let mut exact = true;
    let mut dead = Vec::new();
    for (k, &n) in ns.iter().enumerate() {
        let rs = &results[fs.len() + k];
        let tries: u64 = rs.iter().map(|r| r.first_tries).sum();
        let attempts: u64 = rs.iter().map(|r| r.attempts[0]).sum();
        let l = attempts as f64 / tries as f64;
        exact &= (l - (1 + n) as f64).abs() < 1e-9;
        dead.push(format!("{l:.0}"));
        t2.row(vec![Cell::int(n), Cell::num(l, 3), Cell::int(1 + n)]);
    }
    rep.tables.push(t2);
    rep.charts.push(c_load);
    rep.charts.push(c_succ);
    rep.check(
        format!("load = Σ_{{i=0..n}} fⁱ within 1% at ≥ 10⁵ first tries (n = {RETRIES})"),
        format!(
            "largest error {:.2}% over {} failure rates",
            worst_load * 100.0,
            fs.len()
        ),
        worst_load < 0.01,
    );
    rep.check(
        "success = 1 − fⁿ⁺¹ within 1 percentage point",
        format!("largest error {:.2} points", worst_success * 100.0),
        worst_success < 0.01,
    );
    rep.check(
        "at f = 1, n retries make 1 + n times the work",
        format!("n = 0..5 gave {}", dead.join(", ")),
        exact,
    );
    rep
}
