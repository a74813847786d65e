//! The general model: clients calling a chain of servers, each caller
//! driving a real [`RetryPolicy`] in virtual time.
//!
//! ```text
//!  workload ──▶ clients ──policy──▶ layer 0 ──policy──▶ layer 1 ─ … ─▶ bottom layer
//!  (open-loop Poisson          (workers, bounded queue, service time,
//!   or closed-loop)             slowdown, failures, outages)
//! ```
//!
//! * **Workload**: open-loop Poisson arrivals at a rate that can spike or
//!   ramp ([`Workload::Open`]), or closed-loop clients that call, wait for
//!   the answer, think, and call again ([`Workload::Closed`]).
//! * **Servers** ([`LayerSpec`]): `workers` serve at once (unlimited when
//!   unset), the rest wait in a FIFO queue of `queue` places (unbounded when
//!   unset); a request arriving at a full queue fails at once. Service time
//!   is drawn from a [`Dist`] and grows with concurrency past `slowdown`'s
//!   knee. Each request fails with probability `failure_rate`; an outage
//!   window either fails every request (`fail`) or freezes the workers
//!   (`stall`: nothing completes, the queue grows).
//! * **Timeouts** are the caller's: when an attempt times out the caller
//!   moves on, but the server does not know and still does the work — the
//!   wasted work that sustains a retry storm.
//! * **Layers**: a layer with a layer below calls it, after its own service
//!   time, with its own policy; its answer is that call's result.
//!
//! ```
//! use std::time::Duration;
//! use rebound_sim::model::{self, LayerSpec, SystemSpec, Workload};
//! use rebound_sim::PolicySpec;
//!
//! let spec = SystemSpec {
//!     duration: Duration::from_secs(10).into(),
//!     workload: Workload::open(100.0),
//!     policy: PolicySpec::attempts(3),
//!     layers: vec![LayerSpec { failure_rate: 0.5, ..LayerSpec::default() }],
//!     ..SystemSpec::default()
//! };
//! let run = model::run(&spec, 1).unwrap();
//! let load = run.attempts[0] as f64 / run.first_tries as f64;
//! assert!((load - 1.75).abs() < 0.1, "{load}"); // 1 + 0.5 + 0.25
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use rebound::{Attempt, ConfigError, Decision, Next, Outcome, RetryPolicy, RetryState, Stop};
use serde::{Deserialize, Serialize};

use crate::dist::{nanos, Dist};
use crate::duration::Dur;
use crate::engine::{EventQueue, VirtualTime};
use crate::policy::{PolicySpec, Scope};
use crate::rng::SimRng;
use crate::stats::RunStats;

/// A whole system to simulate. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SystemSpec {
    /// How long to simulate. New calls arrive until then; the run stops
    /// then, and calls still open are counted as unfinished.
    pub duration: Dur,
    /// Width of the time bins of the series (goodput over time). Default 1 s.
    pub bin: Dur,
    /// Number of clients. Open-loop arrivals go to a client chosen at
    /// random; with [`Scope::Client`] each has its own policy. Default 1.
    pub clients: u32,
    /// Where calls come from.
    pub workload: Workload,
    /// How clients call layer 0.
    pub policy: PolicySpec,
    /// The servers, front first.
    pub layers: Vec<LayerSpec>,
    /// When the trigger (outage, spike) ends, for the time to recover.
    pub trigger_end: Option<Dur>,
    /// Extra time after `duration` with no new calls, so calls in flight
    /// can finish (exact counts). Default 0.
    pub drain: Dur,
}

impl Default for SystemSpec {
    fn default() -> Self {
        SystemSpec {
            duration: Dur(Duration::from_secs(60)),
            bin: Dur(Duration::from_secs(1)),
            clients: 1,
            workload: Workload::open(100.0),
            policy: PolicySpec::default(),
            layers: vec![LayerSpec::default()],
            trigger_end: None,
            drain: Dur(Duration::ZERO),
        }
    }
}

/// Where calls come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Workload {
    /// Poisson arrivals (first tries) at `rate` per second, independent of
    /// how the system answers.
    Open {
        /// Calls per second.
        rate: f64,
        /// Windows where the rate is replaced.
        #[serde(default)]
        spikes: Vec<Spike>,
        /// Windows where the rate moves linearly.
        #[serde(default)]
        ramps: Vec<Ramp>,
    },
    /// Each client calls, waits for the end of the call, thinks, calls again.
    Closed {
        /// Time between the end of a call and the next one.
        #[serde(default)]
        think: Dist,
    },
}

