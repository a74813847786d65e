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
//! pipeline is the breaker you keep a handle to.
//!
//! [`Pipeline::standard`] is the preset for a user-facing call, after the
//! seeds and Polly's standard resilience handler: **total timeout → retry
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
//! call run with [`forbid_retries`](Classified::forbid_retries) (through
//! the tower layer: a request its
//! [`idempotent_if`](crate::tower::pipeline::PipelineLayer::idempotent_if)
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

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, Jitter};
use crate::breaker::{CallOutcome, SlidingWindow};
use crate::classify::{Classifier, Decision, Outcome, RetryErrors};
use crate::error::ConfigError;
use crate::hedge::{HedgeDelay, HedgePolicy, Verdict};
use crate::retry::{Failure, Next, Report, RetryError, Stop};
use crate::telemetry;
use crate::throttle::AdaptiveThrottle;
use crate::{Bulkhead, CircuitBreaker, Clock, RandomSource, RetryBudget, RetryPolicy, Timeout};

const COMPONENT: &str = "pipeline";

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
    stages: Arc<[Stage]>,
    dependency: Arc<str>,
    idempotent: bool,
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

    /// The stages, outermost first.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Whether the pipeline was declared
    /// [`idempotent`](PipelineBuilder::idempotent).
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Runs `op` through the pipeline, every error and timeout counting as
    /// transient. The error says why the pipeline stopped, how many times
    /// `op` ran, and carries the last failure.
    pub async fn execute<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.classify(RetryErrors).execute(op).await
    }

    /// Binds a classifier, used by every stage: the retry stage to decide
    /// what to retry, the breaker what counts as a failure, the throttle
    /// what counts as the backend rejecting, the hedge stage which results
    /// are acceptable (and which errors are permanent).
    pub fn classify<C>(&self, classifier: C) -> Classified<'_, C> {
        Classified {
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

/// A [`Pipeline`] bound to a classifier; from [`Pipeline::classify`].
#[derive(Debug, Clone)]
pub struct Classified<'p, C> {
    pipeline: &'p Pipeline,
    classifier: C,
    /// Run the call once: no retries, no hedge copies.
    once: bool,
}

impl<C> Classified<'_, C> {
    /// Runs the call once, for an operation that must not be sent twice (a
    /// write without an idempotency key): each retry stage makes one
    /// attempt — a transient failure stops it with
    /// [`Stop::NotRetryable`] — and each hedge stage sends no extra copy.
    /// Timeouts, the circuit breaker, the bulkhead and the throttle apply
    /// as to any call.
    pub fn forbid_retries(mut self) -> Self {
        self.once = true;
        self
    }

    /// Runs `op` through the pipeline; see [`Pipeline::execute`].
    pub async fn execute<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        C: Classifier<T, E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let calls = AtomicU32::new(0);
        let ctx = Ctx {
            deadline: None,
            calls: &calls,
            once: self.once,
        };
        let p = self.pipeline;
        let op = Op(Mutex::new(op));
        run0(&p.stages, &p.dependency, &self.classifier, &op, ctx).await
    }
}

/// The operation, shared by the attempts a hedge stage runs at the same
/// time. The lock is held only while `op()` makes the attempt's future
/// (which does not borrow the closure), never across an await, so it is
/// never contended; a `Mutex` rather than a `RefCell` keeps the pipeline's
/// future `Send`.
struct Op<F>(Mutex<F>);

impl<F> Op<F> {
    #[inline]
    fn call<Fut>(&self) -> Fut
    where
        F: FnMut() -> Fut,
    {
        let mut op = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        op()
    }
}

/// What the stages outside tell the stages inside.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    /// The earliest deadline of the timeouts outside.
    deadline: Option<Instant>,
    /// Times the operation ran.
    calls: &'a AtomicU32,
    /// The call may be sent only once: retry stages make one attempt and
    /// hedge stages send no copy.
    once: bool,
}

type Out<T, E> = Result<T, RetryError<E>>;

fn refused<T, E>(stop: Stop, ctx: Ctx<'_>) -> Out<T, E> {
    Err(RetryError {
        stop,
        attempts: ctx.calls.load(Ordering::Relaxed),
        last: None,
    })
}

