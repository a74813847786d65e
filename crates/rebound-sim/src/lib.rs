//! # rebound-sim
//!
//! See what a resilience policy does to a struggling system before it
//! ships.
//!
//! A discrete-event simulator that drives **the real [`rebound`] policy
//! objects** in virtual time: retry policies through their sans-IO
//! [`RetryState`](rebound::RetryState), hedged requests through
//! [`HedgeState`](rebound::hedge::HedgeState), whole pipelines through
//! [`PipelineRun`](rebound::pipeline::PipelineRun), with the budgets,
//! breakers and throttles inside them. The engine moves a
//! [`ManualClock`](rebound::ManualClock) to each event's time and asks the
//! machines, exactly as a real driver asks them on the system clock.
//! Nothing of a policy is re-implemented here, so what you measure is the
//! code that ships — and policies are written in the core's own schema,
//! [`rebound::config`], so the policy file you simulate is the one your
//! service loads.
//!
//! ```
//! use std::time::Duration;
//! use rebound::config::DependencyConfig;
//! use rebound_sim::model::{self, LayerSpec, SystemSpec, Workload};
//! use rebound_sim::policy::{CallerPolicy, PolicySource};
//!
//! // 200 calls/s to a server that fails 30% of requests, 4 attempts each,
//! // written as a service's policy file writes it.
//! let table: DependencyConfig = toml::from_str(
//!     r#"retry = { max_attempts = 4, backoff = { kind = "constant", base = "0s" } }"#,
//! )?;
//! let spec = SystemSpec {
//!     duration: Duration::from_secs(20),
//!     workload: Workload::open(200.0),
//!     policy: CallerPolicy::new(PolicySource::config("inventory", table)),
//!     layers: vec![LayerSpec { failure_rate: 0.3, ..LayerSpec::default() }],
//!     ..SystemSpec::default()
//! };
//! let mut run = model::run(&spec, 42)?;
//! // Load = 1 + f + f² + f³ = 1.417; success = 1 − f⁴ = 0.9919.
//! assert!((run.amplification() - 1.417).abs() < 0.03);
//! assert!((run.success_rate() - 0.9919).abs() < 0.01);
//! assert!(run.latency_percentile(99.0).is_some());
//! // Same seed, same run.
//! assert_eq!(model::run(&spec, 42)?.attempts, run.attempts);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What is here
//!
//! | piece | what it does |
//! |---|---|
//! | [`engine`] | event queue in integer nanoseconds (FIFO among ties; a binary heap plus an O(1) lane for events scheduled in time order, such as fixed timeouts) and the [`VirtualTime`](engine::VirtualTime) the policies read |
//! | [`model`] | clients (open-loop Poisson with spikes and ramps, closed-loop) calling a chain of servers (workers, bounded queue, service-time [`Dist`], latency hiccups, slowdown, failures, outages), each caller driving its own policy |
//! | [`policy`] | a caller's policy: the core's [`DependencyConfig`](rebound::config::DependencyConfig) or code using the core's builders, who shares it ([`Scope`](policy::Scope)), and the real object each run builds |
//! | [`occ`] | Brooker's optimistic-concurrency model for the backoff-and-jitter study |
//! | [`scenarios`] | the built-in scenarios, each reproducing and checking a published result |
//! | [`scenario_file`] | custom scenarios from TOML, with errors naming file, line and field |
//! | [`report`], [`output`] | tables, charts and checks; terminal, CSV, JSON, SVG, PNG, HTML |
//! | [`sweep`], [`seed`] | parallel runs (rayon) with seeds derived from run coordinates: same seed, same bytes |
//!
//! The `rebound` command (crate `rebound-cli`) is the front door:
//! `cargo run -p rebound-cli --release -- simulate`.

pub mod dist;
pub mod engine;
pub mod model;
pub mod occ;
pub mod output;
pub mod policy;
pub mod report;
pub mod rng;
pub mod scenario_file;
pub mod scenarios;
pub mod seed;
pub mod stats;
pub mod sweep;

pub use dist::Dist;
pub use report::ScenarioReport;
pub use rng::SimRng;