impl Workload {
    /// Poisson arrivals at `rate` per second.
    pub fn open(rate: f64) -> Self {
        Workload::Open {
            rate,
            spikes: Vec::new(),
            ramps: Vec::new(),
        }
    }

    /// Adds a window `[start, end)` where the rate is `rate` (open loop only).
    pub fn with_spike(mut self, start: Duration, end: Duration, rate: f64) -> Self {
        if let Workload::Open { spikes, .. } = &mut self {
            spikes.push(Spike {
                start: Dur(start),
                end: Dur(end),
                rate,
            });
        }
        self
    }

    fn rate_at(&self, t: u64) -> f64 {
        match self {
            Workload::Open {
                rate,
                spikes,
                ramps,
            } => {
                for s in spikes {
                    if t >= nanos(s.start.0) && t < nanos(s.end.0) {
                        return s.rate;
                    }
                }
                for r in ramps {
                    let (a, b) = (nanos(r.start.0), nanos(r.end.0));
                    if t >= a && t < b {
                        let x = (t - a) as f64 / (b - a) as f64;
                        return r.from + (r.to - r.from) * x;
                    }
                }
                *rate
            }
            Workload::Closed { .. } => 0.0,
        }
    }

    fn max_rate(&self) -> f64 {
        match self {
            Workload::Open {
                rate,
                spikes,
                ramps,
            } => spikes
                .iter()
                .map(|s| s.rate)
                .chain(ramps.iter().flat_map(|r| [r.from, r.to]))
                .fold(*rate, f64::max),
            Workload::Closed { .. } => 0.0,
        }
    }
}

/// A window where the open-loop rate is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spike {
    /// Start.
    pub start: Dur,
    /// End (excluded).
    pub end: Dur,
    /// Calls per second during the window.
    pub rate: f64,
}

/// A window where the open-loop rate moves linearly from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Start.
    pub start: Dur,
    /// End (excluded).
    pub end: Dur,
    /// Rate at the start.
    pub from: f64,
    /// Rate at the end.
    pub to: f64,
}

/// One server (a layer of the stack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerSpec {
    /// Name, for tables.
    pub name: String,
    /// One-way network latency between the caller and this layer.
    pub network: Dist,
    /// Requests served at once. Default: unlimited.
    pub workers: Option<u32>,
    /// Places in the waiting queue. Default: unbounded.
    pub queue: Option<u32>,
    /// Service time of one request.
    pub service: Dist,
    /// Latency that grows with concurrency.
    pub slowdown: Option<Slowdown>,
    /// Probability that a request fails (i.i.d.), in `[0, 1]`.
    pub failure_rate: f64,
    /// Windows where the server is down.
    pub outages: Vec<Outage>,
    /// How this layer calls the layer below (if there is one). Default:
    /// one attempt, no retry.
    pub policy: Option<PolicySpec>,
}

impl Default for LayerSpec {
    fn default() -> Self {
        LayerSpec {
            name: String::new(),
            network: Dist::default(),
            workers: None,
            queue: None,
            service: Dist::constant(Duration::from_millis(1)),
            slowdown: None,
            failure_rate: 0.0,
            outages: Vec::new(),
            policy: None,
        }
    }
}

/// Service time multiplied by `1 + factor * max(0, busy - knee) / knee`,
/// where `busy` counts requests in service: latency that grows steeply past
/// a concurrency knee (lock contention, cache thrash, GC).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slowdown {
    /// Concurrency up to which there is no slowdown. At least 1.
    pub knee: u32,
    /// Growth past the knee.
    pub factor: f64,
}

/// A window `[start, end)` where the server is down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Start.
    pub start: Dur,
    /// End (excluded).
    pub end: Dur,
    /// What down means. Default `stall`.
    #[serde(default)]
    pub mode: OutageMode,
}

/// What a server does during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Workers freeze: requests queue up and time out (a GC pause, a lock,
    /// a dependency that hangs).
    #[default]
    Stall,
    /// Every request fails at once (connection refused).
    Fail,
}

/// A spec that cannot run.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// Dotted path to the bad field, e.g. `layers[1].failure_rate`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

fn spec_err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

fn policy_err(prefix: &str, e: ConfigError) -> SpecError {
    spec_err(format!("{prefix}.{}", e.field()), e.to_string())
}