/// Whether an outcome means the dependency failed (for breaker and throttle).
fn failed<T, E, C: Classifier<T, E>>(cx: &C, r: &Out<T, E>) -> Option<bool> {
    match r {
        Ok(v) => Some(cx.classify(Outcome::Ok(v)) != Decision::DoNotRetry),
        Err(e) => match &e.last {
            Some(Failure::Error(err)) => {
                Some(cx.classify(Outcome::Err(err)) != Decision::DoNotRetry)
            }
            Some(Failure::Timeout(_)) => Some(true),
            // A refusal from inside: says nothing about the dependency.
            None => None,
        },
    }
}

pin_project_lite::pin_project! {
    /// `fut`, cut off after `limit` if there is one: one future type, so a
    /// stage awaits the stages inside at a single point (which keeps the
    /// nested futures from growing with every branch).
    struct MaybeTimeout<F> {
        #[pin]
        fut: F,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

impl<F: Future> Future for MaybeTimeout<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if let std::task::Poll::Ready(v) = this.fut.poll(cx) {
            return std::task::Poll::Ready(Ok(v));
        }
        match this.sleep.as_pin_mut() {
            Some(s) => s.poll(cx).map(|()| Err(())),
            None => std::task::Poll::Pending,
        }
    }
}

fn maybe_timeout<F>(limit: Option<Duration>, fut: F) -> MaybeTimeout<F> {
    MaybeTimeout {
        fut,
        sleep: limit.map(tokio::time::sleep),
    }
}

// The stages run by nested calls, one function per depth, so the futures
// nest without boxing (an `async fn` cannot recurse without a box). Each
// level awaits the next at exactly one point.
macro_rules! level {
    ($name:ident => $next:ident) => {
        async fn $name<T, E, C, F, Fut>(
            stages: &[Stage],
            dependency: &Arc<str>,
            cx: &C,
            op: &Op<F>,
            ctx: Ctx<'_>,
        ) -> Out<T, E>
        where
            C: Classifier<T, E>,
            F: FnMut() -> Fut,
            Fut: Future<Output = Result<T, E>>,
        {
            let Some((stage, rest)) = stages.split_first() else {
                return leaf(cx, op, ctx).await;
            };
            if let Stage::Hedge(policy) = stage {
                // The stages inside run several times at once (once for a
                // call that must not be sent twice).
                return hedge(policy, cx, ctx, move || {
                    $next(rest, dependency, cx, op, ctx)
                })
                .await;
            }
            let mut retry = match stage {
                Stage::Retry(p) => {
                    let mut state = p.start();
                    if ctx.once {
                        state.forbid_retries();
                    }
                    Some((p, state))
                }
                _ => None,
            };
            let mut last: Option<Result<T, Failure<E>>> = None;
            loop {
                // Before the stages inside.
                let mut limit = None;
                let mut inner = ctx;
                let mut attempt = None;
                let mut breaker = None;
                let mut throttle = None;
                let mut _slot = None;
                match stage {
                    Stage::Timeout(t) => {
                        limit = Some(*t);
                        inner.deadline =
                            earliest(ctx.deadline, Clock::default().now().checked_add(*t));
                    }
                    Stage::Retry(_) => {
                        let (policy, state) = retry.as_mut().expect("a retry stage");
                        match state.begin_attempt(policy) {
                            Ok(a) => {
                                limit = a.timeout();
                                attempt = Some(a);
                            }
                            Err(stop) => {
                                let stop = state.abort(policy, stop);
                                return report(stop, attempts(state, ctx), last);
                            }
                        }
                    }
                    Stage::CircuitBreaker(cb) => match cb.try_acquire_owned() {
                        Ok(p) => breaker = Some(p),
                        Err(_) => return refused(Stop::BreakerOpen, ctx),
                    },
                    Stage::Bulkhead(b) => match b.acquire().await {
                        Ok(p) => _slot = Some(p),
                        Err(_) => return refused(Stop::BulkheadFull, ctx),
                    },
                    Stage::Throttle(t) => match t.try_acquire() {
                        Ok(p) => throttle = Some(p),
                        Err(_) => return refused(Stop::Throttled { retry_after: None }, ctx),
                    },
                    // Run above, before the loop.
                    Stage::Hedge(_) => {}
                }
                // The stages inside: the one await point.
                let r = match maybe_timeout(limit, $next(rest, dependency, cx, op, inner)).await {
                    Ok(r) => r,
                    Err(()) => {
                        let limit = limit.unwrap_or_default();
                        if matches!(stage, Stage::Timeout(_)) {
                            telemetry::incr(telemetry::DEPENDENCY_TIMEOUT_TOTAL, dependency);
                        }
                        Err(RetryError {
                            stop: Stop::DeadlineExceeded {
                                requested_delay: None,
                            },
                            attempts: ctx.calls.load(Ordering::Relaxed),
                            last: Some(Failure::Timeout(limit)),
                        })
                    }
                };
                // After.
                if let Some(p) = breaker {
                    match failed(cx, &r) {
                        Some(true) => p.record(CallOutcome::Failure),
                        Some(false) => p.record(CallOutcome::Success),
                        None => drop(p),
                    }
                }
                if let Some(p) = throttle {
                    match failed(cx, &r) {
                        Some(true) => p.rejected(),
                        Some(false) => p.accepted(),
                        None => drop(p),
                    }
                }
                let (Some(attempt), Some((policy, state))) = (attempt, retry.as_mut()) else {
                    return r;
                };
                let result = match r {
                    Ok(v) => Ok(v),
                    Err(RetryError { last: Some(f), .. }) => Err(f),
                    Err(RetryError { stop, .. }) => {
                        // Refused inside (breaker, bulkhead, throttle):
                        // stop at once.
                        drop(attempt);
                        let stop = state.abort(policy, stop);
                        return report(stop, attempts(state, ctx), last);
                    }
                };
                let outcome = match &result {
                    Ok(v) => Outcome::Ok(v),
                    Err(Failure::Error(e)) => Outcome::Err(e),
                    Err(Failure::Timeout(d)) => Outcome::Timeout(*d),
                };
                let decision = cx.classify(outcome);
                match state.on_outcome(policy, attempt, outcome, decision) {
                    Next::Stop(stop) => return report(stop, attempts(state, ctx), Some(result)),
                    Next::Retry { delay } => {
                        if let Some(deadline) = ctx.deadline {
                            // A timeout outside would cut the wait short:
                            // fail fast instead (seed 001).
                            if Clock::default()
                                .now()
                                .checked_add(delay)
                                .is_none_or(|t| t >= deadline)
                            {
                                let stop = state.abort(
                                    policy,
                                    Stop::DeadlineExceeded {
                                        requested_delay: None,
                                    },
                                );
                                return report(stop, attempts(state, ctx), Some(result));
                            }
                        }
                        last = Some(result);
                        policy.clock().sleep(delay).await;
                    }
                }
            }
        }
    };
}

