//! A caller's policy: what it is built from, who shares one policy
//! object, and the real object each run builds on its virtual clock.
//!
//! A policy is written in **the core's schema**,
//! [`rebound::config::DependencyConfig`]: the table a service's policy
//! file holds under `[dependencies.NAME]`, so the policy simulated is the
//! policy the service loads. Or it is built in code with the core's
//! builders ([`PolicySource::code`]), for what a file cannot say (one
//! retry budget shared by a retry and a hedge). Either way each run
//! builds the real [`RetryPolicy`], [`HedgePolicy`] or [`Pipeline`] on its
//! [`VirtualTime`] and a seeded [`RandomSource`]
//! ([`BuildEnv`]); nothing of a policy is re-implemented here.
//!
//! What a dependency's table is simulated as:
//!
//! | set | driven as |
//! |---|---|
//! | nothing (or just a `breaker`, a `throttle`) | one attempt, no timeout, through the breaker and throttle |
//! | `retry` (with its `budget`, and the dependency's `breaker` and `throttle` guarding every attempt) | [`RetryState`](rebound::RetryState) |
//! | `hedge` | [`HedgeState`](rebound::hedge::HedgeState) |
//! | `pipeline` | [`PipelineRun`](rebound::pipeline::PipelineRun) |
//!
//! A `bulkhead` or `timeout` beside them, and a `breaker` or `throttle`
//! beside a `hedge` or a `pipeline`, is combined with the call by the
//! service's own code, which the simulator cannot see: it is refused,
//! naming the field and where to put it instead (in `retry`, or as a
//! pipeline stage); so is `retry` with `hedge` outside a pipeline, which
//! leaves their order open.
//!
//! ```
//! use rebound::config::DependencyConfig;
//! use rebound_sim::engine::VirtualTime;
//! use rebound_sim::policy::{PolicyObject, PolicySource};
//!
//! let table: DependencyConfig = toml::from_str(r#"
//!     retry = { max_attempts = 4, budget = { kind = "ratio", ratio = 0.1 } }
//! "#)?;
//! let source = PolicySource::config("inventory", table);
//! let time = VirtualTime::new();
//! let PolicyObject::Retry(policy) = source.build(&time, 7)? else { panic!() };
//! assert_eq!(policy.max_attempts(), 4);
//! assert!(policy.budget().is_some());
//! // Printed as a policy file writes it (keys in alphabetical order).
//! assert_eq!(source.to_string(), r#"retry = { budget = { kind = "ratio", ratio = 0.1 }, max_attempts = 4 }"#);
//!
//! // What the simulator cannot know is refused, naming the field.
//! let both: DependencyConfig = toml::from_str(r#"
//!     retry = { max_attempts = 2 }
//!     hedge = { delay = "20ms" }
//! "#)?;
//! let err = PolicySource::config("inventory", both).build(&time, 7).unwrap_err();
//! assert_eq!(err.path(), "hedge");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;

use rebound::config::{BuildEnv, DependencyConfig, PipelineConfig, StageConfig};
use rebound::hedge::HedgePolicy;
use rebound::pipeline::Pipeline;
use rebound::{ConfigError, RandomSource, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::engine::VirtualTime;

const COMPONENT: &str = "simulated policy";

/// How a caller calls: its policy, and who shares the policy object.
#[derive(Debug, Clone, Default)]
pub struct CallerPolicy {
    /// What the policy is built from.
    pub source: PolicySource,
    /// Who shares one policy object (and so one budget, breaker, latency
    /// tracker). Default [`Scope::Client`].
    pub scope: Scope,
}

impl CallerPolicy {
    /// `source`, one policy object per client.
    pub fn new(source: PolicySource) -> Self {
        CallerPolicy {
            source,
            scope: Scope::Client,
        }
    }

    /// `source`, one policy object for all clients.
    pub fn shared(source: PolicySource) -> Self {
        CallerPolicy {
            source,
            scope: Scope::Shared,
        }
    }
}

/// Who shares a policy object: its budget (and breaker, throttle, latency
/// tracker) is shared by everyone using it. A simulator setting: a service
/// shares what its code shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each client has its own policy objects (a fleet of processes).
    #[default]
    Client,
    /// All clients share one (one process, or state shared across the
    /// fleet).
    Shared,
}

