//! `tail-at-scale`: hedged requests, after Jeffrey Dean and Luiz André
//! Barroso, "The Tail at Scale", Communications of the ACM 56(2), 2013.
//!
//! A service whose latency has a heavy tail: most requests take a few
//! milliseconds, but one in a hundred is slow for reasons that have
//! nothing to do with the request — a garbage-collection pause, queueing
//! behind a busy replica's background work — and takes 200 ms to 1 s
//! more ([`Hiccups`]). The paper's remedy: send a second copy of a request
//! that has been outstanding for longer than the 95th-percentile latency
//! and take whichever answer comes first. Hedging "limits the additional
//! load to approximately 5% while substantially shortening the latency
//! tail" (in their BigTable benchmark, the 99.9th percentile fell from
//! 1,800 ms to 74 ms for 2% more requests).
//!
//! The scenario drives the real [`HedgePolicy`] through its
//! [`HedgeState`](rebound::hedge::HedgeState) (written in the core's
//! schema, as a service's policy file would), and a pipeline of a retry
//! and a hedge sharing one retry budget through
//! [`PipelineRun`](rebound::pipeline::PipelineRun) (built with the core's
//! builders: a file cannot share a budget between stages). Then the
//! dependency becomes **broadly slow** — every request ten times slower
//! for 20 s: a fixed hedge delay now hedges every call, doubling the load
//! on a dependency that is already struggling; the budget shared with the
//! retries caps the extra load at its ratio.

use std::time::Duration;

use rebound::config::{DependencyConfig, HedgeConfig};
use rebound::hedge::HedgePolicy;
use rebound::pipeline::Pipeline;
use rebound::{RetryBudget, RetryPolicy};

use crate::dist::Dist;
use crate::model::{Hiccups, LayerSpec, Outage, OutageMode, SystemSpec, Workload};
use crate::policy::{CallerPolicy, PolicyObject, PolicySource};
use crate::report::{Band, Cell, Chart, ScenarioReport, Table};
use crate::scenarios::Options;
use crate::stats::RunStats;

/// Calls per second.
pub const RATE: f64 = 1000.0;
/// Share of requests that hiccup.
pub const HICCUP_PROBABILITY: f64 = 0.01;
/// Share of requests that fail (retried by the pipeline's retry stage).
pub const FAILURE_RATE: f64 = 0.001;
/// The ratio of the retry budget the pipeline's retry and hedge share.
pub const BUDGET_RATIO: f64 = 0.1;
/// How much slower every request is while the dependency is broadly slow.
pub const SLOW_FACTOR: f64 = 10.0;
/// When the dependency becomes broadly slow, in the slow run.
pub const SLOW_START: Duration = Duration::from_secs(20);
/// When it recovers.
pub const SLOW_END: Duration = Duration::from_secs(40);
/// Length of the slow run.
pub const SLOW_RUN: Duration = Duration::from_secs(60);

/// The service: 1 ms of network each way, service times of |N(5 ms,
/// 2 ms)| with unlimited workers (many replicas: no queueing), 1% of
/// requests 200 ms–1 s slower, 0.1% failing; broadly slow (every request
/// ten times slower) from [`SLOW_START`] to [`SLOW_END`] when `slow`.
pub fn service(slow: bool) -> LayerSpec {
    LayerSpec {
        name: "service".into(),
        network: Dist::constant(Duration::from_millis(1)),
        service: Dist::normal(Duration::from_millis(5), Duration::from_millis(2)),
        hiccups: Some(Hiccups {
            probability: HICCUP_PROBABILITY,
            extra: Dist::uniform(Duration::from_millis(200), Duration::from_secs(1)),
        }),
        failure_rate: FAILURE_RATE,
        outages: if slow {
            vec![Outage {
                start: SLOW_START,
                end: SLOW_END,
                mode: OutageMode::Slow(SLOW_FACTOR),
            }]
        } else {
            Vec::new()
        },
        ..LayerSpec::default()
    }
}

/// One client process calling the service at [`RATE`] with `policy` for
/// `duration`; its calls in flight then finish.
pub fn spec(policy: &PolicySource, duration: Duration, slow: bool) -> SystemSpec {
    SystemSpec {
        duration,
        workload: Workload::open(RATE),
        policy: CallerPolicy::shared(policy.clone()),
        layers: vec![service(slow)],
        drain: Duration::from_secs(30),
        ..SystemSpec::default()
    }
}

