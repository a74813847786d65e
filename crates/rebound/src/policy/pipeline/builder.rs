//! Building a [`Pipeline`], validated.

use std::sync::Arc;
use std::time::Duration;

use super::validate::{validate, validate_hedge};
use super::{Pipeline, Stage};
use crate::error::ConfigError;
use crate::hedge::HedgePolicy;
use crate::throttle::AdaptiveThrottle;
use crate::{Bulkhead, CircuitBreaker, Clock, RetryBudget, RetryPolicy, Timeout};

/// Builds a [`Pipeline`], stages added outermost first. See the [module
/// docs](crate::pipeline) for what [`build`](Self::build) rejects.
///
/// ```
/// use std::time::Duration;
/// use rebound::{pipeline::Pipeline, Bulkhead, CircuitBreaker, RetryPolicy};
///
/// let pipeline = Pipeline::builder()
///     .bulkhead(Bulkhead::builder().max_concurrent(50).build()?)
///     .timeout(Duration::from_secs(3))
///     .retry(RetryPolicy::builder().max_attempts(2).build()?)
///     .circuit_breaker(CircuitBreaker::builder().build()?)
///     .timeout(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(pipeline.stages().len(), 5);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PipelineBuilder {
    stages: Vec<Result<Stage, ConfigError>>,
    dependency: Option<Arc<str>>,
    idempotent: bool,
    clock: Clock,
}

impl PipelineBuilder {
    /// The `dependency` label of the pipeline's timeouts. Default
    /// `"default"`. (The other stages carry their own policies' labels.)
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = Some(name.into());
        self
    }

    /// Adds a timeout of `limit` around the stages declared after it. A
    /// zero limit is rejected by `build` (field `timeout`), as
    /// [`Timeout::new`](crate::Timeout::new) rejects it.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.stages
            .push(Timeout::new(limit).map(|t| Stage::Timeout(t.limit())));
        self
    }

    /// Adds a retry stage: the stages declared after it run once per
    /// attempt. The policy's own timeouts, budget and breaker apply too.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.stages.push(Ok(Stage::Retry(policy)));
        self
    }

    /// Adds a circuit breaker. `build` checks a time-based window against
    /// the attempt timeout inside it.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.stages.push(Ok(Stage::CircuitBreaker(breaker)));
        self
    }

    /// Adds a bulkhead: the stages after it run in one of its slots.
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.stages.push(Ok(Stage::Bulkhead(bulkhead)));
        self
    }

    /// Adds an adaptive throttle.
    pub fn throttle(mut self, throttle: AdaptiveThrottle) -> Self {
        self.stages.push(Ok(Stage::Throttle(throttle)));
        self
    }

    /// Adds a hedge stage: the stages declared after it run again, at the
    /// same time, when they are slow (after the policy's delay) or return a
    /// result the classifier would retry; the first acceptable result wins.
    /// Each copy passes the stages after it (so a breaker there counts
    /// every copy, and a timeout there cuts each one).
    ///
    /// `build` requires the pipeline to be declared
    /// [`idempotent`](Self::idempotent), the hedge to sit inside (after) the
    /// retry, and its delay to be shorter than every timeout around or
    /// inside it. Recommended order: total timeout → retry → hedge →
    /// circuit breaker → attempt timeout.
    pub fn hedge(mut self, policy: HedgePolicy) -> Self {
        self.stages.push(Ok(Stage::Hedge(policy)));
        self
    }

    /// Declares that the operations run through this pipeline are
    /// idempotent: running one twice at the same time does what running it
    /// once does (a read, or a write carrying an idempotency key). Required
    /// by a hedge stage. Default: not declared.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// The clock of the pipeline's timeouts and of every wait its drivers
    /// make (backoff delays, hedge delays, attempt timeouts). Give its
    /// policies the same clock. Default [`Clock::default`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a stage.
    pub fn stage(mut self, stage: Stage) -> Self {
        self.stages.push(Ok(stage));
        self
    }

    /// Validates the combination and builds the pipeline.
    pub fn build(self) -> Result<Pipeline, ConfigError> {
        let stages = self.stages.into_iter().collect::<Result<Vec<_>, _>>()?;
        validate(&stages)?;
        validate_hedge(&stages, self.idempotent)?;
        let budget_of = |f: fn(&Stage) -> Option<&RetryBudget>| stages.iter().find_map(f);
        let retry_budget = budget_of(|s| match s {
            Stage::Retry(p) => p.budget(),
            _ => None,
        });
        let hedge_budget = budget_of(|s| match s {
            Stage::Hedge(p) => p.budget(),
            _ => None,
        });
        let hedge_shares_retry_budget = matches!(
            (retry_budget, hedge_budget),
            (Some(r), Some(h)) if r.same_as(h)
        );
        Ok(Pipeline {
            stages: stages.into(),
            dependency: self.dependency.unwrap_or_else(|| Arc::from("default")),
            idempotent: self.idempotent,
            clock: self.clock,
            hedge_shares_retry_budget,
        })
    }
}
