//! The general model: clients calling a chain of servers, each caller
//! driving a real rebound policy in virtual time.
//!
//! ```text
//!  workload ──▶ clients ──policy──▶ layer 0 ──policy──▶ layer 1 ─ … ─▶ bottom layer
//!  (open-loop Poisson          (workers, bounded queue, service time,
//!   or closed-loop)             hiccups, slowdown, failures, outages)
//! ```
//!
//! * **Workload**: open-loop Poisson arrivals at a rate that can spike or
//!   ramp ([`Workload::Open`]), or closed-loop clients that call, wait for
//!   the answer, think, and call again ([`Workload::Closed`]).
//! * **Servers** ([`LayerSpec`]): `workers` serve at once (unlimited when
//!   unset), the rest wait in a FIFO queue of `queue` places (unbounded when
//!   unset); a request arriving at a full queue fails at once. Service time
//!   is drawn from a [`Dist`](crate::Dist), plus a rare extra delay
//!   ([`Hiccups`]: the latency tail), and grows with concurrency past
//!   `slowdown`'s knee. Each request fails with probability
//!   `failure_rate`; an outage window fails every request (`fail`),
//!   freezes the workers (`stall`: nothing completes, the queue grows) or
//!   slows every request (`slow`).
//! * **Callers** drive the real policy objects of their
//!   [`PolicySource`](crate::policy::PolicySource) through the core's
//!   sans-IO machines: a retry policy through
//!   [`RetryState`](rebound::RetryState), a hedge policy through
//!   [`HedgeState`](rebound::hedge::HedgeState), a pipeline through
//!   [`PipelineRun`](rebound::pipeline::PipelineRun). An operation call is
//!   a request to the server below; a timer is an event.
//! * **Cancellation** is the caller's: when an attempt times out or a
//!   hedged copy loses the race, the caller stops waiting for it, but the
//!   server does not know and still does the work — the wasted work that
//!   sustains a retry storm, and the extra load of hedging.
//! * **Layers**: a layer with a layer below calls it, after its own service
//!   time, with its own policy; its answer is that call's result.
//!
//! ```
//! use std::time::Duration;
//! use rebound::config::{DependencyConfig, RetryConfig};
//! use rebound_sim::model::{self, LayerSpec, SystemSpec, Workload};
//! use rebound_sim::policy::{CallerPolicy, PolicySource};
//!
//! let retry = RetryConfig { max_attempts: Some(3), ..RetryConfig::default() };
//! let table = DependencyConfig { retry: Some(retry), ..DependencyConfig::default() };
//! let spec = SystemSpec {
//!     duration: Duration::from_secs(10),
//!     workload: Workload::open(100.0),
//!     policy: CallerPolicy::new(PolicySource::config("db", table)),
//!     layers: vec![LayerSpec { failure_rate: 0.5, ..LayerSpec::default() }],
//!     drain: Duration::from_secs(5),
//!     ..SystemSpec::default()
//! };
//! let run = model::run(&spec, 1).unwrap();
//! let load = run.attempts[0] as f64 / run.first_tries as f64;
//! assert!((load - 1.75).abs() < 0.1, "{load}"); // 1 + 0.5 + 0.25
//! ```

mod call;
mod hedge;
mod pipeline;
mod retry;
mod server;
mod slab;
mod spec;

pub use spec::{
    Hiccups, LayerSpec, Outage, OutageMode, Ramp, Slowdown, SpecError, Spike, SystemSpec, Workload,
};

use std::collections::VecDeque;

use crate::dist::nanos;
use crate::engine::{EventQueue, VirtualTime};
use crate::policy::{PolicyObject, Scope};
use crate::rng::SimRng;
use crate::stats::RunStats;
use call::{Call, Caller};
use server::{Request, Server};
use slab::Slab;
use spec::policy_err;

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// The next open-loop arrival.
    Arrival,
    /// A closed-loop client starts its next call.
    Wake(u32),
    /// A retried call's backoff is over: start its next attempt.
    Retry(u32),
    /// A request reaches its server.
    Arrive(u32),
    /// A request's service is over.
    Done(u32),
    /// A request's answer reaches its caller: (call, request token, ok).
    Reply(u32, u32, bool),
    /// A caller's timer fires: (call, timer token). An attempt timeout, a
    /// hedge delay, a pipeline's timer.
    Timer(u32, u32),
}

struct Sim<'a> {
    spec: &'a SystemSpec,
    time: VirtualTime,
    q: EventQueue<Ev>,
    rng: SimRng,
    /// Client policies first (one, or one per client), then one per layer
    /// that calls another.
    policies: Vec<PolicyObject>,
    layer_policy: Vec<Option<u32>>,
    calls: Slab<Call>,
    reqs: Slab<Request>,
    servers: Vec<Server>,
    /// No new calls from here.
    arrivals_end: u64,
    /// The run stops here.
    end: u64,
    /// Tokens of requests and timers, unique in the run, so an answer to
    /// an abandoned request (or a timer that was re-armed) is recognised.
    tokens: u32,
    stats: RunStats,
}