/// Builds a caller's policy in code, from the run's clock and randomness.
pub type PolicyBuilder = dyn Fn(&BuildEnv) -> Result<PolicyObject, ConfigError> + Send + Sync;

/// What a caller's policy is built from.
#[derive(Clone)]
pub enum PolicySource {
    /// A dependency's policies in the core's schema, as a service's policy
    /// file writes them under `[dependencies.NAME]`.
    Config {
        /// The dependency's name (the policies' `dependency` label).
        dependency: String,
        /// Its policies.
        config: Box<DependencyConfig>,
    },
    /// Built in code with the core's builders.
    Code {
        /// A short description, for tables.
        name: String,
        /// The builder: give every policy `env`'s clock and randomness.
        build: Arc<PolicyBuilder>,
    },
}

impl Default for PolicySource {
    /// No policy: one attempt, no timeout.
    fn default() -> Self {
        PolicySource::config("simulated", DependencyConfig::default())
    }
}

impl fmt::Debug for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Config { dependency, .. } => {
                write!(f, "PolicySource::Config({dependency}: {self})")
            }
            PolicySource::Code { name, .. } => write!(f, "PolicySource::Code({name})"),
        }
    }
}

/// The policy in the syntax of a service's policy file (`retry = { … }`,
/// keys in alphabetical order), or a code-built policy's name.
impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Config { config, .. } => match serde_json::to_value(config) {
                Ok(serde_json::Value::Object(o)) if o.is_empty() => {
                    f.write_str("no policy (one attempt)")
                }
                Ok(serde_json::Value::Object(o)) => {
                    let parts: Vec<String> = o
                        .iter()
                        .map(|(k, v)| format!("{k} = {}", inline(v)))
                        .collect();
                    f.write_str(&parts.join(", "))
                }
                _ => f.write_str("(unprintable policy)"),
            },
            PolicySource::Code { name, .. } => f.write_str(name),
        }
    }
}