level!(run0 => run1);
level!(run1 => run2);
level!(run2 => run3);
level!(run3 => run4);
level!(run4 => run5);
level!(run5 => run6);
level!(run6 => run7);
level!(run7 => run8);

/// Depth 8: only the operation is left (`build` allows at most 8 stages).
async fn run8<T, E, C, F, Fut>(
    _: &[Stage],
    _: &Arc<str>,
    cx: &C,
    op: &Op<F>,
    ctx: Ctx<'_>,
) -> Out<T, E>
where
    C: Classifier<T, E>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    leaf(cx, op, ctx).await
}

#[inline]
async fn leaf<T, E, C, F, Fut>(cx: &C, op: &Op<F>, ctx: Ctx<'_>) -> Out<T, E>
where
    C: Classifier<T, E>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    ctx.calls.fetch_add(1, Ordering::Relaxed);
    let fut = op.call();
    match fut.await {
        Ok(v) => Ok(v),
        Err(e) => {
            let stop = match cx.classify(Outcome::Err(&e)) {
                Decision::DoNotRetry => Stop::Permanent,
                _ => Stop::AttemptsExhausted,
            };
            Err(RetryError {
                stop,
                attempts: ctx.calls.load(Ordering::Relaxed),
                last: Some(Failure::Error(e)),
            })
        }
    }
}

