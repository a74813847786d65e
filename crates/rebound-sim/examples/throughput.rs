//! Events per second on one thread, measured on the thread's CPU time as
//! well as the wall clock, for a machine shared with other work (where
//! criterion's wall-clock figures say more about the neighbours).
//!
//! ```sh
//! cargo run -p rebound-sim --release --example throughput [SECONDS_PER_WORKLOAD]
//! # a fixed amount of work, for instruction counts under callgrind:
//! valgrind --tool=callgrind target/release/examples/throughput --runs 20
//! ```
//!
//! CPU time is read from `/proc/thread-self/schedstat` (Linux): the time
//! this thread was actually on a core. Where it cannot be read, only the
//! wall-clock figure is printed.

use std::time::{Duration, Instant};

use rebound_sim::model::{self, LayerSpec, SystemSpec, Workload};
use rebound_sim::occ::{self, Strategy};
use rebound_sim::policy::CallerPolicy;
use rebound_sim::scenarios::{tables, tail_at_scale};
use rebound_sim::Dist;

fn cpu_nanos() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// How long to measure each workload.
#[derive(Clone, Copy)]
enum Amount {
    Seconds(f64),
    Runs(u32),
}

fn measure(name: &str, amount: Amount, mut f: impl FnMut() -> u64) {
    if let Amount::Runs(n) = amount {
        let events: u64 = (0..n).map(|_| std::hint::black_box(f())).sum();
        println!("{name:<30} {events} events in {n} runs");
        return;
    }
    let Amount::Seconds(secs) = amount else {
        unreachable!()
    };
    // Warm up: caches, allocator, branch predictors.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        std::hint::black_box(f());
    }
    let (cpu0, wall0) = (cpu_nanos(), Instant::now());
    let mut events = 0u64;
    while wall0.elapsed().as_secs_f64() < secs {
        events += std::hint::black_box(f());
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_nanos().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e9);
    match cpu {
        Some(cpu) => println!(
            "{name:<30} {:>6.2} M events/s per CPU-second  ({:>6.2} M/s wall; on a core {:>3.0}% of the time)",
            events as f64 / cpu / 1e6,
            events as f64 / wall / 1e6,
            100.0 * cpu / wall
        ),
        None => println!("{name:<30} {:>6.2} M events/s (wall)", events as f64 / wall / 1e6),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs = match args.as_slice() {
        [flag, n] if flag == "--runs" => Amount::Runs(n.parse().expect("--runs N")),
        [s] => Amount::Seconds(s.parse().expect("seconds per workload")),
        _ => Amount::Seconds(3.0),
    };
    measure("occ_100_clients_no_backoff", secs, || {
        occ::run(Strategy::NoBackoff, 100, 1).events
    });
    measure("occ_100_clients_full_jitter", secs, || {
        occ::run(Strategy::Full, 100, 1).events
    });
    // The same system as the criterion bench `mm1_retry_on_timeout`.
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
    measure("mm1_retry_on_timeout", secs, || {
        model::run(&spec, 1).unwrap().events
    });
    // The same systems as the criterion benches of the same names.
    let policies = tail_at_scale::policies(Duration::from_micros(10_500));
    for (name, policy) in [
        ("hedge_fixed_delay", &policies[2]),
        ("pipeline_retry_hedge_budget", &policies[3]),
    ] {
        let spec = tail_at_scale::spec(policy, Duration::from_secs(20), false);
        measure(name, secs, || model::run(&spec, 1).unwrap().events);
    }
}
