//! `jitter-occ`: Brooker, "Exponential Backoff and Jitter" (AWS
//! Architecture Blog, 2015), on his simulator's model (see [`crate::occ`]).
//!
//! N = 10…190 clients step 10, 100 runs each, five strategies. Published:
//! at 100 clients full jitter makes more than half fewer calls than
//! un-jittered exponential backoff and finishes far sooner; full ≈ equal in
//! calls, decorrelated somewhat more; exponential without jitter is the
//! slowest by far; the work grows faster than N for all.

use crate::occ::{self, OccRun, Strategy};
use crate::report::{Cell, Chart, ScenarioReport, Table};
use crate::scenarios::Options;
use crate::seed::derive;
use crate::stats::mean;
use crate::sweep::run_all;

/// Client counts of a sweep.
pub fn clients(opts: &Options<'_>) -> Vec<u32> {
    match opts.size {
        super::Size::Full => (1..=19).map(|i| i * 10).collect(),
        super::Size::Tour => vec![10, 40, 70, 100, 130, 160, 190],
        super::Size::Test => vec![10, 50, 100],
    }
}

/// Mean calls and completion time (ms) per strategy and client count.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Client counts.
    pub clients: Vec<u32>,
    /// `calls[s][i]`: mean writes for strategy `s` at `clients[i]`.
    pub calls: Vec<Vec<f64>>,
    /// `completion_ms[s][i]`: mean completion time.
    pub completion_ms: Vec<Vec<f64>>,
    /// Events processed in total.
    pub events: u64,
}

