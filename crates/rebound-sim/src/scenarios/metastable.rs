//! `metastable`: the retry example of Bronson, Aghayev, Charapko and Zhu,
//! "Metastable Failures in Distributed Systems" (HotOS 2021).
//!
//! A server with capacity 300 QPS (M/M/1: latency climbs steeply as load
//! nears capacity), clients that time out after 1 s and retry once, and a
//! 10 s stall as the trigger. During the stall every request times out and
//! is retried, so the server sees twice the base load. Below 150 QPS twice
//! the load still fits and the backlog drains; above it the server spends
//! its capacity on requests whose callers have already given up, they all
//! time out, and the doubled load sustains itself long after the trigger:
//! goodput stays at zero at 280 QPS. A retry budget or a breaker removes
//! the amplification and the system heals.

use std::time::Duration;

use crate::dist::Dist;
use crate::model::{LayerSpec, Outage, OutageMode, SystemSpec, Workload};
use crate::policy::CallerPolicy;
use crate::report::{Band, Cell, Chart, ScenarioReport, Table};
use crate::scenarios::tables;
use crate::scenarios::Options;

/// Server capacity, requests per second.
pub const CAPACITY: f64 = 300.0;
/// When the stall starts.
pub const TRIGGER_START: Duration = Duration::from_secs(10);
/// When the stall ends.
pub const TRIGGER_END: Duration = Duration::from_secs(20);

/// The policies compared: one retry after a 1 s timeout, with nothing else
/// or with a budget or breaker.
pub fn policies() -> Vec<(&'static str, CallerPolicy)> {
    let mut base = tables::attempts(2);
    base.attempt_timeout = Some(Duration::from_secs(1));
    let mut breaker = tables::ratio_breaker(20, 10, Duration::from_secs(5));
    breaker.break_jitter = Some(0.2);
    let with = |f: &dyn Fn(&mut rebound::config::RetryConfig)| {
        let mut r = base.clone();
        f(&mut r);
        CallerPolicy::new(tables::retry(r))
    };
    vec![
        ("no mitigation", with(&|_| {})),
        (
            "ratio budget 10%",
            with(&|r| r.budget = Some(tables::ratio_budget(0.1))),
        ),
        (
            "token bucket",
            with(&|r| r.budget = Some(tables::token_bucket(10.0, 0.1))),
        ),
        (
            "circuit breaker",
            with(&|r| r.breaker = Some(breaker.clone())),
        ),
    ]
}

/// Ten clients sending `rate` QPS in total with `policy` each, to a 300 QPS
/// server that stalls from 10 s to 20 s; the run lasts `after` past the stall.
pub fn spec(policy: &CallerPolicy, rate: f64, after: Duration) -> SystemSpec {
    SystemSpec {
        duration: TRIGGER_END + after,
        clients: 10,
        workload: Workload::open(rate),
        policy: policy.clone(),
        layers: vec![LayerSpec {
            name: "server".into(),
            workers: Some(1),
            service: Dist::exponential(Duration::from_secs_f64(1.0 / CAPACITY)),
            outages: vec![Outage {
                start: TRIGGER_START,
                end: TRIGGER_END,
                mode: OutageMode::Stall,
            }],
            ..LayerSpec::default()
        }],
        trigger_end: Some(TRIGGER_END),
        ..SystemSpec::default()
    }
}

/// Base loads of a sweep.
pub fn rates(opts: &Options<'_>) -> Vec<f64> {
    opts.pick(
        vec![
            60.0, 90.0, 120.0, 135.0, 150.0, 165.0, 180.0, 210.0, 240.0, 260.0, 270.0, 280.0,
        ],
        vec![100.0, 135.0, 165.0, 200.0, 250.0, 280.0],
        vec![135.0, 165.0, 280.0],
    )
}

