//! `spike`: an M/M/1 server with retries on timeout, knocked over by a
//! short load spike (λ = 9.3/s, μ = 10/s, queue 100, timeout 4 s, 3
//! retries, no backoff; a 30/s spike for 5 s).
//!
//! After the spike the queue is full, every request waits longer than the
//! timeout, every caller retries, and the retries keep the queue full:
//! goodput stays near zero long after the spike. With jittered backoff and
//! a budget the extra load goes away and the system recovers.
//!
//! ## What "recovered" means here
//!
//! The time to recover is the time from the end of the spike to the end of
//! the first [`WINDOW`]-second window whose goodput is at least 80% of the
//! calls that arrived in it: the first return to health. An earlier
//! version asked for *every* later window to be healthy, to the end of
//! the run, and measured 313 s (token bucket) and 388 s (10% ratio budget)
//! against the claimed ≈ 147 s. That measured the server, not the spike:
//! at ρ = λ/μ = 0.93 an M/M/1 sojourn time is exponential with mean
//! 1/(μ − λ) ≈ 1.4 s, so about e^(−4 × 0.7) ≈ 6% of calls time out even
//! with no spike, and the queue wanders for minutes at a time (its
//! relaxation time is of the order of 300 s). The same system **without
//! a spike** has 8–17% unhealthy windows depending on the policy, and in
//! most 600-second runs at least one, so "healthy to the end" mostly
//! dated the last spontaneous dip. The scenario runs every policy with and
//! without the spike and reports both shares: after the first recovery the
//! spiked runs are as healthy as the unspiked ones, i.e. recovered.
//!
//! The old "healthy for good" time is still reported, for comparison.

use std::time::Duration;

use crate::dist::Dist;
use crate::model::{LayerSpec, SystemSpec, Workload};
use crate::policy::CallerPolicy;
use crate::report::{Band, Cell, Chart, ScenarioReport, Table};
use crate::scenarios::tables;
use crate::scenarios::Options;
use rebound::config::JitterConfig;

/// Base arrival rate.
pub const LAMBDA: f64 = 9.3;
/// Service rate.
pub const MU: f64 = 10.0;
/// Queue places.
pub const QUEUE: u32 = 100;
/// Client timeout.
pub const TIMEOUT: Duration = Duration::from_secs(4);
/// Spike start.
pub const SPIKE_START: Duration = Duration::from_secs(60);
/// Spike end.
pub const SPIKE_END: Duration = Duration::from_secs(65);
/// Spike rate.
pub const SPIKE_RATE: f64 = 30.0;

/// Recovery is judged on windows of this many seconds (a server at 93%
/// utilisation is noisy: single seconds say little).
pub const WINDOW: usize = 20;

/// The policies compared.
///
/// The fifth, a ratio budget of 5%, fits the capacity headroom: a ratio
/// budget adds up to `ratio × λ` of retries, which must stay below
/// `μ − λ` (here 7.5% of λ) for a full queue to drain while every call
/// fails. A 10% budget does not: 1.1 × 9.3 = 10.23/s > μ.
pub fn policies() -> Vec<(&'static str, CallerPolicy)> {
    let mut plain = tables::attempts(4);
    plain.attempt_timeout = Some(TIMEOUT);
    let mut jittered = plain.clone();
    jittered.backoff = Some(tables::exponential(
        Duration::from_secs(1),
        Duration::from_secs(30),
        JitterConfig::Full,
    ));
    let mut breaker = tables::ratio_breaker(20, 10, Duration::from_secs(5));
    breaker.break_jitter = Some(0.2);
    let with = |f: &dyn Fn(&mut rebound::config::RetryConfig)| {
        let mut r = jittered.clone();
        f(&mut r);
        CallerPolicy::new(tables::retry(r))
    };
    vec![
        (
            "3 retries, no backoff",
            CallerPolicy::new(tables::retry(plain)),
        ),
        (
            "jittered backoff + ratio budget 10%",
            with(&|r| r.budget = Some(tables::ratio_budget(0.1))),
        ),
        (
            "jittered backoff + token bucket",
            with(&|r| r.budget = Some(tables::token_bucket(10.0, 0.1))),
        ),
        (
            "jittered backoff + circuit breaker",
            with(&|r| r.breaker = Some(breaker.clone())),
        ),
        (
            "jittered backoff + ratio budget 5%",
            with(&|r| r.budget = Some(tables::ratio_budget(0.05))),
        ),
    ]
}

