//! `throttle`: Google SRE adaptive client-side throttling in overload.
//!
//! A backend with a fixed capacity gets 2, 5 or 10 times more calls than it
//! can take. It turns the excess away at once (a full queue), which still
//! costs a round trip. Each client runs the real
//! [`AdaptiveThrottle`](rebound::throttle::AdaptiveThrottle), plugged into
//! its [`RetryPolicy`](rebound::RetryPolicy): every attempt asks it first
//! ([`RetryState::begin_attempt`](rebound::RetryState::begin_attempt)
//! answers `Stop::Throttled` when it sheds one) and every answer is
//! reported to it (`on_outcome`: an answer is an accept, a rejection is
//! not). The throttle sheds locally with probability
//! `max(0, (requests − K·accepts) / (requests + 1))`, so in steady overload
//! the backend sees about **K attempts per request it accepts**, whatever
//! the demand (SRE book, ch. 21, "Client-side throttling"; K = 2 is the
//! book's default, 1.1 its aggressive setting).
//!
//! Retried attempts go through the throttle too: with 3 attempts and
//! backoff the ratio converges to the same K.

use std::time::Duration;

use crate::dist::Dist;
use crate::model::{LayerSpec, SystemSpec, Workload};
use crate::policy::CallerPolicy;
use crate::report::{Cell, Chart, ScenarioReport, Table};
use crate::scenarios::tables;
use crate::scenarios::Options;
use crate::stats::RunStats;
use rebound::config::JitterConfig;

/// Demand as a multiple of the backend's capacity.
pub const DEMANDS: [f64; 3] = [2.0, 5.0, 10.0];
/// The throttle settings compared: the SRE book's default and aggressive `K`.
pub const KS: [f64; 2] = [2.0, 1.1];
/// Clients, each with its own throttle (one per client process, as in the book).
pub const CLIENTS: u32 = 10;
/// Workers of the backend.
pub const WORKERS: u32 = 10;
/// Queue places of the backend; a call arriving at a full queue is rejected.
pub const QUEUE: u32 = 10;

/// Sizes that depend on [`Options::size`].
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Calls per second the backend can accept.
    pub capacity: f64,
    /// The throttle's window.
    pub window: Duration,
    /// Simulated time.
    pub duration: Duration,
    /// Attempts per accept are measured from here to the end (after two
    /// windows, so the throttle has forgotten the start).
    pub warmup: Duration,
}

/// The sizes for `opts`: the library's 120 s window at full size.
pub fn sizes(opts: &Options<'_>) -> Sizes {
    let full = Sizes {
        capacity: 100.0,
        window: Duration::from_secs(120),
        duration: Duration::from_secs(600),
        warmup: Duration::from_secs(240),
    };
    let small = Sizes {
        capacity: 20.0,
        window: Duration::from_secs(30),
        duration: Duration::from_secs(180),
        warmup: Duration::from_secs(60),
    };
    opts.pick(full, small, small)
}

/// The policies compared, with their names and the `K` they aim at.
pub fn policies(window: Duration) -> Vec<(String, CallerPolicy, Option<f64>)> {
    let once = tables::attempts(1);
    let mut retrying = tables::attempts(3);
    retrying.backoff = Some(tables::exponential(
        Duration::from_millis(100),
        Duration::from_secs(2),
        JitterConfig::Full,
    ));
    let throttled = |retry: &rebound::config::RetryConfig, k: f64| {
        let mut r = retry.clone();
        r.throttle = Some(tables::throttle(k, window));
        CallerPolicy::new(tables::retry(r))
    };
    let mut out = vec![(
        "no throttle".to_string(),
        CallerPolicy::new(tables::retry(once.clone())),
        None,
    )];
    for k in KS {
        out.push((format!("throttle K = {k}"), throttled(&once, k), Some(k)));
    }
    for k in KS {
        out.push((
            format!("throttle K = {k}, 3 attempts"),
            throttled(&retrying, k),
            Some(k),
        ));
    }
    out
}

/// The system: [`CLIENTS`] clients sending `demand` × capacity calls per
/// second to a backend of [`WORKERS`] workers (exponential service times)
/// and [`QUEUE`] queue places.
pub fn spec(policy: &CallerPolicy, demand: f64, s: &Sizes) -> SystemSpec {
    SystemSpec {
        duration: s.duration,
        clients: CLIENTS,
        workload: Workload::open(demand * s.capacity),
        policy: policy.clone(),
        layers: vec![LayerSpec {
            name: "backend".into(),
            workers: Some(WORKERS),
            queue: Some(QUEUE),
            service: Dist::exponential(Duration::from_secs_f64(WORKERS as f64 / s.capacity)),
            ..LayerSpec::default()
        }],
        ..SystemSpec::default()
    }
}

/// Attempts that reached the backend and attempts it accepted, from bin
/// `from` on. With one layer that never fails, an accepted attempt is a
/// successful call, so accepts are the goodput.
fn sent_accepted(r: &RunStats, from: usize) -> (u64, u64) {
    r.bins[from.min(r.bins.len())..]
        .iter()
        .fold((0, 0), |(s, a), b| (s + b.attempts, a + b.goodput))
}

