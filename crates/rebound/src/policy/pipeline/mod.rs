//! Pipelines: strategies composed in a declared order, outermost first.
//!
//! Each strategy wraps the ones declared after it, so
//!
//! ```text
//! timeout(10 s) → retry → circuit breaker → timeout(2 s)
//! ```
//!
//! means: the whole call, retries included, has 10 s; each attempt passes
//! the breaker (so the breaker counts attempts, and an open breaker stops
//! the retries at once) and has 2 s. The same pipeline runs closures
//! ([`Pipeline::execute`]) and tower services (`Pipeline::layer`, feature
//! `tower`), driving the very policy objects you hand it — a breaker in a
//! pipeline is the breaker you keep a handle to — through one sans-IO
//! machine, [`PipelineRun`], which the simulator drives too. Every timeout
//! and wait runs on the pipeline's [clock](PipelineBuilder::clock), so a
//! pipeline on a [`ManualClock`](crate::ManualClock) or in tokio's paused
//! time is deterministic.
//!
//! [`Pipeline::standard`] is the preset for a user-facing call, after
//! Polly's standard resilience handler: **total timeout → retry
//! (exponential backoff with full jitter, 3 attempts, a ratio retry budget)
//! → circuit breaker → per-attempt timeout**.
//!
//! **Validation.** [`build`](PipelineBuilder::build) rejects combinations
//! that cannot work, each with its own message naming the setting:
//!
//! | field | rejected when |
//! |---|---|
//! | `sampling_window` | a breaker's time window is shorter than twice the attempt timeout (it would judge the dependency on a handful of calls, and a slow dependency's calls would end after the window that counts them) |
//! | `total_timeout` | the worst case — every attempt taking its full attempt timeout, every delay its largest value — does not fit inside the total timeout, so the last retries could never run |
//! | `attempt_timeout` | the attempt timeout is not shorter than the total timeout |
//! | `retry` | two retry stages: retries multiply (3 × 3 = 9 attempts per call) |
//! | `circuit_breaker` | a breaker outside the retry: it would see one outcome per call and could not stop the retries |
//! | `stages` | more than 8 stages, or none |
//! | `idempotent` | a hedge stage in a pipeline not declared [`idempotent`](PipelineBuilder::idempotent): hedging sends the same call twice at once |
//! | `hedge` | two hedge stages (copies multiply), or a hedge outside (before) the retry (every copy would run its own retries) |
//! | `hedge_delay` | the hedge delay (for an adaptive hedge, its initial delay) is not shorter than a timeout around or inside it: the first attempt is cut off before a hedge could start |
//!
//! ```
//! use std::time::Duration;
//! use rebound::pipeline::Pipeline;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let inventory = Pipeline::standard()
//!     .dependency("inventory")
//!     .total_timeout(Duration::from_secs(5))
//!     .attempt_timeout(Duration::from_secs(1))
//!     .build()?;
//!
//! let mut calls = 0;
//! let reserved = inventory
//!     .execute(|| {
//!         calls += 1;
//!         let first = calls == 1;
//!         async move {
//!             if first {
//!                 tokio::time::sleep(Duration::from_secs(30)).await; // hangs: cut at 1 s
//!             }
//!             Ok::<_, std::io::Error>("reservation r-17")
//!         }
//!     })
//!     .await?;
//! assert_eq!((reserved, calls), ("reservation r-17", 2));
//!
//! // A combination that cannot work is refused when built.
//! let err = Pipeline::standard()
//!     .total_timeout(Duration::from_secs(2))
//!     .attempt_timeout(Duration::from_secs(1))
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.field(), "total_timeout");
//! # Ok(()) }
//! ```
//!
//! ## Hedging
//!
//! A [`hedge`](PipelineBuilder::hedge) stage runs the stages declared
//! after it again, *at the same time*, when they are slow (after the hedge
//! delay) or return a result the classifier would retry; the first
//! acceptable result wins and the other copies are cancelled (see
//! [`hedge`](crate::hedge) for the rules, and which result is returned when
//! none is acceptable). Each copy passes the stages after the hedge, so a
//! breaker there counts every copy and a timeout there cuts each one off;
//! every copy draws on the hedge policy's retry budget. The recommended
//! order is **total timeout → retry → hedge → circuit breaker → attempt
//! timeout**. Sending a call twice is only safe for idempotent
//! operations, so a pipeline with a hedge stage must say so with
//! [`idempotent`](PipelineBuilder::idempotent); every call through it (and
//! every request, through its tower layer) may then be hedged — except a
//! call run with [`forbid_retries`](ClassifiedPipeline::forbid_retries) (through
//! the tower layer, feature `tower`: a request its `idempotent_if`
//! predicate refuses), which is sent once: no hedge copies and no retries,
//! under the same timeouts, breaker, bulkhead and throttle.
//!
//! ```
//! use std::time::Duration;
//! use rebound::hedge::HedgePolicy;
//! use rebound::pipeline::Pipeline;
//! use rebound::{Backoff, CircuitBreaker, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ms = Duration::from_millis;
//! let catalog = Pipeline::builder()
//!     .dependency("catalog")
//!     .idempotent() // reads: safe to send twice
//!     .timeout(ms(2_000))
//!     .retry(RetryPolicy::builder().max_attempts(2).backoff(Backoff::constant(ms(100))).build()?)
//!     .hedge(HedgePolicy::builder().fixed_delay(ms(50)).build()?)
//!     .circuit_breaker(CircuitBreaker::builder().build()?)
//!     .timeout(ms(500))
//!     .build()?;
//!
//! let mut calls = 0;
//! let price = catalog
//!     .execute(|| {
//!         calls += 1;
//!         let slow = calls == 1; // a replica having a bad day
//!         async move {
//!             tokio::time::sleep(ms(if slow { 400 } else { 10 })).await;
//!             Ok::<_, std::io::Error>(if slow { "slow" } else { "hedged" })
//!         }
//!     })
//!     .await?;
//! assert_eq!((price, calls), ("hedged", 2));
//!
//! // A call that must not be sent twice (a write without an idempotency
//! // key) goes through the same stages once: no hedge, no retry.
//! let mut writes = 0;
//! let err = catalog
//!     .classify(rebound::RetryErrors)
//!     .forbid_retries()
//!     .execute(|| {
//!         writes += 1;
//!         async { Err::<(), _>(std::io::Error::other("connection reset")) }
//!     })
//!     .await
//!     .unwrap_err();
//! assert_eq!((err.stop(), writes), (rebound::Stop::NotRetryable, 1));
//!
//! // Without the promise of idempotency, hedging is refused.
//! let hedge = HedgePolicy::builder().fixed_delay(ms(50)).build()?;
//! let err = Pipeline::builder().hedge(hedge.clone()).build().unwrap_err();
//! assert_eq!(err.field(), "idempotent");
//! // A hedge delay the attempt timeout always beats is refused too.
//! let err = Pipeline::builder().idempotent().hedge(hedge).timeout(ms(50)).build().unwrap_err();
//! assert_eq!(err.field(), "hedge_delay");
//! # Ok(()) }
//! ```
//!
//! Fallbacks sit around the pipeline:
//! [`Fallback::call`](crate::fallback::Fallback::call) takes its result.