/// The system with `policy` on 10 clients, running `after` past the spike.
pub fn spec(policy: &CallerPolicy, after: Duration) -> SystemSpec {
    SystemSpec {
        duration: SPIKE_END + after,
        clients: 10,
        workload: Workload::open(LAMBDA).with_spike(SPIKE_START, SPIKE_END, SPIKE_RATE),
        policy: policy.clone(),
        layers: vec![LayerSpec {
            name: "server".into(),
            workers: Some(1),
            queue: Some(QUEUE),
            service: Dist::exponential(Duration::from_secs_f64(1.0 / MU)),
            ..LayerSpec::default()
        }],
        trigger_end: Some(SPIKE_END),
        ..SystemSpec::default()
    }
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let runs = opts.runs_or(5, 2, 2);
    let after = Duration::from_secs(opts.pick(600, 300, 300));
    let pols = policies();
    // Every policy with the spike, then the same systems without it.
    let mut specs: Vec<SystemSpec> = pols.iter().map(|(_, p)| spec(p, after)).collect();
    for i in 0..pols.len() {
        let mut calm = specs[i].clone();
        calm.workload = Workload::open(LAMBDA);
        calm.trigger_end = None;
        specs.push(calm);
    }
    let results = super::run_specs(opts, "spike", &specs, runs);
    let start_bin = (crate::dist::nanos(SPIKE_END) / 1_000_000_000) as usize;
    let te = crate::dist::nanos(SPIKE_END);
    let drain = QUEUE as f64 / (MU - LAMBDA);
    let bound = TIMEOUT.as_secs_f64() + drain;

    let mut rep = ScenarioReport::new(
        "spike",
        "A load spike on an M/M/1 server with retries on timeout",
        "Marc Brooker, \"Metastability and Distributed Systems\" (2021); an M/M/1 queue with retries on timeout",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "One worker serving exponential times at μ = {MU}/s, a queue of {QUEUE} (a full queue rejects at \
         once), Poisson arrivals at λ = {LAMBDA}/s over 10 clients, and a spike to {SPIKE_RATE}/s from {}s \
         to {}s. Clients time out after {}s and retry up to 3 times. Time to recover = from the end of \
         the spike to the end of the first {WINDOW} s window with goodput ≥ 80% of arrivals (runs last \
         {}s after the spike). Unhealthy windows are compared with the same system and policy without \
         the spike. Timeout + queue drain time = {:.0} s + {QUEUE}/(μ − λ) = {bound:.0} s.",
        SPIKE_START.as_secs(),
        SPIKE_END.as_secs(),
        TIMEOUT.as_secs(),
        after.as_secs(),
        TIMEOUT.as_secs_f64()
    );
    let mut t = Table::new(
        "recovery",
        "After the spike",
        &[
            "policy",
            "recovered runs",
            "time to recover, median (s)",
            "healthy to the end from, median (s)",
            "unhealthy windows after recovery (%)",
            "unhealthy windows, no spike (%)",
            "goodput 60 s+ after spike (/s)",
            "load (attempts/call)",
            "wasted answers",
        ],
    );
    let mut chart = Chart::new(
        "goodput",
        "Goodput around the spike (first run)",
        "time (s)",
        "goodput (calls/s)",
    );
    chart.bands.push(Band {
        from: SPIKE_START.as_secs_f64(),
        to: SPIKE_END.as_secs_f64(),
        label: "spike".into(),
    });
    let mut recs = Vec::new();
    let mut late = Vec::new();
    for (pi, (name, _)) in pols.iter().enumerate() {
        let rs = &results[pi];
        let calm = &results[pols.len() + pi];
        let rec: Vec<Option<f64>> = rs
            .iter()
            .map(|r| r.first_recovery_after(te, WINDOW, 0.8))
            .collect();
        let ok = rec.iter().filter(|r| r.is_some()).count();
        let median = |xs: Vec<Option<f64>>| {
            let mut t: Vec<f64> = xs.iter().map(|r| r.unwrap_or(f64::INFINITY)).collect();
            t.sort_by(f64::total_cmp);
            t[(t.len() - 1) / 2]
        };
        // The median run: a server at 93% utilisation wobbles on its own,
        // so the worst of several runs says more about luck.
        let worst = median(rec.clone());
        let for_good = median(
            rs.iter()
                .map(|r| r.recovery_after(te, WINDOW, 0.8))
                .collect(),
        );
        let after_rec: Vec<f64> = rs
            .iter()
            .zip(&rec)
            .filter_map(|(r, t)| t.map(|t| r.unhealthy_share(start_bin + t as usize, WINDOW, 0.8)))
            .collect();
        let calm_share = crate::stats::mean(
            &calm
                .iter()
                .map(|r| r.unhealthy_share(0, WINDOW, 0.8))
                .collect::<Vec<_>>(),
        );
        let from = ((te / 1_000_000_000) + 60) as usize;
        let g: f64 = rs
            .iter()
            .map(|r| {
                let g = r.goodput_per_second();
                let tail = &g[from.min(g.len())..];
                tail.iter().sum::<f64>() / tail.len().max(1) as f64
            })
            .sum::<f64>()
            / rs.len() as f64;
        let load = rs.iter().map(|r| r.amplification()).sum::<f64>() / rs.len() as f64;
        let wasted: u64 = rs.iter().map(|r| r.wasted).sum::<u64>() / rs.len() as u64;
        t.row(vec![
            Cell::text(*name),
            Cell::text(format!("{ok}/{}", rs.len())),
            if worst.is_finite() {
                Cell::num(worst, 0)
            } else {
                Cell::Empty
            },
            if for_good.is_finite() {
                Cell::num(for_good, 0)
            } else {
                Cell::Empty
            },
            if after_rec.is_empty() {
                Cell::Empty
            } else {
                Cell::num(100.0 * crate::stats::mean(&after_rec), 1)
            },
            Cell::num(100.0 * calm_share, 1),
            Cell::num(g, 2),
            Cell::num(load, 2),
            Cell::int(wasted),
        ]);
        let gp = rs[0].goodput_per_second();
        // 5 s moving average keeps the chart readable.
        let pts = (0..gp.len())
            .step_by(5)
            .map(|i| {
                let w = &gp[i..(i + 5).min(gp.len())];
                [
                    i as f64 + w.len() as f64 / 2.0,
                    w.iter().sum::<f64>() / w.len() as f64,
                ]
            })
            .collect();
        chart.line(*name, pts);
        recs.push(worst);
        late.push(g);
    }
    rep.tables.push(t);
    rep.charts.push(chart);
    rep.check(
        "without mitigation, goodput stays near zero long after the spike",
        format!(
            "{:.2}/s from 60 s after the spike to the end (base {LAMBDA}/s)",
            late[0]
        ),
        late[0] < 0.2 * LAMBDA && !recs[0].is_finite(),
    );
    let best = (1..pols.len())
        .min_by(|&a, &b| recs[a].total_cmp(&recs[b]))
        .unwrap_or(1);
    rep.check(
        "with jittered backoff and a budget it recovers",
        format!(
            "median run: {} with the token bucket; {} with a 10% ratio budget",
            fmt_rec(recs[2]),
            fmt_rec(recs[1])
        ),
        recs[1].is_finite() && recs[2].is_finite(),
    );
    rep.check(
        format!("… within about timeout + queue drain time (≈ {bound:.0} s)"),
        format!(
            "token bucket {}, ratio budget {}, circuit breaker {}",
            fmt_secs(recs[2]),
            fmt_secs(recs[1]),
            fmt_secs(recs[3])
        ),
        recs[2].min(recs[1]) <= bound * 1.25,
    );
    rep.notes.push(format!(
        "Fastest recovery: {} ({}). A 10% ratio budget adds up to 10% to λ = {LAMBDA}: {:.2}/s > μ = {MU}/s, so it \
         cannot drain a full queue by itself and recovers only when the queue happens to wander down \
         ({}); a 5% budget, within the {:.1}% headroom (μ − λ)/λ, recovers {}.",
        pols[best].0,
        fmt_rec(recs[best]),
        LAMBDA * 1.1,
        fmt_secs(recs[1]),
        100.0 * (MU - LAMBDA) / LAMBDA,
        fmt_rec(recs[4]),
    ));
    rep.notes.push(
        "Time to recover is the first return to health. Asking instead for every later window to be \
         healthy (the \"healthy to the end\" column) dates the last of the dips that this server, at 93% \
         utilisation with a 4 s timeout, has without any spike: compare the two \"unhealthy windows\" \
         columns."
            .to_string(),
    );
    rep
}

fn fmt_secs(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.0} s")
    } else {
        "never".into()
    }
}

fn fmt_rec(r: f64) -> String {
    if r.is_finite() {
        format!("recovered {r:.0} s after the spike")
    } else {
        "did not recover".into()
    }
}
