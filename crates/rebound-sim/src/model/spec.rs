//! A system as data: workload, servers and callers' policies, and the
//! checks a spec must pass before it runs.

use std::time::Duration;

use rebound::ConfigError;
use serde::{Deserialize, Serialize};

use crate::dist::{nanos, Dist};
use crate::policy::{CallerPolicy, PolicySource};

/// A whole system to simulate. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct SystemSpec {
    /// How long to simulate. New calls arrive until then; the run stops
    /// then, and calls still open are counted as unfinished.
    pub duration: Duration,
    /// Width of the time bins of the series (goodput over time). Default 1 s.
    pub bin: Duration,
    /// Number of clients. Open-loop arrivals go to a client chosen at
    /// random; with [`Scope::Client`](crate::policy::Scope::Client) each
    /// has its own policy objects. Default 1.
    pub clients: u32,
    /// Where calls come from.
    pub workload: Workload,
    /// How clients call layer 0, and who shares a policy object. Default:
    /// one attempt, no timeout, one policy object per client.
    pub policy: CallerPolicy,
    /// The servers, front first.
    pub layers: Vec<LayerSpec>,
    /// When the trigger (outage, spike) ends, for the time to recover.
    pub trigger_end: Option<Duration>,
    /// Extra time after `duration` with no new calls, so calls in flight
    /// can finish (exact counts). Default 0.
    pub drain: Duration,
}

impl Default for SystemSpec {
    fn default() -> Self {
        SystemSpec {
            duration: Duration::from_secs(60),
            bin: Duration::from_secs(1),
            clients: 1,
            workload: Workload::open(100.0),
            policy: CallerPolicy::default(),
            layers: vec![LayerSpec::default()],
            trigger_end: None,
            drain: Duration::ZERO,
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
            spikes.push(Spike { start, end, rate });
        }
        self
    }