/// The hedge stage: races copies of the stages inside (`launch`) under
/// `policy`, judging each copy's result with the pipeline's classifier.
async fn hedge<T, E, C, G, Fut>(
    policy: &HedgePolicy,
    cx: &C,
    ctx: Ctx<'_>,
    mut launch: G,
) -> Out<T, E>
where
    C: Classifier<T, E>,
    G: FnMut() -> Fut,
    Fut: Future<Output = Out<T, E>>,
{
    if ctx.once {
        return launch().await;
    }
    let raced = crate::hedge::race(policy, launch, |r: &Out<T, E>| match r {
        Ok(v) => Verdict::of(cx.classify(Outcome::Ok(v)), true),
        Err(e) => match &e.last {
            Some(Failure::Error(err)) => Verdict::of(cx.classify(Outcome::Err(err)), false),
            Some(Failure::Timeout(d)) => Verdict::of(cx.classify(Outcome::Timeout(*d)), false),
            // Refused inside (breaker, bulkhead, throttle): a copy sent now
            // would be refused too.
            None => Verdict::Wait(None),
        },
    })
    .await;
    let mut r = raced.result;
    if let Err(e) = &mut r {
        // Every copy failed: say why no more were sent. A refusal keeps
        // its own reason, so a retry outside stops at once.
        if e.last.is_some() && matches!(raced.stop, Stop::AttemptsExhausted | Stop::BudgetExhausted)
        {
            e.stop = raced.stop;
        }
        e.attempts = ctx.calls.load(Ordering::Relaxed);
    }
    r
}

/// The attempts a retry stage reports: its own (a refused attempt counts),
/// or the operation's calls when a hedge stage inside sent more copies.
fn attempts(state: &crate::RetryState, ctx: Ctx<'_>) -> u32 {
    state.attempts().max(ctx.calls.load(Ordering::Relaxed))
}

fn report<T, E>(stop: Stop, attempts: u32, last: Option<Result<T, Failure<E>>>) -> Out<T, E> {
    Report {
        last,
        stop,
        attempts,
    }
    .into_result()
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Builds a [`Pipeline`], stages added outermost first. See the [module
/// docs](self) for what [`build`](Self::build) rejects.
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
        Ok(Pipeline {
            stages: stages.into(),
            dependency: self.dependency.unwrap_or_else(|| Arc::from("default")),
            idempotent: self.idempotent,
        })
    }
}

