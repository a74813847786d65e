//! A dependency's call path: the policies a call passes through, outermost
//! first, built from the file into the real policy objects.

use std::time::Duration;

use rebound::config::DependencyConfig;
use rebound::hedge::HedgePolicy;
use rebound::pipeline::Stage;
use rebound::{ConfigError, RetryPolicy};

/// One step of a call path, holding the real object the file builds.
pub enum Step {
    /// A timeout around everything inside.
    Timeout(Duration),
    /// A retry layer.
    Retry(RetryPolicy),
    /// Hedging; `idempotent` is the file's promise that copies may run at
    /// the same time.
    Hedge(HedgePolicy, bool),
    /// A circuit breaker.
    Breaker,
    /// A bulkhead.
    Bulkhead,
    /// An adaptive throttle.
    Throttle,
}

/// A step and where the file writes it (`retry`, `pipeline.stages[1]`).
pub struct Placed {
    /// The step.
    pub step: Step,
    /// Its place in the file, under the dependency.
    pub at: String,
}

/// The call path of a dependency, outermost first, and notes on how it was
/// put together from tables the service's code combines itself.
pub struct CallPath {
    /// Steps, outermost first.
    pub steps: Vec<Placed>,
    /// How the tables were combined, where the file leaves it open.
    pub assumptions: Vec<String>,
}

impl CallPath {
    /// Builds every policy of `dep` through the core's config builders.
    pub fn build(name: &str, dep: &DependencyConfig) -> Result<Self, ConfigError> {
        let mut steps = Vec::new();
        let mut assumptions = Vec::new();
        let place = |step, at: &str| Placed {
            step,
            at: at.to_string(),
        };
        if let Some(t) = dep.timeout {
            steps.push(place(Step::Timeout(t), "timeout"));
            assumptions
                .push("the standalone `timeout` is checked as wrapped around every call".into());
        }
        // With a `retry` table, the dependency's breaker and throttle guard
        // every attempt of the retry policy (`retry_policy` builds them in);
        // without one, every call passes them once.
        let guards_retry = dep.retry.is_some();
        if dep.breaker.is_some() {
            dep.circuit_breaker(name).map_err(|e| e.within("breaker"))?;
            if !guards_retry {
                steps.push(place(Step::Breaker, "breaker"));
            }
        }
        if dep.bulkhead.is_some() {
            dep.bulkhead(name).map_err(|e| e.within("bulkhead"))?;
            steps.push(place(Step::Bulkhead, "bulkhead"));
        }
        if dep.throttle.is_some() {
            dep.throttle(name).map_err(|e| e.within("throttle"))?;
            if !guards_retry {
                steps.push(place(Step::Throttle, "throttle"));
            }
        }
        if let Some(retry) = dep.retry_policy(name).map_err(|e| e.within("retry"))? {
            steps.push(place(Step::Retry(retry), "retry"));
        }
        if let Some(hedge) = dep.hedge_policy(name).map_err(|e| e.within("hedge"))? {
            let idempotent = dep.hedge.as_ref().is_some_and(|h| h.idempotent);
            if dep.retry.is_some() {
                assumptions.push(
                    "`hedge` is checked as running inside `retry` (each attempt hedged)".into(),
                );
            }
            steps.push(place(Step::Hedge(hedge, idempotent), "hedge"));
        }
        if let Some(pipeline) = dep.pipeline(name)? {
            if dep.retry.is_some() || dep.hedge.is_some() {
                assumptions.push(
                    "`pipeline` is checked as called inside `retry`/`hedge`: the declared layers stack".into(),
                );
            }
            let standard = matches!(
                dep.pipeline,
                Some(rebound::config::PipelineConfig::Standard(_))
            );
            let idempotent = pipeline.is_idempotent();
            for (i, stage) in pipeline.stages().iter().enumerate() {
                let at = if standard {
                    format!("pipeline.standard ({})", stage.name())
                } else {
                    format!("pipeline.stages[{i}]")
                };
                let step = match stage {
                    Stage::Timeout(t) => Step::Timeout(*t),
                    Stage::Retry(r) => Step::Retry(r.clone()),
                    Stage::CircuitBreaker(_) => Step::Breaker,
                    Stage::Bulkhead(_) => Step::Bulkhead,
                    Stage::Throttle(_) => Step::Throttle,
                    Stage::Hedge(h) => Step::Hedge(h.clone(), idempotent),
                    _ => continue,
                };
                steps.push(Placed { step, at });
            }
        }
        Ok(CallPath { steps, assumptions })
    }

    /// Attempts per step that multiplies load: `(place, attempts, has budget)`.
    pub fn multipliers(&self) -> Vec<(&str, u32, bool)> {
        self.steps
            .iter()
            .filter_map(|p| match &p.step {
                Step::Retry(r) if r.max_attempts() > 1 => {
                    Some((p.at.as_str(), r.max_attempts(), r.budget().is_some()))
                }
                Step::Hedge(h, _) if h.max_attempts() > 1 => {
                    Some((p.at.as_str(), h.max_attempts(), h.budget().is_some()))
                }
                _ => None,
            })
            .collect()
    }

    /// Whether anything on the path limits load on a dead dependency beyond
    /// the attempts per call: a budget, a breaker or a throttle.
    pub fn has_load_limit(&self) -> bool {
        self.steps.iter().any(|p| match &p.step {
            Step::Retry(r) => {
                r.budget().is_some() || r.breaker().is_some() || r.throttle().is_some()
            }
            Step::Hedge(h, _) => h.budget().is_some(),
            Step::Breaker | Step::Throttle => true,
            Step::Timeout(_) | Step::Bulkhead => false,
        })
    }
}
