//! The load a dependency's callers put on it while it is dead, measured by
//! running the file's real policies against a server that fails every
//! request, in the simulator's virtual time.

use std::time::Duration;

use rebound::config::{DependencyConfig, PipelineConfig, StageConfig};
use rebound_sim::model::{self, LayerSpec, SystemSpec, Workload};
use rebound_sim::policy::{CallerPolicy, PolicySource};

/// How long the dead dependency is called for (virtual time): long enough
/// for a budget's window and a breaker's break to reach their steady state.
pub const DEAD_FOR: Duration = Duration::from_secs(60);

/// Attempts per call on the dead dependency.
pub struct DeadLoad {
    /// With the file's budgets (and breakers, throttles).
    pub with_budget: f64,
    /// With every budget removed, the rest as written; `None` when the
    /// file has no budget it can remove (none, or the standard preset's).
    pub without_budget: Option<f64>,
}

/// Runs the dependency's policies at `rate` calls per second against a
/// server that fails every request at once, with and without its budgets.
pub fn measure(name: &str, dep: &DependencyConfig, rate: f64) -> Result<DeadLoad, String> {
    let table = simulated(dep)?;
    let stripped = without_budgets(&table);
    let without_budget = if stripped != table {
        Some(amplification(name, stripped, rate)?)
    } else {
        None
    };
    Ok(DeadLoad {
        with_budget: amplification(name, table, rate)?,
        without_budget,
    })
}

fn amplification(name: &str, table: DependencyConfig, rate: f64) -> Result<f64, String> {
    let spec = SystemSpec {
        duration: DEAD_FOR,
        workload: Workload::open(rate),
        // One service process: every call shares the budget and breaker.
        policy: CallerPolicy::shared(PolicySource::config(name, table)),
        layers: vec![LayerSpec {
            name: name.to_string(),
            failure_rate: 1.0,
            ..LayerSpec::default()
        }],
        ..SystemSpec::default()
    };
    let run = model::run(&spec, 1).map_err(|e| e.to_string())?;
    Ok(run.amplification())
}

/// The dependency's tables as one the simulator drives: a lone `retry`,
/// `hedge` or `pipeline` as written; several tables as the pipeline of the
/// call path (standalone policies outermost, then `retry`, `hedge`, the
/// pipeline's stages).
fn simulated(dep: &DependencyConfig) -> Result<DependencyConfig, String> {
    let lone = [
        dep.timeout.is_some(),
        dep.breaker.is_some(),
        dep.bulkhead.is_some(),
        dep.throttle.is_some(),
        dep.retry.is_some(),
        dep.hedge.is_some(),
        dep.pipeline.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count()
        <= 1;
    // With a `retry` table the dependency's breaker and throttle guard every
    // attempt of the retry (the simulator builds them in, as the service
    // does): a retry with only those beside it runs as written.
    let guards_retry = dep.retry.is_some();
    let retry_with_guards_only = guards_retry
        && dep.timeout.is_none()
        && dep.bulkhead.is_none()
        && dep.hedge.is_none()
        && dep.pipeline.is_none();
    if retry_with_guards_only
        || (lone
            && dep.timeout.is_none()
            && dep.breaker.is_none()
            && dep.bulkhead.is_none()
            && dep.throttle.is_none())
    {
        return Ok(dep.clone());
    }
    let mut stages = Vec::new();
    if let Some(t) = dep.timeout {
        stages.push(StageConfig::Timeout { timeout: t });
    }
    if let (Some(b), false) = (&dep.breaker, guards_retry) {
        stages.push(StageConfig::CircuitBreaker(b.clone()));
    }
    if let Some(b) = &dep.bulkhead {
        stages.push(StageConfig::Bulkhead(b.clone()));
    }
    if let (Some(t), false) = (&dep.throttle, guards_retry) {
        stages.push(StageConfig::Throttle(t.clone()));
    }
    if let Some(r) = &dep.retry {
        let mut r = r.clone();
        r.breaker = dep.breaker.clone();
        r.throttle = dep.throttle.clone();
        stages.push(StageConfig::Retry(Box::new(r)));
    }
    if let Some(h) = &dep.hedge {
        // Load only: the promise is checked apart.
        let mut h = h.clone();
        h.idempotent = true;
        stages.push(StageConfig::Hedge(h));
    }
    match &dep.pipeline {
        Some(PipelineConfig::Stages(s)) => stages.extend(s.iter().cloned()),
        Some(PipelineConfig::Standard(_)) => {
            return Err(
                "a `standard` pipeline cannot be stacked with other tables in the simulator".into(),
            )
        }
        None => {}
    }
    Ok(DependencyConfig {
        pipeline: Some(PipelineConfig::Stages(stages)),
        ..DependencyConfig::default()
    })
}

/// The same tables with every retry budget removed.
fn without_budgets(dep: &DependencyConfig) -> DependencyConfig {
    let mut dep = dep.clone();
    if let Some(r) = &mut dep.retry {
        r.budget = None;
    }
    if let Some(h) = &mut dep.hedge {
        h.budget = None;
    }
    if let Some(PipelineConfig::Stages(stages)) = &mut dep.pipeline {
        for s in stages {
            match s {
                StageConfig::Retry(r) => r.budget = None,
                StageConfig::Hedge(h) => h.budget = None,
                _ => {}
            }
        }
    }
    dep
}
