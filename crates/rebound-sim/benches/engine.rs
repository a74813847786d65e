//! Simulator throughput: events per second on one thread (retries through
//! `RetryState`, hedges through `HedgeState`, a pipeline through
//! `PipelineRun`), and the full `jitter-occ` sweep (19 client counts × 5
//! strategies × 100 runs).
//!
//! `cargo bench -p rebound-sim --bench engine`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rebound_sim::model::{self, LayerSpec, SystemSpec, Workload};
use rebound_sim::occ::{self, Strategy};
use rebound_sim::policy::CallerPolicy;
use rebound_sim::scenarios::tables;
use rebound_sim::scenarios::{jitter_occ, tail_at_scale, Options, Size};
use rebound_sim::Dist;

fn events_per_second(c: &mut Criterion) {
    let mut g = c.benchmark_group("events");
    // Brooker's OCC model, 100 clients, no backoff: the busiest strategy.
    let events = occ::run(Strategy::NoBackoff, 100, 1).events;
    g.throughput(Throughput::Elements(events));
    g.bench_function("occ_100_clients_no_backoff", |b| {
        b.iter(|| occ::run(Strategy::NoBackoff, 100, 1))
    });
    let events = occ::run(Strategy::Full, 100, 1).events;
    g.throughput(Throughput::Elements(events));
    g.bench_function("occ_100_clients_full_jitter", |b| {
        b.iter(|| occ::run(Strategy::Full, 100, 1))
    });
    // The general model: an M/M/1 server at 90% load, retries on timeout.
    let mut retry = tables::attempts(2);
    retry.attempt_timeout = Some(Duration::from_secs(1));
    let spec = SystemSpec {
        duration: Duration::from_secs(20),
        clients: 10,
        workload: Workload::open(270.0),
        policy: CallerPolicy::new(tables::retry(retry)),
        layers: vec![LayerSpec {
            workers: Some(1),
            service: Dist::exponential(Duration::from_secs_f64(1.0 / 300.0)),
            ..LayerSpec::default()
        }],
        ..SystemSpec::default()
    };
    let events = model::run(&spec, 1).unwrap().events;
    g.throughput(Throughput::Elements(events));
    g.bench_function("mm1_retry_on_timeout", |b| {
        b.iter(|| model::run(&spec, 1).unwrap())
    });
    // Hedged calls through HedgeState, and a retry + hedge pipeline through
    // PipelineRun: the healthy service of `tail-at-scale`, 20 s at 1000/s.
    let policies = tail_at_scale::policies(Duration::from_micros(10_500));
    for (name, policy) in [
        ("hedge_fixed_delay", &policies[2]),
        ("pipeline_retry_hedge_budget", &policies[3]),
    ] {
        let spec = tail_at_scale::spec(policy, Duration::from_secs(20), false);
        let events = model::run(&spec, 1).unwrap().events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(name, |b| b.iter(|| model::run(&spec, 1).unwrap()));
    }
    g.finish();
}

fn full_sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("jitter_occ");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(1));
    g.warm_up_time(Duration::from_millis(1));
    let opts = Options {
        size: Size::Full,
        ..Options::default()
    };
    let clients = jitter_occ::clients(&opts);
    g.bench_function("full_sweep_19x5x100", |b| {
        b.iter(|| jitter_occ::sweep(&opts, &clients, 100))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // rebound-sim turns on plotters' ab_glyph font backend (for its PNGs);
    // criterion's own plots would then look for a font nobody registered.
    config = Criterion::default().without_plots();
    targets = events_per_second, full_sweep
}
criterion_main!(benches);