/// The longest delay a backoff can hand out before retry `n`.
fn worst_delay(b: &Backoff, n: u32) -> Duration {
    let cap = b.max_delay();
    match b.jitter() {
        Jitter::None | Jitter::Full | Jitter::Equal => b.capped(n),
        Jitter::Decorrelated => {
            let base = b.schedule().base();
            base.saturating_mul(3u32.saturating_pow(n))
                .min(cap)
                .max(base.min(cap))
        }
        Jitter::Proportional(x) => b.capped(n).mul_f64(1.0 + x.clamp(0.0, 1.0)).min(cap),
    }
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn validate(stages: &[Stage]) -> Result<(), ConfigError> {
    if stages.is_empty() || stages.len() > MAX_STAGES {
        return Err(ConfigError::new(
            COMPONENT,
            "stages",
            format!(
                "must hold between 1 and {MAX_STAGES} strategies (got {})",
                stages.len()
            ),
        ));
    }
    let retries: Vec<usize> = (0..stages.len())
        .filter(|&i| matches!(stages[i], Stage::Retry(_)))
        .collect();
    if retries.len() > 1 {
        return Err(ConfigError::new(
            COMPONENT,
            "retry",
            "is declared twice: nested retries multiply (3 attempts × 3 attempts = 9 calls per request); keep one retry stage",
        ));
    }
    let retry = retries.first().map(|&i| {
        let Stage::Retry(p) = &stages[i] else {
            unreachable!()
        };
        (i, p)
    });
    let timeout_in = |range: std::ops::Range<usize>| {
        stages[range]
            .iter()
            .filter_map(|s| match s {
                Stage::Timeout(t) => Some(*t),
                _ => None,
            })
            .min()
    };
    if let Some((r, _)) = retry {
        if stages[..r]
            .iter()
            .any(|s| matches!(s, Stage::CircuitBreaker(..)))
        {
            return Err(ConfigError::new(
                COMPONENT,
                "circuit_breaker",
                "is declared outside (before) the retry: it would see one outcome per call, not per attempt, and could not stop the retries; declare it after the retry",
            ));
        }
    }
    let (total, attempt) = match retry {
        Some((r, p)) => (
            min_opt(timeout_in(0..r), p.total_timeout()),
            min_opt(timeout_in(r + 1..stages.len()), p.attempt_timeout()),
        ),
        None => (None, None),
    };
    // The window rule: each breaker against the attempt timeout inside it.
    for (i, s) in stages.iter().enumerate() {
        let window = match s {
            Stage::CircuitBreaker(cb) => cb.window(),
            _ => continue,
        };
        if let SlidingWindow::Time { duration, .. } = window {
            let duration = &duration;
            let from_retry =
                retry.and_then(|(r, p)| (r < i).then(|| p.attempt_timeout()).flatten());
            if let Some(a) = min_opt(timeout_in(i + 1..stages.len()), from_retry) {
                if *duration < a.saturating_mul(2) {
                    return Err(ConfigError::new(
                        COMPONENT,
                        "sampling_window",
                        format!(
                            "of the circuit breaker ({duration:?}) must be at least twice the attempt timeout ({a:?}): a shorter window judges the dependency on a handful of calls, and slow calls end after the window that counts them"
                        ),
                    ));
                }
            }
        }
    }
    if let (Some(total), Some(attempt), Some((_, p))) = (total, attempt, retry) {
        if attempt >= total {
            return Err(ConfigError::new(
                COMPONENT,
                "attempt_timeout",
                format!(
                    "({attempt:?}) must be shorter than the total timeout ({total:?}): a slow first attempt would leave no time to retry"
                ),
            ));
        }
        let n = p.max_attempts();
        let delays: Duration = (0..n.saturating_sub(1))
            .map(|i| worst_delay(p.backoff(), i))
            .fold(Duration::ZERO, Duration::saturating_add);
        let worst = attempt.saturating_mul(n).saturating_add(delays);
        if worst > total {
            return Err(ConfigError::new(
                COMPONENT,
                "total_timeout",
                format!(
                    "({total:?}) is shorter than the worst case of the retry: {n} attempts × {attempt:?} attempt timeout + {delays:?} of backoff = {worst:?}; raise the total timeout, or lower max_attempts, the attempt timeout or the backoff"
                ),
            ));
        }
    }
    Ok(())
}

/// The hedge rules: one hedge stage, only for idempotent operations,
/// inside the retry, with a delay that can fire before any timeout cuts the
/// first attempt off.
fn validate_hedge(stages: &[Stage], idempotent: bool) -> Result<(), ConfigError> {
    let hedges: Vec<(usize, &HedgePolicy)> = stages
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Stage::Hedge(p) => Some((i, p)),
            _ => None,
        })
        .collect();
    let Some(&(h, policy)) = hedges.first() else {
        return Ok(());
    };
    if hedges.len() > 1 {
        return Err(ConfigError::new(
            COMPONENT,
            "hedge",
            "is declared twice: nested hedges multiply (2 copies × 2 copies = 4 calls in flight per request); keep one hedge stage",
        ));
    }
    if !idempotent {
        return Err(ConfigError::new(
            COMPONENT,
            "idempotent",
            "is not declared, but a hedge stage runs the operation several times at the same time, which is only safe when doing it twice is the same as doing it once; declare the pipeline idempotent (`.idempotent()`, in a file `idempotent = true` on the hedge stage) or remove the hedge",
        ));
    }
    let retry = stages.iter().position(|s| matches!(s, Stage::Retry(_)));
    if retry.is_some_and(|r| r > h) {
        return Err(ConfigError::new(
            COMPONENT,
            "hedge",
            "is declared outside (before) the retry: every hedged copy would run its own retries, multiplying the calls; declare it after the retry, so each attempt is hedged",
        ));
    }
    let (delay, what) = match policy.delay() {
        HedgeDelay::Fixed(d) => (d, "the hedge delay"),
        HedgeDelay::Percentile { initial, .. } => (initial, "the initial hedge delay"),
    };
    // Every timeout cuts off the first attempt: those declared before the
    // hedge wrap the whole hedged call, those after it each copy.
    let mut limits: Vec<(Duration, &str)> = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        match s {
            Stage::Timeout(t) if i > h => limits.push((*t, "timeout of each hedged attempt")),
            Stage::Timeout(t) if retry.is_some_and(|r| r < i) => {
                limits.push((*t, "attempt timeout"))
            }
            Stage::Timeout(t) => limits.push((*t, "total timeout")),
            Stage::Retry(p) => {
                if let Some(t) = p.attempt_timeout() {
                    limits.push((t, "retry's attempt timeout"));
                }
                if let Some(t) = p.total_timeout() {
                    limits.push((t, "retry's total timeout"));
                }
            }
            _ => {}
        }
    }
    if let Some((limit, name)) = limits.into_iter().min_by_key(|(t, _)| *t) {
        if delay >= limit {
            return Err(ConfigError::new(
                COMPONENT,
                "hedge_delay",
                format!(
                    "({what}, {delay:?}) must be shorter than the {name} ({limit:?}): the attempt is cut off before the hedge could start, so it never fires; lower the hedge delay or raise the timeout"
                ),
            ));
        }
    }
    Ok(())
}