impl SystemSpec {
    /// Checks everything a run needs, naming the first bad field. Policies
    /// are checked by building them, so the library's own validation speaks.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.duration.0.is_zero() {
            return Err(spec_err("duration", "must be greater than zero"));
        }
        if self.bin.0.is_zero() {
            return Err(spec_err("bin", "must be greater than zero"));
        }
        if self.clients == 0 {
            return Err(spec_err("clients", "must be at least 1"));
        }
        if self.clients > 1_000_000 {
            return Err(spec_err("clients", "must be at most 1000000"));
        }
        if self.layers.is_empty() {
            return Err(spec_err("layers", "needs at least one layer (a server)"));
        }
        if let Workload::Open {
            rate,
            spikes,
            ramps,
        } = &self.workload
        {
            let bad = |r: f64| !(r.is_finite() && (0.0..=1e7).contains(&r));
            if bad(*rate) {
                return Err(spec_err(
                    "workload.rate",
                    format!("must be a number of calls per second in [0, 10000000] (got {rate})"),
                ));
            }
            for (i, s) in spikes.iter().enumerate() {
                if bad(s.rate) {
                    return Err(spec_err(
                        format!("workload.spikes[{i}].rate"),
                        "must be in [0, 10000000]",
                    ));
                }
                if s.end <= s.start {
                    return Err(spec_err(
                        format!("workload.spikes[{i}].end"),
                        "must be after start",
                    ));
                }
            }
            for (i, r) in ramps.iter().enumerate() {
                if bad(r.from) || bad(r.to) {
                    return Err(spec_err(
                        format!("workload.ramps[{i}]"),
                        "rates must be in [0, 10000000]",
                    ));
                }
                if r.end <= r.start {
                    return Err(spec_err(
                        format!("workload.ramps[{i}].end"),
                        "must be after start",
                    ));
                }
            }
        }
        if let Workload::Closed { think } = &self.workload {
            think
                .validate()
                .map_err(|m| spec_err("workload.think", m))?;
        }
        let time = VirtualTime::new();
        self.policy
            .build(&time, 0)
            .map_err(|e| policy_err("policy", e))?;
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("layers[{i}]");
            if !(0.0..=1.0).contains(&l.failure_rate) {
                return Err(spec_err(
                    format!("{p}.failure_rate"),
                    format!("must be in [0, 1] (got {})", l.failure_rate),
                ));
            }
            if l.workers == Some(0) {
                return Err(spec_err(format!("{p}.workers"), "must be at least 1"));
            }
            if let Some(s) = l.slowdown {
                if s.knee == 0 || !(s.factor.is_finite() && s.factor >= 0.0) {
                    return Err(spec_err(
                        format!("{p}.slowdown"),
                        "knee must be at least 1 and factor a non-negative number",
                    ));
                }
            }
            l.service
                .validate()
                .map_err(|m| spec_err(format!("{p}.service"), m))?;
            l.network
                .validate()
                .map_err(|m| spec_err(format!("{p}.network"), m))?;
            for (j, o) in l.outages.iter().enumerate() {
                if o.end <= o.start {
                    return Err(spec_err(
                        format!("{p}.outages[{j}].end"),
                        "must be after start",
                    ));
                }
            }
            if let Some(pol) = &l.policy {
                if i + 1 == self.layers.len() {
                    return Err(spec_err(
                        format!("{p}.policy"),
                        "the bottom layer calls nothing: remove its policy or add a layer below",
                    ));
                }
                pol.build(&time, 0)
                    .map_err(|e| policy_err(&format!("{p}.policy"), e))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// The next open-loop arrival.
    Arrival,
    /// A closed-loop client starts its next call.
    Wake(u32),
    /// A call's backoff is over: start its next attempt.
    Retry(u32),
    /// A request reaches its server.
    Arrive(u32),
    /// A request's service is over.
    Done(u32),
    /// An attempt's answer reaches its caller: (call, attempt token, ok).
    Reply(u32, u32, bool),
    /// An attempt's timeout fires: (call, attempt token).
    Timeout(u32, u32),
}

#[derive(Debug, Clone, Copy)]
enum Caller {
    Client(u32),
    /// The request (at the layer above) that made this downstream call.
    Request(u32),
}

struct Call {
    caller: Caller,
    layer: u16,
    policy: u32,
    state: RetryState,
    attempt: Option<Attempt>,
    /// Unique per attempt in the run, so an answer to an old attempt (or to
    /// a call whose slot was reused) is recognised as stale.
    token: u32,
    started: u64,
    sent: u64,
}

#[derive(Clone, Copy)]
struct Request {
    call: u32,
    token: u32,
    layer: u16,
}