/// A value as TOML inline syntax.
fn inline(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "{}".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl PolicySource {
    /// A dependency's policies in the core's schema.
    pub fn config(dependency: impl Into<String>, config: DependencyConfig) -> Self {
        PolicySource::Config {
            dependency: dependency.into(),
            config: Box::new(config),
        }
    }

    /// A policy built in code: `build` gets the run's clock and a seeded
    /// source of randomness, and must give them to every policy it builds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::hedge::HedgePolicy;
    /// use rebound_sim::policy::{PolicyObject, PolicySource};
    ///
    /// let hedge = PolicySource::code("hedge after 20 ms", |env| {
    ///     let policy = HedgePolicy::builder()
    ///         .fixed_delay(Duration::from_millis(20))
    ///         .clock(env.clock.clone())
    ///         .build()?;
    ///     Ok(PolicyObject::Hedge(policy))
    /// });
    /// assert_eq!(hedge.to_string(), "hedge after 20 ms");
    /// ```
    pub fn code(
        name: impl Into<String>,
        build: impl Fn(&BuildEnv) -> Result<PolicyObject, ConfigError> + Send + Sync + 'static,
    ) -> Self {
        PolicySource::Code {
            name: name.into(),
            build: Arc::new(build),
        }
    }

    /// The real policy object on `time`, with a source of randomness seeded
    /// with `seed`. Fails with the core's [`ConfigError`], whose
    /// [`path`](ConfigError::path) is where the field is written in the
    /// dependency's table (`retry.backoff.base`).
    pub fn build(&self, time: &VirtualTime, seed: u64) -> Result<PolicyObject, ConfigError> {
        let env = BuildEnv {
            clock: time.clock(),
            random: RandomSource::seeded(seed),
        };
        match self {
            PolicySource::Config { dependency, config } => from_config(dependency, config, &env),
            PolicySource::Code { build, .. } => build(&env),
        }
    }
}

/// The real policy object a caller's calls are driven through.
#[derive(Debug, Clone)]
pub enum PolicyObject {
    /// Attempts one after another ([`rebound::RetryState`]).
    Retry(RetryPolicy),
    /// Hedged copies ([`rebound::hedge::HedgeState`]).
    Hedge(HedgePolicy),
    /// A pipeline of stages ([`rebound::pipeline::PipelineRun`]). A
    /// bulkhead in it must have no queue (`max_queue` 0): waiting for a
    /// slot is the async driver's work, which the simulator does not
    /// repeat; a full bulkhead refuses at once.
    Pipeline(Pipeline),
}

/// A dependency's table as the policy object the simulator drives; see the
/// [module docs](self) for which combinations it takes.
fn from_config(
    dependency: &str,
    c: &DependencyConfig,
    env: &BuildEnv,
) -> Result<PolicyObject, ConfigError> {
    // A dependency's breaker and throttle guard its retry policy (or its
    // one attempt when it has none); beside a hedge or a pipeline they are
    // combined by the service's own code.
    let beside_other = c.hedge.is_some() || c.pipeline.is_some();
    let standalone = [
        (
            c.breaker.is_some() && beside_other,
            "breaker",
            "a pipeline stage",
        ),
        (c.bulkhead.is_some(), "bulkhead", "a pipeline stage"),
        (
            c.throttle.is_some() && beside_other,
            "throttle",
            "a pipeline stage",
        ),
        (c.timeout.is_some(), "timeout", "`retry.attempt_timeout`"),
    ];
    if let Some((_, field, instead)) = standalone.into_iter().find(|(set, ..)| *set) {
        return Err(ConfigError::new(
            COMPONENT,
            field,
            format!(
                "is a standalone policy, combined with the call by the service's own code, which \
                 the simulator cannot see: move it into {instead} or a `pipeline` stage"
            ),
        ));
    }
    match (&c.retry, &c.hedge, &c.pipeline) {
        (None, None, None) => {
            // One attempt, through the dependency's breaker and throttle.
            let once = DependencyConfig {
                retry: Some(rebound::config::RetryConfig {
                    max_attempts: Some(1),
                    ..Default::default()
                }),
                ..c.clone()
            };
            once.retry_builder_in(dependency, env)?
                .expect("a retry is set")
                .build()
                .map(PolicyObject::Retry)
        }
        (Some(_), None, None) => c
            .retry_builder_in(dependency, env)?
            .expect("a retry is set")
            .build()
            .map(PolicyObject::Retry)
            .map_err(|e| e.within("retry")),
        (None, Some(h), None) => h
            .builder_in(dependency, env)
            .and_then(|b| b.build())
            .map(PolicyObject::Hedge)
            .map_err(|e| e.within("hedge")),
        (None, None, Some(p)) => {
            if let PipelineConfig::Stages(stages) = p {
                for (i, s) in stages.iter().enumerate() {
                    if let StageConfig::Bulkhead(b) = s {
                        if b.max_queue.is_some_and(|q| q > 0) {
                            return Err(ConfigError::new(
                                COMPONENT,
                                "max_queue",
                                "waiting for a bulkhead slot is not simulated: set 0 (a full \
                                 bulkhead refuses at once)",
                            )
                            .within(format_args!("pipeline.stages[{i}]")));
                        }
                    }
                }
            }
            p.build_in(dependency, env).map(PolicyObject::Pipeline)
        }
        (_, _, Some(_)) => Err(ConfigError::new(
            COMPONENT,
            "pipeline",
            "is set with `retry` or `hedge`: the pipeline's stages say how they combine, so put \
             them there",
        )),
        (Some(_), Some(_), None) => Err(ConfigError::new(
            COMPONENT,
            "hedge",
            "is set with `retry` outside a pipeline, which leaves their order open: write them as \
             `pipeline` stages (a retry, then a hedge)",
        )),
    }
}