    #[inline]
    pub(crate) fn rate_at(&self, t: u64) -> f64 {
        match self {
            Workload::Open {
                rate,
                spikes,
                ramps,
            } => {
                for s in spikes {
                    if t >= nanos(s.start) && t < nanos(s.end) {
                        return s.rate;
                    }
                }
                for r in ramps {
                    let (a, b) = (nanos(r.start), nanos(r.end));
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

    #[inline]
    pub(crate) fn max_rate(&self) -> f64 {
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
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// End (excluded).
    #[serde(with = "humantime_serde")]
    pub end: Duration,
    /// Calls per second during the window.
    pub rate: f64,
}

/// A window where the open-loop rate moves linearly from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Start.
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// End (excluded).
    #[serde(with = "humantime_serde")]
    pub end: Duration,
    /// Rate at the start.
    pub from: f64,
    /// Rate at the end.
    pub to: f64,
}

/// One server (a layer of the stack), and how it calls the layer below.
///
/// `P` is how the downstream policy is written: a [`PolicySource`] in a
/// spec that runs; a scenario file reads layers with its own form (an
/// embedded policy table or a reference to a service's policy file) and
/// resolves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerSpec<P = PolicySource> {
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
    /// Rare slow requests: the latency tail.
    pub hiccups: Option<Hiccups>,
    /// Probability that a request fails (i.i.d.), in `[0, 1]`.
    pub failure_rate: f64,
    /// Windows where the server is down or degraded.
    pub outages: Vec<Outage>,
    /// How this layer calls the layer below (if there is one). Default:
    /// one attempt, no timeout.
    pub policy: Option<P>,
}

impl<P> Default for LayerSpec<P> {
    fn default() -> Self {
        LayerSpec {
            name: String::new(),
            network: Dist::default(),
            workers: None,
            queue: None,
            service: Dist::constant(Duration::from_millis(1)),
            slowdown: None,
            hiccups: None,
            failure_rate: 0.0,
            outages: Vec::new(),
            policy: None,
        }
    }
}

impl<P> LayerSpec<P> {
    /// The same layer with its policy turned into another form
    /// (`f` fails: the error is returned as is).
    pub fn try_map_policy<Q, E>(
        self,
        f: impl FnOnce(P) -> Result<Q, E>,
    ) -> Result<LayerSpec<Q>, E> {
        Ok(LayerSpec {
            name: self.name,
            network: self.network,
            workers: self.workers,
            queue: self.queue,
            service: self.service,
            slowdown: self.slowdown,
            hiccups: self.hiccups,
            failure_rate: self.failure_rate,
            outages: self.outages,
            policy: self.policy.map(f).transpose()?,
        })
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

/// Rare slow requests, independent of load: with `probability` a request
/// takes `extra` longer (a garbage-collection pause, queueing behind a
/// busy replica's background work, a cold cache). The latency tail that
/// hedged requests cut (Dean and Barroso, "The Tail at Scale", 2013).
///
/// In a scenario file: `hiccups = { probability = 0.01, extra = { uniform
/// = { low = "200ms", high = "1s" } } }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hiccups {
    /// Share of requests that are slow, in `[0, 1]`.
    pub probability: f64,
    /// How much longer a slow request takes.
    pub extra: Dist,
}

/// A window `[start, end)` where the server is down or degraded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Start.
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// End (excluded).
    #[serde(with = "humantime_serde")]
    pub end: Duration,
    /// What down means. Default `stall`.
    #[serde(default)]
    pub mode: OutageMode,
}

/// What a server does during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Workers freeze: requests queue up and time out (a GC pause, a lock,
    /// a dependency that hangs).
    #[default]
    Stall,
    /// Every request fails at once (connection refused).
    Fail,
    /// Every request is slow: service times are multiplied by this factor
    /// (a degraded dependency; written `mode = { slow = 10.0 }`).
    Slow(f64),
}

/// A spec that cannot run.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// Dotted path to the bad field, e.g. `layers[1].failure_rate` or
    /// `policy.retry.max_attempts`.
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

pub(crate) fn spec_err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// A policy error at `prefix` (`policy`, `layers[0].policy`), with
/// the path of the field under it.
pub(crate) fn policy_err(prefix: &str, e: &ConfigError) -> SpecError {
    spec_err(format!("{prefix}.{}", e.path()), e.to_string())
}

impl SystemSpec {
    /// Checks everything a run needs, naming the first bad field. Policies
    /// are checked by building them, so the library's own validation speaks.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.duration.is_zero() {
            return Err(spec_err("duration", "must be greater than zero"));
        }
        if self.bin.is_zero() {
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
        self.validate_workload()?;
        let time = crate::engine::VirtualTime::new();
        self.policy
            .source
            .build(&time, 0)
            .map_err(|e| policy_err("policy", &e))?;
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
            if let Some(h) = l.hiccups {
                if !(0.0..=1.0).contains(&h.probability) {
                    return Err(spec_err(
                        format!("{p}.hiccups.probability"),
                        format!("must be in [0, 1] (got {})", h.probability),
                    ));
                }
                h.extra
                    .validate()
                    .map_err(|m| spec_err(format!("{p}.hiccups.extra"), m))?;
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
                if let OutageMode::Slow(f) = o.mode {
                    if !(f.is_finite() && f > 0.0) {
                        return Err(spec_err(
                            format!("{p}.outages[{j}].mode.slow"),
                            format!("must be a factor greater than 0 (got {f})"),
                        ));
                    }
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
                    .map_err(|e| policy_err(&format!("{p}.policy"), &e))?;
            }
        }
        Ok(())
    }

    fn validate_workload(&self) -> Result<(), SpecError> {
        match &self.workload {
            Workload::Open {
                rate,
                spikes,
                ramps,
            } => {
                let bad = |r: f64| !(r.is_finite() && (0.0..=1e7).contains(&r));
                if bad(*rate) {
                    return Err(spec_err(
                        "workload.rate",
                        format!(
                            "must be a number of calls per second in [0, 10000000] (got {rate})"
                        ),
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
                Ok(())
            }
            Workload::Closed { think } => {
                think.validate().map_err(|m| spec_err("workload.think", m))
            }
        }
    }
}