struct Server {
    busy: u32,
    queue: VecDeque<u32>,
}

/// Slots reused through a free list, so a long run does not grow.
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
    fn insert(&mut self, v: T) -> u32 {
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(v);
            i
        } else {
            self.items.push(Some(v));
            (self.items.len() - 1) as u32
        }
    }
    fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize).and_then(Option::as_ref)
    }
    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize).and_then(Option::as_mut)
    }
    fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.items.get_mut(i as usize)?.take();
        if v.is_some() {
            self.free.push(i);
        }
        v
    }
    fn live(&self) -> usize {
        self.items.len() - self.free.len()
    }
}

struct Sim<'a> {
    spec: &'a SystemSpec,
    time: VirtualTime,
    q: EventQueue<Ev>,
    rng: SimRng,
    /// Client policies first (one, or one per client), then one per layer
    /// that calls another.
    policies: Vec<RetryPolicy>,
    layer_policy: Vec<Option<u32>>,
    calls: Slab<Call>,
    reqs: Slab<Request>,
    servers: Vec<Server>,
    /// No new calls from here.
    arrivals_end: u64,
    /// The run stops here.
    end: u64,
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
                .build(&time, pseed(i as u64))
                .map_err(|e| policy_err("policy", e))?,
        );
    }
    let mut layer_policy = Vec::new();
    for (i, l) in spec.layers.iter().enumerate() {
        if i + 1 < spec.layers.len() {
            let p = l.policy.clone().unwrap_or_else(|| PolicySpec::attempts(1));
            policies.push(
                p.build(&time, pseed(1_000_000 + i as u64))
                    .map_err(|e| policy_err(&format!("layers[{i}].policy"), e))?,
            );
            layer_policy.push(Some((policies.len() - 1) as u32));
        } else {
            layer_policy.push(None);
        }
    }
    let arrivals_end = nanos(spec.duration.0);
    let end = arrivals_end.saturating_add(nanos(spec.drain.0));
    let bins = (arrivals_end.div_ceil(nanos(spec.bin.0))) as usize;
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
        stats: RunStats::new(spec.layers.len(), bins, nanos(spec.bin.0)),
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
                Ev::Reply(call, n, ok) => self.reply(t, call, n, ok),
                Ev::Timeout(call, n) => self.timeout(t, call, n),
            }
        }
        self.stats.events = self.q.processed();
        self.stats.unfinished = self
            .calls
            .items
            .iter()
            .flatten()
            .filter(|c| matches!(c.caller, Caller::Client(_)))
            .count() as u64;
        let _ = self.calls.live();
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
        let call = self.new_call(t, Caller::Client(client), 0, policy);
        self.attempt(t, call);
    }

    fn new_call(&mut self, t: u64, caller: Caller, layer: u16, policy: u32) -> u32 {
        let state = RetryState::new(&self.policies[policy as usize]);
        self.calls.insert(Call {
            caller,
            layer,
            policy,
            state,
            attempt: None,
            token: 0,
            started: t,
            sent: t,
        })
    }

    fn attempt(&mut self, t: u64, id: u32) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let policy = &self.policies[call.policy as usize];
        match call.state.begin_attempt(policy) {
            Ok(a) => {
                let timeout = a.timeout();
                self.tokens = self.tokens.wrapping_add(1);
                call.token = self.tokens;
                call.attempt = Some(a);
                call.sent = t;
                let (layer, number) = (call.layer, call.token);
                self.stats.record_attempt(t, layer as usize);
                let r = self.reqs.insert(Request {
                    call: id,
                    token: number,
                    layer,
                });
                let net = self.spec.layers[layer as usize]
                    .network
                    .sample_nanos(&mut self.rng);
                self.q.schedule(t + net, Ev::Arrive(r));
                if let Some(d) = timeout {
                    self.q.schedule(t + nanos(d), Ev::Timeout(id, number));
                }
            }
            Err(stop) => self.finish(t, id, stop),
        }
    }

    fn in_outage(&self, layer: usize, t: u64) -> Option<(OutageMode, u64)> {
        self.spec.layers[layer]
            .outages
            .iter()
            .find(|o| t >= nanos(o.start.0) && t < nanos(o.end.0))
            .map(|o| (o.mode, nanos(o.end.0)))
    }

    fn arrive(&mut self, t: u64, r: u32) {
        let req = *self.reqs.get(r).expect("live request");
        let l = req.layer as usize;
        let spec = &self.spec.layers[l];
        if let Some((OutageMode::Fail, _)) = self.in_outage(l, t) {
            return self.respond(t, r, false);
        }
        let server = &mut self.servers[l];
        if spec.workers.is_none_or(|w| server.busy < w) {
            self.serve(t, r);
        } else if spec.queue.is_none_or(|q| (server.queue.len() as u32) < q) {
            server.queue.push_back(r);
        } else {
            self.stats.rejected[l] += 1;
            self.respond(t, r, false);
        }
    }

    fn serve(&mut self, t: u64, r: u32) {
        let l = self.reqs.get(r).expect("live request").layer as usize;
        let spec = &self.spec.layers[l];
        self.servers[l].busy += 1;
        let mut d = spec.service.sample_nanos(&mut self.rng);
        if let Some(s) = spec.slowdown {
            let busy = self.servers[l].busy;
            if busy > s.knee {
                d = (d as f64 * (1.0 + s.factor * (busy - s.knee) as f64 / s.knee as f64)) as u64;
            }
        }
        let start = match self.in_outage(l, t) {
            Some((OutageMode::Stall, until)) => until,
            _ => t,
        };
        self.q.schedule(start + d, Ev::Done(r));
    }

    fn done(&mut self, t: u64, r: u32) {
        let req = *self.reqs.get(r).expect("live request");
        let l = req.layer as usize;
        self.servers[l].busy -= 1;
        if let Some(next) = self.servers[l].queue.pop_front() {
            self.serve(t, next);
        }
        self.stats.served[l] += 1;
        let spec = &self.spec.layers[l];
        if spec.failure_rate > 0.0 && self.rng.f64() < spec.failure_rate {
            return self.respond(t, r, false);
        }
        match self.layer_policy[l] {
            Some(p) => {
                let call = self.new_call(t, Caller::Request(r), req.layer + 1, p);
                self.attempt(t, call);
            }
            None => self.respond(t, r, true),
        }
    }

    /// Sends request `r`'s answer back to its caller.
    fn respond(&mut self, t: u64, r: u32, ok: bool) {
        let req = self.reqs.remove(r).expect("live request");
        let net = self.spec.layers[req.layer as usize]
            .network
            .sample_nanos(&mut self.rng);
        self.q.schedule(t + net, Ev::Reply(req.call, req.token, ok));
    }

    fn reply(&mut self, t: u64, id: u32, number: u32, ok: bool) {
        let Some(call) = self.calls.get_mut(id) else {
            self.stats.wasted += 1;
            return;
        };
        if call.token != number || call.attempt.is_none() {
            // The caller timed out on this attempt and moved on.
            self.stats.wasted += 1;
            return;
        }
        let attempt = call.attempt.take().expect("checked");
        let policy = &self.policies[call.policy as usize];
        let next = if ok {
            call.state
                .on_outcome::<(), ()>(policy, attempt, Outcome::Ok(&()), Decision::DoNotRetry)
        } else {
            call.state
                .on_outcome::<(), ()>(policy, attempt, Outcome::Err(&()), Decision::Retry)
        };
        self.next(t, id, next);
    }

    fn timeout(&mut self, t: u64, id: u32, number: u32) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.token != number || call.attempt.is_none() {
            return;
        }
        let attempt = call.attempt.take().expect("checked");
        let after = Duration::from_nanos(t - call.sent);
        let policy = &self.policies[call.policy as usize];
        let next = call.state.on_outcome::<(), ()>(
            policy,
            attempt,
            Outcome::Timeout(after),
            Decision::Retry,
        );
        self.stats.timeouts += 1;
        self.next(t, id, next);
    }

    fn next(&mut self, t: u64, id: u32, next: Next) {
        match next {
            Next::Retry { delay } if delay.is_zero() => self.attempt(t, id),
            Next::Retry { delay } => self.q.schedule(t + nanos(delay), Ev::Retry(id)),
            Next::Stop(stop) => self.finish(t, id, stop),
        }
    }

    fn finish(&mut self, t: u64, id: u32, stop: Stop) {
        let call = self.calls.remove(id).expect("live call");
        match call.caller {
            Caller::Client(c) => {
                self.stats.record_end(t, t - call.started, stop);
                if let Workload::Closed { think } = &self.spec.workload {
                    let d = think.sample_nanos(&mut self.rng);
                    self.q.schedule(t + d, Ev::Wake(c));
                }
            }
            Caller::Request(r) => self.respond(t, r, stop.is_success()),
        }
    }
}