mod builder;
mod run;
mod standard;
mod validate;

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tower")]
use crate::classify::RetryErrors;
use crate::hedge::HedgePolicy;
use crate::throttle::AdaptiveThrottle;
use crate::{Bulkhead, CircuitBreaker, Clock, RetryPolicy};

pub use crate::driver::pipeline::ClassifiedPipeline;
pub use builder::PipelineBuilder;
pub use run::{FrameId, PipelineAction, PipelineRun};
pub use standard::StandardBuilder;

/// The most stages a pipeline holds.
pub const MAX_STAGES: usize = 8;

/// One strategy of a pipeline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Stage {
    /// Cut off everything inside after a limit (counted in
    /// `dependency_timeout_total` under the pipeline's dependency label).
    Timeout(Duration),
    /// Run everything inside again on transient failure.
    Retry(RetryPolicy),
    /// Pass everything inside through a circuit breaker. The window, when
    /// known, is checked against the attempt timeout.
    CircuitBreaker(CircuitBreaker),
    /// Run everything inside in a bulkhead slot.
    Bulkhead(Bulkhead),
    /// Ask an adaptive throttle before running everything inside.
    Throttle(AdaptiveThrottle),
    /// Run everything inside again, *at the same time*, when it is slow or
    /// returns a result the classifier would retry; the first acceptable
    /// result wins and the other copies are cancelled (see
    /// [`hedge`](crate::hedge)). Only in a pipeline declared
    /// [`idempotent`](PipelineBuilder::idempotent).
    Hedge(HedgePolicy),
}

impl Stage {
    /// A short name: `timeout`, `retry`, `circuit_breaker`, `bulkhead`,
    /// `throttle`, `hedge`.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Timeout(_) => "timeout",
            Stage::Retry(_) => "retry",
            Stage::CircuitBreaker(..) => "circuit_breaker",
            Stage::Bulkhead(_) => "bulkhead",
            Stage::Throttle(_) => "throttle",
            Stage::Hedge(_) => "hedge",
        }
    }
}

/// Strategies composed in order, outermost first. Cheap to clone; clones
/// share the policies. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub(crate) stages: Arc<[Stage]>,
    pub(crate) dependency: Arc<str>,
    idempotent: bool,
    pub(crate) clock: Clock,
    /// The hedge stage draws on the retry stage's budget, which already
    /// counts each call as a request.
    pub(crate) hedge_shares_retry_budget: bool,
}

impl Pipeline {
    /// An empty builder: add stages outermost first.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The standard preset for a user-facing call; see [`StandardBuilder`]
    /// for its defaults and what can be adjusted.
    pub fn standard() -> StandardBuilder {
        StandardBuilder::new()
    }

    /// The dependency label of the pipeline's timeouts.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// The clock of the pipeline's timeouts and waits.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The stages, outermost first.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Whether the pipeline was declared
    /// [`idempotent`](PipelineBuilder::idempotent).
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Binds a classifier, used by every stage: the retry stage to decide
    /// what to retry, the breaker what counts as a failure, the throttle
    /// what counts as the backend rejecting, the hedge stage which results
    /// are acceptable (and which errors are permanent).
    pub fn classify<C>(&self, classifier: C) -> ClassifiedPipeline<'_, C> {
        ClassifiedPipeline {
            pipeline: self,
            classifier,
            once: false,
        }
    }

    /// The pipeline as a tower layer (feature `tower`): each call runs the
    /// inner service through the stages. The request must be `Clone` (see
    /// [the HTTP body note](crate::tower#retrying-http-requests-the-body));
    /// errors are [`RetryFailed`](crate::tower::retry::error::RetryFailed).
    #[cfg(feature = "tower")]
    pub fn layer(&self) -> crate::tower::pipeline::PipelineLayer {
        crate::tower::pipeline::PipelineLayer::new(self.clone(), RetryErrors)
    }
}