/// Runs the sweep: every strategy × client count × run, in parallel.
pub fn sweep(opts: &Options<'_>, clients: &[u32], runs: u32) -> Sweep {
    let mut tasks = Vec::new();
    for (s, _) in Strategy::ALL.iter().enumerate() {
        for (i, _) in clients.iter().enumerate() {
            for r in 0..runs {
                tasks.push((s, i, r));
            }
        }
    }
    opts.progress.start("jitter-occ", tasks.len() as u64);
    let results: Vec<OccRun> = run_all(&tasks, opts.progress, |&(s, i, r)| {
        let n = clients[i];
        let seed = derive(
            opts.seed,
            &[
                crate::seed::name_id("jitter-occ"),
                s as u64,
                n as u64,
                r as u64,
            ],
        );
        occ::run(Strategy::ALL[s], n, seed)
    });
    opts.progress.finish();
    let mut calls = vec![vec![0.0; clients.len()]; Strategy::ALL.len()];
    let mut completion = calls.clone();
    let mut events = 0;
    for (k, &(s, i, _)) in tasks.iter().enumerate() {
        calls[s][i] += results[k].calls as f64 / runs as f64;
        completion[s][i] += results[k].completion_nanos as f64 / 1e6 / runs as f64;
        events += results[k].events;
    }
    Sweep {
        clients: clients.to_vec(),
        calls,
        completion_ms: completion,
        events,
    }
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let runs = opts.runs_or(100, 10, 4);
    let clients = clients(opts);
    let sw = sweep(opts, &clients, runs);
    let mut rep = ScenarioReport::new(
        "jitter-occ",
        "Exponential backoff and jitter on contended optimistic writes",
        "Marc Brooker, \"Exponential Backoff And Jitter\", AWS Architecture Blog, 2015",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "One row with a version; each of N clients must make one successful write. An attempt reads the \
         version and writes if it still matches: 4 network hops of |N(10 ms, 2 ms)|. A client that lost \
         the race waits its rebound RetryPolicy's delay (base 5 ms counted from attempt 1, cap 2 s; \
         decorrelated from 5 ms) and reads again. Calls = writes; completion = time of the last event. \
         N = {}..{}, {} runs per point, 5 strategies ({} events).",
        clients[0],
        clients[clients.len() - 1],
        runs,
        sw.events
    );
    let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
    let mut cols = vec!["clients"];
    cols.extend(&names);
    let mut calls_t = Table::new("calls", "Calls (writes) per run, mean", &cols);
    let mut time_t = Table::new("completion", "Completion time (ms), mean", &cols);
    for (i, n) in clients.iter().enumerate() {
        let mut a = vec![Cell::int(*n)];
        let mut b = vec![Cell::int(*n)];
        for s in 0..Strategy::ALL.len() {
            a.push(Cell::num(sw.calls[s][i], 1));
            b.push(Cell::num(sw.completion_ms[s][i], 1));
        }
        calls_t.row(a);
        time_t.row(b);
    }
    rep.tables.push(calls_t);
    rep.tables.push(time_t);

    let mut c1 = Chart::new(
        "calls",
        "Work: calls vs clients",
        "clients",
        "calls (writes)",
    );
    let mut c2 = Chart::new(
        "completion",
        "Completion time vs clients",
        "clients",
        "completion time (ms, log)",
    );
    c2.log_y = true;
    for (s, name) in names.iter().enumerate() {
        let pts = |v: &Vec<f64>| {
            clients
                .iter()
                .zip(v)
                .map(|(&n, &y)| [n as f64, y])
                .collect()
        };
        c1.line(*name, pts(&sw.calls[s]));
        c2.line(*name, pts(&sw.completion_ms[s]));
    }
    rep.charts.push(c1);
    rep.charts.push(c2);

    // Checks at 100 clients (or the nearest point of a reduced sweep).
    let i = clients
        .iter()
        .enumerate()
        .min_by_key(|(_, &n)| n.abs_diff(100))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let n = clients[i];
    let [none, expo, equal, full, decor] = [0, 1, 2, 3, 4].map(|s| sw.calls[s][i]);
    let [t_none, t_expo, t_equal, t_full, t_decor] =
        [0, 1, 2, 3, 4].map(|s| sw.completion_ms[s][i]);
    rep.check(
        format!("at {n} clients full jitter makes more than half fewer calls than exponential"),
        format!(
            "full {full:.0} vs exponential {expo:.0} calls: {:.0}% fewer",
            (1.0 - full / expo) * 100.0
        ),
        full < expo / 2.0,
    );
    rep.check(
        format!("at {n} clients full jitter finishes far sooner than exponential"),
        format!(
            "full {t_full:.0} ms vs exponential {t_expo:.0} ms ({:.1}x sooner)",
            t_expo / t_full
        ),
        t_full * 3.0 < t_expo,
    );
    rep.check(
        "full jitter ≈ equal jitter in calls",
        format!(
            "full {full:.0} vs equal {equal:.0} calls ({:+.0}%)",
            (equal / full - 1.0) * 100.0
        ),
        (equal / full - 1.0).abs() < 0.2,
    );
    rep.check(
        "decorrelated jitter makes somewhat more calls than full jitter",
        format!(
            "decorrelated {decor:.0} vs full {full:.0} calls ({:+.0}%)",
            (decor / full - 1.0) * 100.0
        ),
        decor > full && decor < 2.0 * full,
    );
    rep.check(
        "exponential without jitter is the slowest by far",
        format!(
            "exponential {t_expo:.0} ms; others: none {t_none:.0}, equal {t_equal:.0}, full {t_full:.0}, decorrelated {t_decor:.0}"
        ),
        [t_none, t_equal, t_full, t_decor].iter().all(|&t| t * 3.0 < t_expo),
    );
    let last = clients.len() - 1;
    let growth = clients[last] as f64 / clients[0] as f64;
    let ratios: Vec<f64> = (0..5).map(|s| sw.calls[s][last] / sw.calls[s][0]).collect();
    rep.check(
        "work is super-linear in N for every strategy",
        format!(
            "calls grow {} from {} to {} clients ({}x more clients)",
            ratios
                .iter()
                .zip(&names)
                .map(|(r, n)| format!("{n} {r:.0}x"))
                .collect::<Vec<_>>()
                .join(", "),
            clients[0],
            clients[last],
            growth
        ),
        ratios.iter().all(|&r| r > growth),
    );
    let _ = (none, mean(&[]));
    rep.notes.push(
        "rebound's decorrelated jitter draws from U(base, min(cap, 3 × previous)) rather than clamping \
         min(cap, U(base, 3 × previous)); the two agree below the cap, which these runs rarely reach."
            .into(),
    );
    rep
}