/// Runs the scenario.
pub fn run(opts: &Options<'_>) -> ScenarioReport {
    let runs = opts.runs_or(3, 1, 1);
    let s = sizes(opts);
    let pols = policies(s.window);
    let specs: Vec<SystemSpec> = pols
        .iter()
        .flat_map(|(_, p, _)| DEMANDS.iter().map(move |&d| spec(p, d, &s)))
        .collect();
    let results = super::run_specs(opts, "throttle", &specs, runs);
    let from = s.warmup.as_secs() as usize; // bins are 1 s

    let mut rep = ScenarioReport::new(
        "throttle",
        "Adaptive client-side throttling in overload",
        "Google SRE book, ch. 21 \"Handling Overload\", client-side throttling (Beyer et al., 2016)",
        opts.seed,
        runs,
    );
    rep.setup = format!(
        "A backend of {WORKERS} workers (exponential service times) accepting {} calls/s, with {QUEUE} queue \
         places; a call arriving at a full queue is rejected at once. {CLIENTS} clients send Poisson demand \
         of 2, 5 or 10 times that, each through its own rebound RetryPolicy with an AdaptiveThrottle \
         (window {} s, 12 buckets). Attempts per accept = attempts that reached the backend / attempts it \
         accepted, from {} s to the end ({} s).",
        s.capacity,
        s.window.as_secs(),
        s.warmup.as_secs(),
        s.duration.as_secs()
    );
    let mut t = Table::new(
        "convergence",
        "Attempts per accept in steady overload",
        &[
            "policy",
            "demand (x capacity)",
            "attempts per accept",
            "target K",
            "error (%)",
            "accepted (/s)",
            "calls shed locally (%)",
        ],
    );
    let mut by_demand = Chart::new(
        "attempts-per-accept",
        "Attempts per accept vs demand",
        "demand (x capacity)",
        "attempts per accept",
    );
    let mut worst: Vec<(String, f64)> = Vec::new();
    let mut baseline = Vec::new();
    let secs = (s.duration - s.warmup).as_secs_f64();
    let secs_total = s.duration.as_secs_f64();
    for (pi, (name, _, k)) in pols.iter().enumerate() {
        let mut pts = Vec::new();
        let mut max_err = 0.0f64;
        for (di, &d) in DEMANDS.iter().enumerate() {
            let rs = &results[pi * DEMANDS.len() + di];
            let (sent, acc) = rs
                .iter()
                .map(|r| sent_accepted(r, from))
                .fold((0, 0), |(s, a), (x, y)| (s + x, a + y));
            let ratio = crate::stats::ratio(sent, acc);
            let tries: u64 = rs.iter().map(|r| r.first_tries).sum();
            let shed: u64 = rs.iter().map(|r| r.failures.throttled).sum();
            let err = k.map(|k| 100.0 * (ratio - k) / k);
            if let Some(e) = err {
                max_err = max_err.max(e.abs());
            } else {
                baseline.push(ratio);
            }
            t.row(vec![
                Cell::text(name),
                Cell::num(d, 0),
                Cell::num(ratio, 3),
                k.map_or(Cell::Empty, |k| Cell::num(k, 1)),
                err.map_or(Cell::Empty, |e| Cell::num(e, 1)),
                Cell::num(acc as f64 / rs.len() as f64 / secs, 1),
                Cell::num(100.0 * crate::stats::ratio(shed, tries), 1),
            ]);
            pts.push([d, ratio]);
        }
        by_demand.line(name.clone(), pts);
        if k.is_some() {
            worst.push((name.clone(), max_err));
        }
    }
    for k in KS {
        by_demand.dashed(
            format!("K = {k}"),
            vec![[DEMANDS[0], k], [DEMANDS[DEMANDS.len() - 1], k]],
        );
    }
    rep.tables.push(t);
    rep.charts.push(by_demand);

    // Convergence over time at the highest demand, first run, 10 s windows.
    let mut over_time = Chart::new(
        "over-time",
        &format!(
            "Attempts per accept over time at {}x demand (first run, 10 s windows)",
            DEMANDS[DEMANDS.len() - 1]
        ),
        "time (s)",
        "attempts per accept",
    );
    over_time.log_y = true;
    for (pi, (name, _, _)) in pols.iter().enumerate().take(1 + KS.len()) {
        let r = &results[pi * DEMANDS.len() + DEMANDS.len() - 1][0];
        let pts = r
            .bins
            .chunks(10)
            .enumerate()
            .filter_map(|(i, w)| {
                let (sent, acc) = w
                    .iter()
                    .fold((0, 0), |(s, a), b| (s + b.attempts, a + b.goodput));
                (acc > 0).then(|| [(i * 10 + 5) as f64, sent as f64 / acc as f64])
            })
            .collect();
        over_time.line(name.clone(), pts);
    }
    for k in KS {
        over_time.dashed(format!("K = {k}"), vec![[0.0, k], [secs_total, k]]);
    }
    rep.charts.push(over_time);

    for k in KS {
        let rows: Vec<&(String, f64)> = worst
            .iter()
            .filter(|(n, _)| n.starts_with(&format!("throttle K = {k}")))
            .collect();
        let holds = !rows.is_empty() && rows.iter().all(|(_, e)| *e <= 10.0);
        rep.check(
            format!("in overload (2–10x capacity), attempts per accept converge to K = {k} (within 10%)"),
            rows.iter()
                .map(|(n, e)| format!("{n}: largest error {e:.1}%"))
                .collect::<Vec<_>>()
                .join("; "),
            holds,
        );
    }
    rep.notes.push(format!(
        "Without a throttle the backend sees every call: {} attempts per accept at {} times its capacity. \
         The throttle counts the attempts it sheds as requests (the book's formula), so the shed share \
         grows with demand while the backend's load stays near K times what it accepts.",
        baseline
            .iter()
            .map(|b| format!("{b:.2}"))
            .collect::<Vec<_>>()
            .join(" / "),
        DEMANDS
            .iter()
            .map(|d| format!("{d}"))
            .collect::<Vec<_>>()
            .join(" / "),
    ));
    rep
}