/// Runs `spec` once with `seed`. The same spec and seed give the same
/// [`RunStats`], bit for bit.
pub fn run(spec: &SystemSpec, seed: u64) -> Result<RunStats, SpecError> {
    spec.validate()?;
    let time = VirtualTime::new();
    let pseed = |i: u64| crate::seed::derive(seed, &[0x9011c7, i]);
    let mut policies = Vec::new();
    let n_client_policies = match spec.policy.scope {
        Scope::Client => spec.clients,
        Scope::Shared => 1,
    };
    for i in 0..n_client_policies {
        policies.push(
            spec.policy
                .source
                .build(&time, pseed(i as u64))
                .map_err(|e| policy_err("policy", &e))?,
        );
    }
    let mut layer_policy = Vec::new();
    for (i, l) in spec.layers.iter().enumerate() {
        if i + 1 < spec.layers.len() {
            let p = l.policy.clone().unwrap_or_default();
            policies.push(
                p.build(&time, pseed(1_000_000 + i as u64))
                    .map_err(|e| policy_err(&format!("layers[{i}].policy"), &e))?,
            );
            layer_policy.push(Some((policies.len() - 1) as u32));
        } else {
            layer_policy.push(None);
        }
    }
    let arrivals_end = nanos(spec.duration);
    let end = arrivals_end.saturating_add(nanos(spec.drain));
    let bins = (arrivals_end.div_ceil(nanos(spec.bin))) as usize;
    let mut sim = Sim {
        spec,
        time,
        q: EventQueue::with_capacity(1024),
        rng: SimRng::new(seed),
        policies,
        layer_policy,
        calls: Slab::new(),
        reqs: Slab::new(),
        servers: spec
            .layers
            .iter()
            .map(|_| Server {
                busy: 0,
                queue: VecDeque::new(),
            })
            .collect(),
        arrivals_end,
        end,
        tokens: 0,
        stats: RunStats::new(spec.layers.len(), bins, nanos(spec.bin)),
    };
    match &spec.workload {
        Workload::Open { .. } => sim.next_arrival(0),
        Workload::Closed { .. } => {
            for c in 0..spec.clients {
                sim.q.schedule(0, Ev::Wake(c));
            }
        }
    }
    sim.run();
    Ok(sim.stats)
}

impl Sim<'_> {
    fn run(&mut self) {
        while let Some(t) = self.q.peek_time() {
            if t >= self.end {
                break;
            }
            let (t, ev) = self.q.pop().expect("peeked");
            self.time.set(t);
            match ev {
                Ev::Arrival => {
                    let c = if self.spec.clients > 1 {
                        self.rng.u32(self.spec.clients)
                    } else {
                        0
                    };
                    self.start_client_call(t, c);
                    self.next_arrival(t);
                }
                Ev::Wake(c) if t < self.arrivals_end => self.start_client_call(t, c),
                Ev::Wake(_) => {}
                Ev::Retry(call) => self.attempt(t, call),
                Ev::Arrive(r) => self.arrive(t, r),
                Ev::Done(r) => self.done(t, r),
                Ev::Reply(call, token, ok) => self.reply(t, call, token, ok),
                Ev::Timer(call, token) => self.timer(t, call, token),
            }
        }
        self.stats.events = self.q.processed();
        self.stats.unfinished = self
            .calls
            .iter()
            .filter(|c| matches!(c.caller, Caller::Client(_)))
            .count() as u64;
    }

    /// Thinning: candidates at the peak rate, each kept with probability
    /// rate(t) / peak, which is an exact non-homogeneous Poisson process.
    fn next_arrival(&mut self, mut t: u64) {
        let peak = self.spec.workload.max_rate();
        if peak <= 0.0 {
            return;
        }
        loop {
            t = t.saturating_add(self.rng.exponential(1e9 / peak) as u64 + 1);
            if t >= self.arrivals_end {
                return;
            }
            let r = self.spec.workload.rate_at(t);
            if r >= peak || self.rng.f64() * peak < r {
                self.q.schedule(t, Ev::Arrival);
                return;
            }
        }
    }

    fn start_client_call(&mut self, t: u64, client: u32) {
        let policy = match self.spec.policy.scope {
            Scope::Client => client,
            Scope::Shared => 0,
        };
        self.stats.record_first_try(t);
        self.start_call(t, Caller::Client(client), 0, policy);
    }

    /// A fresh token for a request or a timer.
    #[inline]
    fn token(&mut self) -> u32 {
        self.tokens = self.tokens.wrapping_add(1);
        self.tokens
    }
}