/// The policies compared; hedges after a fixed delay wait `delay`.
pub fn policies(delay: Duration) -> Vec<PolicySource> {
    let hedge = |h: HedgeConfig| {
        PolicySource::config(
            "service",
            DependencyConfig {
                hedge: Some(h),
                ..DependencyConfig::default()
            },
        )
    };
    let ms = delay.as_secs_f64() * 1e3;
    vec![
        PolicySource::default(),
        hedge(HedgeConfig {
            idempotent: true,
            percentile: Some(0.95),
            ..HedgeConfig::default()
        }),
        hedge(HedgeConfig {
            idempotent: true,
            delay: Some(delay),
            ..HedgeConfig::default()
        }),
        PolicySource::code(
            format!(
                "pipeline: retry (3 attempts) → hedge after {ms:.1} ms, one {:.0}% retry budget",
                BUDGET_RATIO * 100.0
            ),
            move |env| {
                let budget = RetryBudget::ratio(BUDGET_RATIO)
                    .min_retries_per_second(0.0)
                    .clock(env.clock.clone())
                    .build()?;
                let retry = RetryPolicy::builder()
                    .dependency("service")
                    .max_attempts(3)
                    .budget(budget.clone())
                    .clock(env.clock.clone())
                    .random(env.random.clone())
                    .build()?;
                let hedge = HedgePolicy::builder()
                    .dependency("service")
                    .fixed_delay(delay)
                    .budget(budget)
                    .clock(env.clock.clone())
                    .build()?;
                Pipeline::builder()
                    .dependency("service")
                    .clock(env.clock.clone())
                    .idempotent()
                    .retry(retry)
                    .hedge(hedge)
                    .build()
                    .map(PolicyObject::Pipeline)
            },
        ),
    ]
}

/// Short names of [`policies`], in order.
pub const NAMES: [&str; 4] = [
    "no hedging",
    "hedge at the 95th percentile (adaptive)",
    "hedge after a fixed delay ≈ p95",
    "retry + hedge, one 10% budget",
];

/// Percentiles reported, and their position on the chart (nines).
const PERCENTILES: [(f64, f64); 5] = [
    (50.0, 0.3),
    (90.0, 1.0),
    (99.0, 2.0),
    (99.9, 3.0),
    (99.99, 4.0),
];

/// The mean over runs of the `p`-th latency percentile, in ms.
fn percentile_ms(rs: &mut [RunStats], p: f64) -> f64 {
    let xs: Vec<f64> = rs
        .iter_mut()
        .filter_map(|r| r.latency_percentile(p))
        .map(|x| x as f64 / 1e6)
        .collect();
    crate::stats::mean(&xs)
}

/// Requests per call over the bins `[from, to)` of every run.
fn load_between(rs: &[RunStats], from: Duration, to: Duration) -> f64 {
    let (a, b) = (from.as_secs() as usize, to.as_secs() as usize);
    let (att, tries) = rs.iter().fold((0, 0), |(att, tries), r| {
        let bins = &r.bins[a.min(r.bins.len())..b.min(r.bins.len())];
        (
            att + bins.iter().map(|x| x.attempts).sum::<u64>(),
            tries + bins.iter().map(|x| x.first_tries).sum::<u64>(),
        )
    });
    crate::stats::ratio(att, tries)
}