/// The standard pipeline, adjustable: total timeout → retry (exponential
/// backoff with full jitter, a ratio retry budget) → circuit breaker →
/// attempt timeout. Each setter states its default.
///
/// ```
/// use std::time::Duration;
/// use rebound::pipeline::Pipeline;
///
/// let p = Pipeline::standard().dependency("search").max_attempts(2).build()?;
/// let names: Vec<_> = p.stages().iter().map(|s| s.name()).collect();
/// assert_eq!(names, ["timeout", "retry", "circuit_breaker", "timeout"]);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StandardBuilder {
    dependency: Arc<str>,
    total_timeout: Duration,
    attempt_timeout: Duration,
    max_attempts: u32,
    backoff: Backoff,
    budget_ratio: f64,
    min_retries_per_second: f64,
    failure_ratio: f64,
    min_calls: u32,
    sampling_window: Duration,
    break_duration: Duration,
    clock: Clock,
    random: RandomSource,
}

impl Default for StandardBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StandardBuilder {
    /// The preset's defaults.
    pub fn new() -> Self {
        StandardBuilder {
            dependency: Arc::from("default"),
            total_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter(Jitter::Full),
            budget_ratio: 0.1,
            min_retries_per_second: 10.0,
            failure_ratio: 0.1,
            min_calls: 100,
            sampling_window: Duration::from_secs(30),
            break_duration: Duration::from_secs(5),
            clock: Clock::default(),
            random: RandomSource::entropy(),
        }
    }

    /// The dependency label of every stage. Default `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The whole call's time, retries included. Default 10 s.
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.total_timeout = d;
        self
    }

    /// One attempt's time. Default 2 s.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// Attempts, the first included. Default 3.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The backoff. Default exponential from 200 ms, ×2, capped at 5 s,
    /// full jitter.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The retry budget: retries ≤ `ratio` × requests + `min_per_second`
    /// per second, over 10 s. Default 0.1 and 10.
    pub fn budget(mut self, ratio: f64, min_per_second: f64) -> Self {
        self.budget_ratio = ratio;
        self.min_retries_per_second = min_per_second;
        self
    }

    /// The breaker opens when this share of the attempts in its window
    /// failed. Default 0.1 (Polly's).
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.failure_ratio = ratio;
        self
    }

    /// Attempts the breaker's window must hold before it may open. Default
    /// 100 (Polly's minimum throughput).
    pub fn min_calls(mut self, n: u32) -> Self {
        self.min_calls = n;
        self
    }

    /// The breaker's sampling window (time-based, 10 buckets). Default
    /// 30 s. Must be at least twice the attempt timeout.
    pub fn sampling_window(mut self, d: Duration) -> Self {
        self.sampling_window = d;
        self
    }

    /// How long the breaker stays open. Default 5 s.
    pub fn break_duration(mut self, d: Duration) -> Self {
        self.break_duration = d;
        self
    }

    /// The clock of the budget, retry and breaker. Default [`Clock::default`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The source of jitter. Default [`RandomSource::entropy`].
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// Builds the policies with their own builders (so their validation
    /// applies), then the pipeline (so its rules apply).
    pub fn build(self) -> Result<Pipeline, ConfigError> {
        let budget = RetryBudget::ratio(self.budget_ratio)
            .min_retries_per_second(self.min_retries_per_second)
            .clock(self.clock.clone())
            .build()?;
        let retry = RetryPolicy::builder()
            .dependency(Arc::clone(&self.dependency))
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .budget(budget)
            .clock(self.clock.clone())
            .random(self.random.clone())
            .build()?;
        let window = SlidingWindow::Time {
            duration: self.sampling_window,
            buckets: 10,
        };
        let breaker = CircuitBreaker::builder()
            .dependency(Arc::clone(&self.dependency))
            .failure_ratio(self.failure_ratio)
            .min_calls(self.min_calls)
            .window(window)
            .break_duration(self.break_duration)
            .clock(self.clock)
            .random(self.random)
            .build()?;
        Pipeline::builder()
            .dependency(self.dependency)
            .timeout(self.total_timeout)
            .retry(retry)
            .circuit_breaker(breaker)
            .timeout(self.attempt_timeout)
            .build()
    }
}
