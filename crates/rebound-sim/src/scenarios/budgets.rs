//! `budgets`: what caps retries when a dependency is down, as the fleet of
//! clients grows while the total traffic stays the same.
//!
//! A ratio budget caps the load near 1 + ratio whatever the number of
//! clients; a per-client token bucket (gRPC retry throttling) lets each
//! client spend its bucket before it stops, so as clients multiply (each
//! seeing fewer calls) it degrades toward plain n retries; a breaker stops
//! calls altogether once open.

use std::time::Duration;

use crate::model::{LayerSpec, SystemSpec, Workload};
use crate::policy::CallerPolicy;
use crate::report::{Cell, Chart, ScenarioReport, Table};
use crate::scenarios::tables;
use crate::scenarios::Options;

/// Retries allowed per call.
pub const RETRIES: u32 = 3;
/// Total first tries per second, shared by all clients.
pub const TOTAL_RATE: f64 = 100.0;

/// The policies compared, with their names.
pub fn policies() -> Vec<(&'static str, CallerPolicy)> {
    let plain = tables::attempts(RETRIES + 1);
    let with = |f: &dyn Fn(&mut rebound::config::RetryConfig)| {
        let mut r = plain.clone();
        f(&mut r);
        tables::retry(r)
    };
    let breaker = || tables::ratio_breaker(20, 10, Duration::from_secs(5));
    vec![
        ("3 retries, no budget", CallerPolicy::new(with(&|_| {}))),
        (
            "ratio budget 10%",
            CallerPolicy::new(with(&|r| r.budget = Some(tables::ratio_budget(0.1)))),
        ),
        (
            "ratio budget 10% + 10/s floor",
            CallerPolicy::new(with(&|r| {
                r.budget = Some(tables::ratio_budget_with_floor(0.1))
            })),
        ),
        (
            "token bucket (gRPC 10, 0.1)",
            CallerPolicy::new(with(&|r| r.budget = Some(tables::token_bucket(10.0, 0.1)))),
        ),
        (
            "circuit breaker (per client)",
            CallerPolicy::new(with(&|r| r.breaker = Some(breaker()))),
        ),
        (
            "circuit breaker (shared)",
            CallerPolicy::shared(with(&|r| r.breaker = Some(breaker()))),
        ),
    ]
}

/// `clients` clients sharing [`TOTAL_RATE`] calls per second to a
/// dependency failing at rate `f`, each with its own copy of `policy`.
pub fn spec(policy: &CallerPolicy, clients: u32, f: f64, duration: Duration) -> SystemSpec {
    SystemSpec {
        duration,
        clients,
        workload: Workload::open(TOTAL_RATE),
        policy: policy.clone(),
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
    let runs = opts.runs_or(3, 1, 1);
    let duration = Duration::from_secs(opts.pick(30, 30, 20));
    let clients = [10u32, 100, 1000];
    let f = 1.0;
    let pols = policies();
    let specs: Vec<SystemSpec> = pols
        .iter()
        .flat_map(|(_, p)| clients.iter().map(move |&c| spec(p, c, f, duration)))
        .collect();
    let results = super::run_specs(opts, "budgets", &specs, runs);
    let mut rep = ScenarioReport::new(
        "budgets",
        "Retry budgets, token buckets and breakers as clients multiply",
        "Google SRE book ch. 22 (retry budgets); gRFC A6 (gRPC retry throttling); Marc Brooker, \"Fixing retries with token buckets and circuit breakers\", 2022",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "A dependency that fails every request (f = {f}); {TOTAL_RATE}/s calls in total for {}s, spread \
         over 10, 100 or 1000 clients, each with its own rebound RetryPolicy of {} attempts and its own \
         budget or breaker. Load = attempts / first tries (plain retries: {}).",
        duration.as_secs(),
        RETRIES + 1,
        RETRIES + 1
    );
    let mut t = Table::new(
        "load",
        "Load on a dead dependency (attempts per call)",
        &["policy", "10 clients", "100 clients", "1000 clients"],
    );
    let mut chart = Chart::new(
        "load",
        "Load on a dead dependency vs clients",
        "clients (log)",
        "attempts per call",
    );
    chart.log_x = true;
    let mut load = vec![vec![0.0; clients.len()]; pols.len()];
    for (pi, (name, _)) in pols.iter().enumerate() {
        let mut row = vec![Cell::text(*name)];
        let mut pts = Vec::new();
        for ci in 0..clients.len() {
            let rs = &results[pi * clients.len() + ci];
            let tries: u64 = rs.iter().map(|r| r.first_tries).sum();
            let att: u64 = rs.iter().map(|r| r.attempts[0]).sum();
            let l = att as f64 / tries as f64;
            load[pi][ci] = l;
            row.push(Cell::num(l, 3));
            pts.push([clients[ci] as f64, l]);
        }
        t.row(row);
        chart.line(*name, pts);
    }
    rep.tables.push(t);
    rep.charts.push(chart);
    let [plain, ratio, floor, bucket, breaker, shared] =
        [0, 1, 2, 3, 4, 5].map(|i| load[i].clone());
    rep.check(
        "without a budget, a dead dependency gets 1 + n times the load",
        format!(
            "{:.2} / {:.2} / {:.2} at 10 / 100 / 1000 clients",
            plain[0], plain[1], plain[2]
        ),
        plain
            .iter()
            .all(|&l| (l - (1 + RETRIES) as f64).abs() < 0.01),
    );
    rep.check(
        "a ratio budget caps load near 1 + ratio at any number of clients",
        format!("{:.3} / {:.3} / {:.3}", ratio[0], ratio[1], ratio[2]),
        ratio.iter().all(|&l| l <= 1.1 + 0.01),
    );
    rep.check(
        "a per-client token bucket degrades toward plain n retries as clients multiply",
        format!(
            "{:.3} → {:.3} → {:.3} (plain: {})",
            bucket[0],
            bucket[1],
            bucket[2],
            1 + RETRIES
        ),
        bucket[0] < bucket[1] && bucket[1] < bucket[2] && bucket[2] > 1.5 && bucket[0] < 1.2,
    );
    rep.check(
        "a breaker does not degrade as clients multiply",
        format!(
            "one breaker for the fleet: {:.3} / {:.3} / {:.3}",
            shared[0], shared[1], shared[2]
        ),
        shared.iter().all(|&l| l < 1.0),
    );
    rep.notes.push(format!(
        "A breaker per client degrades like the token bucket in this model: {:.3} / {:.3} / {:.3}. Each \
         client must see `min_calls` failures of its own before it opens, and with 1000 clients each sees \
         only a few calls. The claim holds for a breaker whose state is shared by the callers.",
        breaker[0], breaker[1], breaker[2]
    ));
    rep.notes.push(format!(
        "The library's default floor of 10 retries per second *per client* is what makes a ratio budget \
         degrade in a large fleet: {:.2} / {:.2} / {:.2} here. Size the floor for the fleet, not the process.",
        floor[0], floor[1], floor[2]
    ));
    rep
}