fn load(rs: &[RunStats]) -> f64 {
    let att: u64 = rs.iter().map(|r| r.attempts[0]).sum();
    let tries: u64 = rs.iter().map(|r| r.first_tries).sum();
    crate::stats::ratio(att, tries)
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let runs = opts.runs_or(3, 1, 1);
    let healthy_for = Duration::from_secs(opts.pick(120, 30, 20));
    // First the service without hedging, to measure its 95th percentile.
    let plain = spec(&PolicySource::default(), healthy_for, false);
    let mut base = super::run_specs(opts, "tail-at-scale-p95", &[plain], runs).remove(0);
    let p95 = percentile_ms(&mut base, 95.0);
    // To a tenth of a millisecond: around the 95th percentile a whole
    // millisecond moves the share of calls hedged by a few percent.
    let delay = Duration::from_micros(((p95 * 10.0).round().max(1.0) * 100.0) as u64);
    let pols = policies(delay);
    let mut specs: Vec<SystemSpec> = pols[1..]
        .iter()
        .map(|p| spec(p, healthy_for, false))
        .collect();
    specs.extend(pols.iter().map(|p| spec(p, SLOW_RUN, true)));
    let mut results = super::run_specs(opts, "tail-at-scale", &specs, runs);
    let mut slow: Vec<Vec<RunStats>> = results.split_off(pols.len() - 1);
    let mut healthy = vec![base];
    healthy.extend(results);

    let mut rep = ScenarioReport::new(
        "tail-at-scale",
        "Hedged requests cut the latency tail (and a budget caps what they cost)",
        "Jeffrey Dean and Luiz André Barroso, \"The Tail at Scale\", Communications of the ACM 56(2), 2013",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "One client process calls a service {RATE:.0} times a second (Poisson). A request takes 1 ms of \
         network each way and a service time of |N(5 ms, 2 ms)|; {:.0}% of requests hiccup (a GC \
         pause, a busy replica) and take 200 ms–1 s more; {:.1}% fail. Unlimited workers: many replicas, \
         no queueing. Its measured 95th-percentile latency is {p95:.2} ms, so the fixed hedge delay is \
         {:.1} ms. Policies: {}. Each hedge sends at most one extra copy (max_attempts 2); a copy that \
         loses is abandoned by the client but still served. {} s per healthy run; the slow run lasts \
         {} s, every request {SLOW_FACTOR:.0}× slower from {} s to {} s.",
        HICCUP_PROBABILITY * 100.0,
        FAILURE_RATE * 100.0,
        delay.as_secs_f64() * 1e3,
        pols.iter()
            .zip(NAMES)
            .map(|(p, n)| format!("{n} ({p})"))
            .collect::<Vec<_>>()
            .join("; "),
        healthy_for.as_secs(),
        SLOW_RUN.as_secs(),
        SLOW_START.as_secs(),
        SLOW_END.as_secs(),
    );

    let mut t = Table::new(
        "latency",
        "A healthy service with a latency tail",
        &[
            "policy",
            "requests per call",
            "extra requests (%)",
            "p50 (ms)",
            "p99 (ms)",
            "p99.9 (ms)",
            "p99.99 (ms)",
            "p99.9 cut (×)",
            "success",
        ],
    );
    let mut chart = Chart::new(
        "latency-percentiles",
        "Latency by percentile (healthy service)",
        "nines (1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99)",
        "latency (ms, log)",
    );
    chart.log_y = true;
    let mut p999 = Vec::new();
    let mut extra = Vec::new();
    for (i, rs) in healthy.iter_mut().enumerate() {
        let l = load(rs);
        let pct: Vec<f64> = PERCENTILES
            .iter()
            .map(|&(p, _)| percentile_ms(rs, p))
            .collect();
        let success = crate::stats::mean(&rs.iter().map(|r| r.success_rate()).collect::<Vec<_>>());
        p999.push(pct[3]);
        extra.push(l - 1.0);
        t.row(vec![
            Cell::text(NAMES[i]),
            Cell::num(l, 3),
            Cell::num((l - 1.0) * 100.0, 1),
            Cell::num(pct[0], 1),
            Cell::num(pct[2], 1),
            Cell::num(pct[3], 1),
            Cell::num(pct[4], 1),
            Cell::num(p999[0] / pct[3], 1),
            Cell::num(success, 4),
        ]);
        chart.line(
            NAMES[i],
            PERCENTILES
                .iter()
                .zip(&pct)
                .map(|(&(_, x), &y)| [x, y])
                .collect(),
        );
    }
    rep.tables.push(t);
    rep.charts.push(chart);

    let mut ts = Table::new(
        "slow",
        &format!(
            "A broadly slow service (every request {SLOW_FACTOR:.0}× slower from {} s to {} s): requests per call",
            SLOW_START.as_secs(),
            SLOW_END.as_secs()
        ),
        &[
            "policy",
            "before",
            "while slow",
            "while slow, second half",
            "after",
            "p99.9 over the run (ms)",
        ],
    );
    let mut over_time = Chart::new(
        "load-over-time",
        "Requests per call over time: a broadly slow service (first run)",
        "time (s)",
        "requests per call",
    );
    over_time.bands.push(Band {
        from: SLOW_START.as_secs_f64(),
        to: SLOW_END.as_secs_f64(),
        label: "every request 10× slower".into(),
    });
    let mid = (SLOW_START + SLOW_END) / 2;
    let mut during = Vec::new();
    let mut second_half = Vec::new();
    for (i, rs) in slow.iter_mut().enumerate() {
        let before = load_between(rs, Duration::from_secs(2), SLOW_START);
        let d = load_between(rs, SLOW_START, SLOW_END);
        let d2 = load_between(rs, mid, SLOW_END);
        let after = load_between(rs, SLOW_END + Duration::from_secs(5), SLOW_RUN);
        during.push(d);
        second_half.push(d2);
        ts.row(vec![
            Cell::text(NAMES[i]),
            Cell::num(before, 3),
            Cell::num(d, 3),
            Cell::num(d2, 3),
            Cell::num(after, 3),
            Cell::num(percentile_ms(rs, 99.9), 0),
        ]);
        over_time.line(
            NAMES[i],
            rs[0]
                .bins
                .iter()
                .enumerate()
                .filter(|(_, b)| b.first_tries > 0)
                .map(|(s, b)| [s as f64 + 0.5, b.attempts as f64 / b.first_tries as f64])
                .collect(),
        );
    }
    rep.tables.push(ts);
    rep.charts.push(over_time);

    let [none, adaptive, fixed, shared] = [0, 1, 2, 3];
    let cut = |i: usize| p999[none] / p999[i];
    rep.check(
        "hedging after about the 95th-percentile latency cuts the 99.9th-percentile latency by an order of magnitude (≥ 10×)",
        format!(
            "p99.9 {:.0} ms without hedging; {:.1} ms hedging after {:.1} ms ({:.0}× lower), {:.1} ms at the tracked p95 ({:.0}×)",
            p999[none],
            p999[fixed],
            delay.as_secs_f64() * 1e3,
            cut(fixed),
            p999[adaptive],
            cut(adaptive)
        ),
        cut(fixed) >= 10.0 && cut(adaptive) >= 10.0,
    );
    rep.check(
        "… for a few percent more requests (about 5%: between 3% and 7%)",
        format!(
            "{:+.1}% requests hedging after {:.1} ms, {:+.1}% at the tracked p95",
            extra[fixed] * 100.0,
            delay.as_secs_f64() * 1e3,
            extra[adaptive] * 100.0
        ),
        [extra[fixed], extra[adaptive]]
            .iter()
            .all(|e| (0.03..=0.07).contains(e)),
    );
    rep.check(
        format!(
            "a {:.0}% retry budget shared by the retries and the hedge keeps the cut on a healthy service (≥ 10×, at most 7% more requests)",
            BUDGET_RATIO * 100.0
        ),
        format!(
            "p99.9 {:.1} ms ({:.0}× lower), {:+.1}% requests",
            p999[shared],
            cut(shared),
            extra[shared] * 100.0
        ),
        cut(shared) >= 10.0 && extra[shared] <= 0.07,
    );
    rep.check(
        "when the service is broadly slow, hedging after a fixed delay hedges every call: the load doubles",
        format!(
            "{:.2} requests per call while slow (no hedging {:.2})",
            during[fixed], during[none]
        ),
        during[fixed] >= 1.9,
    );
    rep.check(
        format!(
            "… and the shared budget caps the extra load at its ratio ({:.0}%)",
            BUDGET_RATIO * 100.0
        ),
        format!("{:.3} requests per call while slow", during[shared]),
        during[shared] <= 1.0 + BUDGET_RATIO + 0.01,
    );
    rep.notes.push(format!(
        "The adaptive delay follows the slowdown: it hedges at the 95th percentile of the latencies it \
         records, so once those are the slow ones it hedges about 5% of calls again ({:.2} requests per \
         call over the second half of the slow period, {:.2} over all of it). It records the latency of \
         the copy that answered, from that copy's start.",
        second_half[adaptive], during[adaptive]
    ));
    rep.notes.push(
        "A losing copy is abandoned by the client but still served, so the extra requests are extra work \
         for the service; the paper's \"tied requests\", which cancel the other copy on the server, are \
         not modelled."
            .into(),
    );
    rep
}
