//! # rebound-sim
//!
//! See what a retry policy does to a struggling system before it ships.
//!
//! A discrete-event simulator that drives **the real [`rebound`] policy
//! objects** — [`RetryPolicy`](rebound::RetryPolicy), its
//! [`RetryState`](rebound::RetryState), [`RetryBudget`](rebound::RetryBudget),
//! [`CircuitBreaker`](rebound::CircuitBreaker) and
//! [`AdaptiveThrottle`](rebound::throttle::AdaptiveThrottle) — in virtual time: the
//! engine moves a [`ManualClock`](rebound::ManualClock) to each event's time
//! and asks the policies, exactly as a real executor asks them on the system
//! clock. Nothing of a policy is re-implemented here, so what you measure is
//! the code that ships.
//!
//! ```
//! use std::time::Duration;
//! use rebound_sim::model::{self, LayerSpec, SystemSpec, Workload};
//! use rebound_sim::PolicySpec;
//!
//! // 200 calls/s to a server that fails 30% of requests, 4 attempts each.
//! let spec = SystemSpec {
//!     duration: Duration::from_secs(20).into(),
//!     workload: Workload::open(200.0),
//!     policy: PolicySpec::attempts(4),
//!     layers: vec![LayerSpec { failure_rate: 0.3, ..LayerSpec::default() }],
//!     ..SystemSpec::default()
//! };
//! let mut run = model::run(&spec, 42).unwrap();
//! // Load = 1 + f + f² + f³ = 1.417; success = 1 − f⁴ = 0.9919.
//! assert!((run.amplification() - 1.417).abs() < 0.03);
//! assert!((run.success_rate() - 0.9919).abs() < 0.01);
//! assert!(run.latency_percentile(99.0).is_some());
//! // Same seed, same run.
//! assert_eq!(model::run(&spec, 42).unwrap().attempts, run.attempts);
//! ```
//!
//! ## What is here
//!
//! | piece | what it does |
//! |---|---|
//! | [`engine`] | event queue in integer nanoseconds (FIFO among ties; a binary heap plus an O(1) lane for events scheduled in time order, such as fixed timeouts) and the [`VirtualTime`](engine::VirtualTime) the policies read |
//! | [`model`] | clients (open-loop Poisson with spikes and ramps, closed-loop) calling a chain of servers (workers, bounded queue, service-time [`Dist`], slowdown, failures, outages), each caller with its own policy |
//! | [`occ`] | Brooker's optimistic-concurrency model for the backoff-and-jitter study |
//! | [`policy`] | [`PolicySpec`]: a policy as data, built into the real `RetryPolicy` |
//! | [`scenarios`] | the built-in scenarios, each reproducing and checking a published result |
//! | [`config`] | custom scenarios from TOML, with errors naming file, line and field |
//! | [`report`], [`output`] | tables, charts and checks; terminal, CSV, JSON, SVG, PNG, HTML |
//! | [`sweep`], [`seed`] | parallel runs (rayon) with seeds derived from run coordinates: same seed, same bytes |
//!
//! The `rebound` command (crate `rebound-cli`) is the front door:
//! `cargo run -p rebound-cli --release -- simulate`.

pub mod config;
pub mod dist;
pub mod duration;
pub mod engine;
pub mod model;
pub mod occ;
pub mod output;
pub mod policy;
pub mod report;
pub mod rng;
pub mod scenarios;
pub mod seed;
pub mod stats;
pub mod sweep;

pub use dist::Dist;
pub use duration::Dur;
pub use policy::PolicySpec;
pub use report::Report;
pub use rng::SimRng;
