//! `layers`: retries at every layer of a stack multiply.
//!
//! Google's SRE book: three layers each making 4 attempts put 64× the load
//! on a failing bottom; the AWS Builders' Library: five layers of 3
//! attempts, 243×. Retrying at one layer only costs that layer's attempts;
//! a 10% retry budget per layer costs about 1.1× per layer.

use std::time::Duration;

use crate::model::{LayerSpec, SystemSpec, Workload};
use crate::policy::CallerPolicy;
use crate::report::{Cell, Chart, ScenarioReport, Table};
use crate::scenarios::tables;
use crate::scenarios::Options;

/// Where the retries are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Every layer retries.
    Every,
    /// Only the top caller retries.
    TopOnly,
    /// Every layer retries under a 10% ratio budget of its own.
    EveryWithBudget,
}

/// `depth` retrying callers (the clients and `depth - 1` servers) above a
/// bottom server that always fails; each makes up to `attempts` attempts.
pub fn spec(depth: usize, attempts: u32, placement: Placement, first_tries: u64) -> SystemSpec {
    let retrying = |top: bool| {
        let n = match placement {
            Placement::TopOnly if !top => 1,
            _ => attempts,
        };
        let mut retry = tables::attempts(n);
        if placement == Placement::EveryWithBudget {
            retry.budget = Some(tables::ratio_budget(0.1));
        }
        tables::retry(retry)
    };
    let rate = 100.0;
    let mut layers: Vec<LayerSpec> = (0..depth - 1)
        .map(|i| LayerSpec {
            name: format!("layer {}", i + 2),
            policy: Some(retrying(false)),
            ..LayerSpec::default()
        })
        .collect();
    layers.push(LayerSpec {
        name: "bottom".into(),
        failure_rate: 1.0,
        ..LayerSpec::default()
    });
    SystemSpec {
        duration: Duration::from_secs_f64(first_tries as f64 / rate),
        workload: Workload::open(rate),
        policy: CallerPolicy::shared(retrying(true)),
        layers,
        drain: Duration::from_secs(10),
        ..SystemSpec::default()
    }
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let runs = opts.runs_or(1, 1, 1);
    let first_tries = opts.pick(5_000, 2_000, 1_000);
    let cases = [
        (3usize, 4u32, Placement::Every),
        (5, 3, Placement::Every),
        (3, 4, Placement::TopOnly),
        (5, 3, Placement::TopOnly),
        (3, 4, Placement::EveryWithBudget),
        (5, 3, Placement::EveryWithBudget),
    ];
    let specs: Vec<SystemSpec> = cases
        .iter()
        .map(|&(d, a, p)| spec(d, a, p, first_tries))
        .collect();
    let results = super::run_specs(opts, "layers", &specs, runs);
    let mut rep = ScenarioReport::new(
        "layers",
        "Retries at every layer of a stack",
        "Google SRE book, ch. 22 (3 layers × 4 attempts = 64×); AWS Builders' Library, \"Timeouts, retries and backoff with jitter\" (5 layers × 3 = 243×)",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "A stack of retrying callers (the clients, then each server calling the next with its own rebound \
         RetryPolicy) above a bottom server that fails every request; {first_tries} calls per case. Load at \
         the bottom = bottom attempts / first tries."
    );
    let mut t = Table::new(
        "bottom_load",
        "Load on the failing bottom layer",
        &[
            "layers",
            "attempts per layer",
            "retries at",
            "bottom load",
            "expected",
            "per layer",
        ],
    );
    let mut chart = Chart::new(
        "bottom_load",
        "Load at the bottom vs depth of the stack",
        "retrying layers",
        "attempts at the bottom per call (log)",
    );
    chart.log_y = true;
    let mut loads = Vec::new();
    for (k, &(d, a, p)) in cases.iter().enumerate() {
        let rs = &results[k];
        let tries: u64 = rs.iter().map(|r| r.first_tries).sum();
        let bottom: u64 = rs.iter().map(|r| *r.attempts.last().unwrap()).sum();
        let l = bottom as f64 / tries as f64;
        let (where_, expected) = match p {
            Placement::Every => ("every layer", format!("{}", (a as u64).pow(d as u32))),
            Placement::TopOnly => ("top only", format!("{a}")),
            Placement::EveryWithBudget => (
                "every layer, 10% budget each",
                format!("≈ {:.2}", 1.1f64.powi(d as i32)),
            ),
        };
        loads.push(l);
        t.row(vec![
            Cell::int(d as u64),
            Cell::int(a),
            Cell::text(where_),
            Cell::num(l, 3),
            Cell::text(expected),
            Cell::num(l.powf(1.0 / d as f64), 3),
        ]);
    }
    rep.tables.push(t);
    // The chart: depth 1..=5 for three placements, simulated and expected.
    let depths = [1usize, 2, 3, 4, 5];
    let series = [
        ("4 attempts at every layer", 4u32, Placement::Every, 200u64),
        ("3 attempts at every layer", 3, Placement::Every, 200),
        (
            "4 attempts, 10% budget per layer",
            4,
            Placement::EveryWithBudget,
            first_tries,
        ),
    ];
    let chart_specs: Vec<SystemSpec> = series
        .iter()
        .flat_map(|&(_, a, p, n)| depths.iter().map(move |&d| spec(d, a, p, n)))
        .collect();
    let chart_runs = super::run_specs(opts, "layers-chart", &chart_specs, 1);
    for (k, &(name, a, p, _)) in series.iter().enumerate() {
        let sim: Vec<[f64; 2]> = depths
            .iter()
            .enumerate()
            .map(|(j, &d)| {
                [
                    d as f64,
                    chart_runs[k * depths.len() + j][0].bottom_amplification(),
                ]
            })
            .collect();
        let expected: Vec<[f64; 2]> = depths
            .iter()
            .map(|&d| {
                let e = match p {
                    Placement::EveryWithBudget => 1.1f64.powi(d as i32),
                    _ => (a as f64).powi(d as i32),
                };
                [d as f64, e]
            })
            .collect();
        chart.line(name, sim);
        chart.dashed(format!("{name}, expected"), expected);
    }
    rep.charts.push(chart);
    rep.check(
        "3 layers × 4 attempts → 64× load at the bottom (SRE book)",
        format!("{:.3}×", loads[0]),
        (loads[0] - 64.0).abs() < 1e-9,
    );
    rep.check(
        "5 layers × 3 attempts → 243× (AWS Builders' Library)",
        format!("{:.3}×", loads[1]),
        (loads[1] - 243.0).abs() < 1e-9,
    );
    rep.check(
        "retrying at one layer only → that layer's attempts",
        format!("{:.3}× with 4 attempts, {:.3}× with 3", loads[2], loads[3]),
        (loads[2] - 4.0).abs() < 1e-9 && (loads[3] - 3.0).abs() < 1e-9,
    );
    let per3 = loads[4].powf(1.0 / 3.0);
    let per5 = loads[5].powf(1.0 / 5.0);
    rep.check(
        "a 10% budget per layer → about 1.1× per layer",
        format!(
            "{per3:.3}× per layer over 3 layers ({:.3}× total), {per5:.3}× over 5 ({:.3}× total)",
            loads[4], loads[5]
        ),
        (per3 - 1.1).abs() < 0.02 && (per5 - 1.1).abs() < 0.02,
    );
    rep
}