/// The largest rate that healed such that every smaller rate healed too.
pub fn boundary(rates: &[f64], healed: &[bool]) -> Option<f64> {
    let mut best = None;
    for (r, h) in rates.iter().zip(healed) {
        if !h {
            break;
        }
        best = Some(*r);
    }
    best
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let runs = opts.runs_or(3, 1, 1);
    let after = Duration::from_secs(opts.pick(300, 150, 150));
    let rates = rates(opts);
    let pols = policies();
    let specs: Vec<SystemSpec> = pols
        .iter()
        .flat_map(|(_, p)| rates.iter().map(move |&r| spec(p, r, after)))
        .collect();
    let results = super::run_specs(opts, "metastable", &specs, runs);
    let te = crate::dist::nanos(TRIGGER_END);

    let mut rep = ScenarioReport::new(
        "metastable",
        "A retry storm that outlives its trigger (metastable failure)",
        "Bronson, Aghayev, Charapko, Zhu, \"Metastable Failures in Distributed Systems\", HotOS 2021",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "An M/M/1 server with capacity {CAPACITY} QPS and an unbounded queue; 10 clients send Poisson \
         traffic at a base load, time out after 1 s and retry once at once (rebound RetryPolicy, 2 \
         attempts). The server stalls from {}s to {}s (the trigger) and keeps serving requests whose \
         callers gave up. Healed = from some point after the trigger, goodput ≥ 90% of the base load in \
         every 5 s window to the end ({}s after the trigger).",
        TRIGGER_START.as_secs(),
        TRIGGER_END.as_secs(),
        after.as_secs()
    );
    let mut t = Table::new(
        "recovery",
        "After a 10 s stall: healed? time to recover, goodput at the end",
        &[
            "policy",
            "base QPS",
            "healed",
            "time to recover (s)",
            "goodput, last 10 s (QPS)",
            "load (attempts/call)",
            "runs healed",
        ],
    );
    let mut summary = Table::new(
        "boundary",
        "Largest base load that self-heals",
        &["policy", "largest self-healing base QPS", "expected"],
    );
    let mut rec_chart = Chart::new(
        "time_to_recover",
        "Time to recover after the trigger vs base load",
        "base load (QPS)",
        "seconds after the trigger",
    );
    let mut good_chart = Chart::new(
        "goodput_280",
        "Goodput around the trigger at the highest base load",
        "time (s)",
        "goodput (QPS)",
    );
    good_chart.bands.push(Band {
        from: TRIGGER_START.as_secs_f64(),
        to: TRIGGER_END.as_secs_f64(),
        label: "stall".into(),
    });
    let mut bounds = Vec::new();
    let mut end_goodput = vec![vec![0.0; rates.len()]; pols.len()];
    for (pi, (name, _)) in pols.iter().enumerate() {
        let mut healed_all = Vec::new();
        let mut pts = Vec::new();
        for (ri, &rate) in rates.iter().enumerate() {
            let rs = &results[pi * rates.len() + ri];
            let recs: Vec<Option<f64>> = rs.iter().map(|r| r.recovery_after(te, 5, 0.9)).collect();
            let healed_n = recs.iter().filter(|r| r.is_some()).count();
            let healed = healed_n * 2 > rs.len();
            let rec_mean = if healed {
                let v: Vec<f64> = recs.iter().flatten().copied().collect();
                Some(v.iter().sum::<f64>() / v.len() as f64)
            } else {
                None
            };
            let last10: f64 = rs
                .iter()
                .map(|r| {
                    let g = r.goodput_per_second();
                    let n = g.len();
                    g[n.saturating_sub(10)..].iter().sum::<f64>() / 10f64.min(n as f64)
                })
                .sum::<f64>()
                / rs.len() as f64;
            end_goodput[pi][ri] = last10;
            let load = rs.iter().map(|r| r.amplification()).sum::<f64>() / rs.len() as f64;
            healed_all.push(healed);
            if let Some(m) = rec_mean {
                pts.push([rate, m]);
            }
            t.row(vec![
                Cell::text(*name),
                Cell::num(rate, 0),
                Cell::text(if healed { "yes" } else { "no" }),
                rec_mean.map_or(Cell::Empty, |m| Cell::num(m, 0)),
                Cell::num(last10, 1),
                Cell::num(load, 2),
                Cell::text(format!("{healed_n}/{}", rs.len())),
            ]);
            if ri == rates.len() - 1 {
                let g = rs[0].goodput_per_second();
                good_chart.line(
                    format!("{name} ({rate:.0} QPS)"),
                    g.iter()
                        .enumerate()
                        .map(|(i, &y)| [i as f64 + 0.5, y])
                        .collect(),
                );
            }
        }
        rec_chart.line(*name, pts);
        let b = boundary(&rates, &healed_all);
        let expected = match pi {
            0 => format!("{:.0} (capacity / 2)", CAPACITY / 2.0),
            1 => format!("≈ {:.0} (capacity / 1.1)", CAPACITY / 1.1),
            _ => "≥ 280".to_string(),
        };
        summary.row(vec![
            Cell::text(*name),
            b.map_or(Cell::text(format!("< {:.0}", rates[0])), |b| {
                Cell::num(b, 0)
            }),
            Cell::text(expected),
        ]);
        bounds.push(b);
    }
    rep.tables.push(summary);
    rep.tables.push(t);
    rep.charts.push(good_chart);
    rep.charts.push(rec_chart);

    let top = rates.len() - 1;
    let b0 = bounds[0].unwrap_or(0.0);
    // The boundary lies between the largest healed rate and the next rate.
    let next = rates
        .iter()
        .copied()
        .find(|&r| r > b0)
        .unwrap_or(f64::INFINITY);
    rep.check(
        "without mitigation, the largest self-healing load is ≈ 150 QPS (±10%)",
        format!("heals at {b0:.0} QPS, stays down at {next:.0} QPS"),
        b0 >= 135.0 && next <= 165.0,
    );
    rep.check(
        format!(
            "without mitigation, goodput is 0 at {:.0} QPS long after the trigger",
            rates[top]
        ),
        format!("{:.1} QPS in the last 10 s", end_goodput[0][top]),
        end_goodput[0][top] < 0.05 * rates[top],
    );
    for (pi, name) in [(2usize, "token bucket"), (3, "circuit breaker")] {
        rep.check(
            format!("with a {name}, it heals at {:.0} QPS", rates[top]),
            format!(
                "{}; goodput {:.1} QPS in the last 10 s",
                if bounds[pi].is_some_and(|b| b >= rates[top]) {
                    "healed"
                } else {
                    "did not heal"
                },
                end_goodput[pi][top]
            ),
            bounds[pi].is_some_and(|b| b >= rates[top]),
        );
    }
    rep.notes.push(format!(
        "A 10% ratio budget still lets 10% more load reach a collapsed server: 280 × 1.1 = 308 > {CAPACITY}, \
         so it heals only up to about {:.0} QPS (measured: {}). The token bucket stops retrying entirely \
         once failures drain it, and the breaker stops calling; both heal at 280.",
        CAPACITY / 1.1,
        bounds[1].map_or("none".into(), |b| format!("{b:.0}"))
    ));
    rep
}
