//! Hedging: cut tail latency by racing a second copy of a slow call.
//!
//! Most calls are fast; a few are slow for reasons that have nothing to do
//! with the request (a GC pause, a cold cache, a busy replica). Retrying
//! after a *timeout* waits for the slow call to fail first; a **hedge**
//! starts another attempt while the first is still running, once it has
//! taken longer than usual, and takes whichever answers first (Dean and
//! Barroso, "The Tail at Scale"; gRPC hedging, gRFC A6).
//!
//! * **When.** After a fixed [`HedgeDelay::Fixed`] delay, or adaptively at
//!   a latency percentile tracked online ([`HedgeDelay::Percentile`]): with
//!   the 95th percentile, about one call in twenty is hedged.
//! * **How many.** At most `max_attempts` attempts run for one call, the
//!   first included (default 2: one hedge).
//! * **Who wins.** The first *acceptable* result: a value the
//!   [classifier](crate::Classifier) would not retry (by default every
//!   value; bind one with [`HedgePolicy::classify`] to turn away, say, an
//!   HTTP 503). A result it
//!   would retry — an error, a timeout, a bad value — is *not acceptable*:
//!   it does not end the call while other attempts are running or may
//!   still start, and it starts the next hedge at once if the cap and
//!   budget allow. A permanent error (`DoNotRetry` on an error) is final
//!   and ends the call at once. The other attempts are cancelled (dropped —
//!   nothing is spawned, so nothing leaks). When every attempt ended
//!   unacceptable, the **last** one to end is returned, as the retry
//!   executor returns its last attempt.
//! * **Budget.** Every hedge withdraws from the same [`RetryBudget`] the
//!   retries use, so hedging cannot double the load on a dependency that is
//!   already struggling: when the budget is exhausted, calls stop hedging.
//! * **Only idempotent operations.** A hedge sends the same request twice;
//!   that is only safe when doing it twice is the same as doing it once. The
//!   executor takes the operation wrapped in [`Idempotent`], so the promise
//!   is written at the call site; the tower layer takes a predicate and
//!   sends other requests straight through.
//!
//! ```
//! use std::time::Duration;
//! use rebound::hedge::{HedgePolicy, Idempotent};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hedge = HedgePolicy::builder()
//!     .dependency("catalog")
//!     .fixed_delay(Duration::from_millis(50))
//!     .max_attempts(2)
//!     .build()?;
//!
//! let mut calls = 0;
//! let price = hedge
//!     .run(Idempotent(|| {
//!         calls += 1;
//!         let slow = calls == 1; // the first replica is having a bad day
//!         async move {
//!             let took = if slow { 5_000 } else { 10 };
//!             tokio::time::sleep(Duration::from_millis(took)).await;
//!             Ok::<_, std::io::Error>(if slow { "slow" } else { "hedged" })
//!         }
//!     }))
//!     .await?;
//! assert_eq!((price, calls), ("hedged", 2));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tokio")]
use std::future::Future;

use crate::budget::RetryBudget;
#[cfg(feature = "tokio")]
use crate::classify::{Classifier, Decision, Outcome, RetryErrors};
use crate::error::{check, ConfigError};
use crate::Clock;

const COMPONENT: &str = "hedge policy";

/// The largest `max_attempts` (gRPC caps hedged attempts at 5; a little
/// more room here, but hedging wider than this only multiplies load).
pub const MAX_HEDGE_ATTEMPTS: u32 = 10;

/// When to start the next hedge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// A fixed delay after the previous attempt started.
    Fixed(Duration),
    /// The `percentile` (in (0, 1), e.g. 0.95) of recent attempt latencies,
    /// tracked online; `initial` until `min_samples` latencies were seen;
    /// never below `min`.
    Percentile {
        /// Which percentile, in (0, 1).
        percentile: f64,
        /// The delay used until enough latencies were recorded.
        initial: Duration,
        /// The floor of the adaptive delay.
        min: Duration,
        /// Latencies needed before the percentile is used.
        min_samples: u32,
    },
}

/// A hedging policy. Cheap to clone; clones share the latency tracker.
/// Build one per dependency with [`HedgePolicy::builder`]; see the [module
/// docs](self).
#[derive(Clone)]
pub struct HedgePolicy {
    pub(crate) delay: HedgeDelay,
    pub(crate) max_attempts: u32,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) dependency: Arc<str>,
    pub(crate) clock: Clock,
    pub(crate) latency: Arc<LatencyTracker>,
}

impl fmt::Debug for HedgePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgePolicy")
            .field("delay", &self.delay)
            .field("max_attempts", &self.max_attempts)
            .field("budget", &self.budget)
            .field("dependency", &self.dependency)
            .finish_non_exhaustive()
    }
}

/// Marks an operation as safe to run more than once at the same time: the
/// only kind [`HedgePolicy::run`] accepts.
///
/// ```
/// use rebound::hedge::Idempotent;
/// let get_price = Idempotent(|| async { Ok::<_, std::io::Error>(42) });
/// # let _ = get_price;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Idempotent<F>(pub F);

impl HedgePolicy {
    /// A builder with the defaults listed on each setter.
    pub fn builder() -> HedgePolicyBuilder {
        HedgePolicyBuilder::new()
    }

    /// Attempts at most, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured delay.
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }

    /// The delay before the next hedge, now: the fixed delay, or the tracked
    /// percentile.
    #[inline]
    pub fn current_delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile {
                initial,
                min,
                min_samples,
                ..
            } => {
                if self.latency.samples() < u64::from(min_samples) {
                    initial
                } else {
                    self.latency.cached().max(min)
                }
            }
        }
    }

    /// Whether the delay follows tracked latencies (so drivers must measure
    /// them).
    #[inline]
    pub fn is_adaptive(&self) -> bool {
        matches!(self.delay, HedgeDelay::Percentile { .. })
    }

    /// The shared retry budget hedges withdraw from, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// The dependency name used as the metrics label.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// The policy's clock (latencies are measured on it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Records a call: counts a request against the budget. Drivers call it
    /// once per call, before the first attempt.
    #[inline]
    pub fn record_request(&self) {
        if let Some(b) = &self.budget {
            b.record_request();
        }
    }

    /// Asks to start hedge number `started` + 1: `true` if the cap and the
    /// budget allow it (the budget is then spent).
    #[inline]
    pub fn try_hedge(&self, started: u32) -> bool {
        if started >= self.max_attempts {
            return false;
        }
        let ok = self.budget.as_ref().is_none_or(RetryBudget::try_withdraw);
        if !ok {
            crate::telemetry::incr(
                crate::telemetry::RETRY_BUDGET_EXHAUSTED_TOTAL,
                &self.dependency,
            );
        } else {
            crate::telemetry::incr(HEDGE_ATTEMPTS_TOTAL, &self.dependency);
        }
        ok
    }

    /// Records how long a completed attempt took (feeds the adaptive delay).
    #[inline]
    pub fn record_latency(&self, latency: Duration) {
        if let HedgeDelay::Percentile { percentile, .. } = self.delay {
            self.latency.record(latency, percentile);
        }
    }

    /// Runs `op` with hedging on tokio; returns the first acceptable result.
    ///
    /// Every value is acceptable and every error transient: an error starts
    /// the next hedge at once (if the cap and budget allow) while the other
    /// attempts go on. When every attempt failed, the error carries the
    /// **last** failure, the number of attempts and why no more were made
    /// ([`Stop::AttemptsExhausted`](crate::Stop) or
    /// [`Stop::BudgetExhausted`](crate::Stop)). To reject values (an HTTP
    /// 503) or end on permanent errors, bind a classifier with
    /// [`classify`](Self::classify).
    #[cfg(feature = "tokio")]
    pub async fn run<T, E, F, Fut>(&self, op: Idempotent<F>) -> Result<T, crate::RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.classify(RetryErrors).run(op).await
    }

    /// Like [`run`](Self::run); an error for which `permanent(&e)` is true
    /// ends the call at once (the others are cancelled) with
    /// [`Stop::Permanent`](crate::Stop::Permanent).
    #[cfg(feature = "tokio")]
    pub async fn run_with<T, E, F, Fut, P>(
        &self,
        op: Idempotent<F>,
        permanent: P,
    ) -> Result<T, crate::RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: Fn(&E) -> bool,
    {
        self.classify(PermanentIf(permanent)).run(op).await
    }

    /// Binds a [`Classifier`]: it says which results are acceptable.
    ///
    /// A value it does not retry ([`Decision::DoNotRetry`]) wins; a value it
    /// would retry (a 503) is not acceptable. An error it does not retry is
    /// permanent and ends the call at once; a transient one is not
    /// acceptable. See [`Classified::run`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::hedge::{HedgePolicy, Idempotent};
    /// use rebound::{Decision, Outcome};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hedge = HedgePolicy::builder().fixed_delay(Duration::from_millis(50)).build()?;
    /// // A 503 is an answer, but not an acceptable one.
    /// let status_ok = |o: Outcome<'_, u16, std::io::Error>| match o {
    ///     Outcome::Ok(&503) | Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
    ///     Outcome::Ok(_) => Decision::DoNotRetry,
    /// };
    /// let mut calls = 0;
    /// let status = hedge
    ///     .classify(status_ok)
    ///     .run(Idempotent(|| {
    ///         calls += 1;
    ///         let first = calls == 1;
    ///         async move {
    ///             if first {
    ///                 Ok(503) // fast, and useless: the hedge starts at once
    ///             } else {
    ///                 tokio::time::sleep(Duration::from_millis(20)).await;
    ///                 Ok(200)
    ///             }
    ///         }
    ///     }))
    ///     .await?;
    /// assert_eq!((status, calls), (200, 2));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tokio")]
    pub fn classify<C>(&self, classifier: C) -> Classified<'_, C> {
        Classified {
            policy: self,
            classifier,
        }
    }
}

/// A [`HedgePolicy`] bound to a [`Classifier`]; from
/// [`HedgePolicy::classify`].
#[cfg(feature = "tokio")]
#[derive(Debug, Clone)]
pub struct Classified<'p, C> {
    policy: &'p HedgePolicy,
    classifier: C,
}

#[cfg(feature = "tokio")]
impl<C> Classified<'_, C> {
    /// Runs `op` with hedging on tokio; returns the first acceptable result.
    ///
    /// * An **acceptable value** wins at once; the other attempts are
    ///   cancelled.
    /// * A **permanent error** ([`Decision::DoNotRetry`] on an error) ends
    ///   the call at once with [`Stop::Permanent`](crate::Stop::Permanent);
    ///   the others are cancelled.
    /// * A result the classifier would **retry** (an error, or a value such
    ///   as a 503) does not end the call while other attempts are in flight
    ///   or may still start; it starts the next hedge at once, if the cap
    ///   and budget allow. [`Decision::RetryAfter`] starts none at once
    ///   (the server asked for time): the other attempts and the hedge
    ///   timer go on.
    /// * When every attempt ended unacceptable, the **last** one to end is
    ///   returned, as the retry executor returns its last attempt: a value
    ///   as `Ok`, an error as `Err` with why no more attempts were made
    ///   ([`Stop::AttemptsExhausted`](crate::Stop::AttemptsExhausted),
    ///   [`Stop::BudgetExhausted`](crate::Stop::BudgetExhausted), or
    ///   [`Stop::Throttled`](crate::Stop::Throttled) with the delay the
    ///   server asked for, when nothing else was in flight).
    pub async fn run<T, E, F, Fut>(
        &self,
        Idempotent(op): Idempotent<F>,
    ) -> Result<T, crate::RetryError<E>>
    where
        C: Classifier<T, E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let raced = race(self.policy, op, |r: &Result<T, E>| match r {
            Ok(v) => Verdict::of(self.classifier.classify(Outcome::Ok(v)), true),
            Err(e) => Verdict::of(self.classifier.classify(Outcome::Err(e)), false),
        })
        .await;
        match raced.result {
            Ok(v) => Ok(v),
            Err(e) => Err(crate::RetryError {
                stop: raced.stop,
                attempts: raced.started,
                last: Some(crate::retry::Failure::Error(e)),
            }),
        }
    }
}

/// The classifier of [`HedgePolicy::run_with`]: values win, errors are
/// permanent when the predicate says so.
#[cfg(feature = "tokio")]
struct PermanentIf<P>(P);

#[cfg(feature = "tokio")]
impl<T, E, P: Fn(&E) -> bool> Classifier<T, E> for PermanentIf<P> {
    fn classify(&self, outcome: Outcome<'_, T, E>) -> Decision {
        match outcome {
            Outcome::Ok(_) => Decision::DoNotRetry,
            Outcome::Err(e) if (self.0)(e) => Decision::DoNotRetry,
            Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
        }
    }
}

/// How one attempt's result bears on a hedged call.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// An acceptable value: it wins, the others are cancelled.
    Accept,
    /// A permanent failure: it ends the call at once.
    Final,
    /// Not acceptable, and it frees a slot: start the next hedge at once.
    Retry,
    /// Not acceptable, and no hedge starts at once: the server asked for
    /// this long, or a rebound layer below refused (`None`).
    Wait(Option<Duration>),
}

#[cfg(feature = "tokio")]
impl Verdict {
    /// The verdict on a value (`is_value`) or a failure, from the
    /// classifier's decision.
    #[inline]
    pub(crate) fn of(decision: Decision, is_value: bool) -> Verdict {
        match decision {
            Decision::DoNotRetry if is_value => Verdict::Accept,
            Decision::DoNotRetry => Verdict::Final,
            Decision::Retry => Verdict::Retry,
            Decision::RetryAfter(d) => Verdict::Wait(Some(d)),
        }
    }
}

/// What a race ended with.
#[cfg(feature = "tokio")]
pub(crate) struct Raced<R> {
    /// The winner, the permanent failure, or the last unacceptable result.
    pub(crate) result: R,
    /// Attempts started, the first included.
    pub(crate) started: u32,
    /// Why it ended: `Succeeded`, `Permanent`, or why no more attempts
    /// were made.
    pub(crate) stop: crate::Stop,
}

/// The hedging driver shared by the closure API and the pipeline's hedge
/// stage: starts `launch()` now, again after each hedge delay (or at once
/// after a [`Verdict::Retry`]) up to the cap and budget, and ends on the
/// first [`Verdict::Accept`] or [`Verdict::Final`], or when every attempt
/// ended unacceptable and no more may start. Nothing is spawned: returning
/// drops (cancels) the attempts still running.
#[cfg(feature = "tokio")]
pub(crate) async fn race<R, F, Fut, J>(
    policy: &HedgePolicy,
    mut launch: F,
    mut judge: J,
) -> Raced<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
    J: FnMut(&R) -> Verdict,
{
    use std::pin::Pin;
    use std::task::Poll;

    use crate::Stop;

    policy.record_request();
    let clock = &policy.clock;
    let max = policy.max_attempts;
    let adaptive = policy.is_adaptive();
    // The first attempt lives inline; hedges are boxed, so a call that
    // never hedges allocates nothing.
    let mut first = std::pin::pin!(Some(launch()));
    let first_at = adaptive.then(|| clock.now());
    let mut hedges: Vec<(Pin<Box<Fut>>, Option<std::time::Instant>)> = Vec::new();
    let mut started = 1u32;
    let mut last: Option<(R, Verdict)> = None;
    let mut budget_refused = false;
    let mut timer = std::pin::pin!(tokio::time::sleep(policy.current_delay()));
    let mut timer_armed = max > 1;
    std::future::poll_fn(|cx| loop {
        let mut relaunch = false;
        // Polled in launch order, so of two attempts ending in the same
        // pass the later-started one is "last".
        let mut ended = None;
        if let Some(fut) = first.as_mut().as_pin_mut() {
            if let Poll::Ready(r) = fut.poll(cx) {
                first.set(None);
                ended = Some((r, first_at));
            }
        }
        let mut i = 0;
        loop {
            if let Some((r, at)) = ended.take() {
                match judge(&r) {
                    Verdict::Accept => {
                        if let Some(at) = at {
                            policy.record_latency(clock.now().saturating_duration_since(at));
                        }
                        return Poll::Ready(Raced {
                            result: r,
                            started,
                            stop: Stop::Succeeded,
                        });
                    }
                    Verdict::Final => {
                        return Poll::Ready(Raced {
                            result: r,
                            started,
                            stop: Stop::Permanent,
                        })
                    }
                    v => {
                        relaunch |= v == Verdict::Retry;
                        last = Some((r, v));
                    }
                }
            }
            let Some((fut, _)) = hedges.get_mut(i) else {
                break;
            };
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                let (_, at) = hedges.remove(i);
                ended = Some((r, at));
            } else {
                i += 1;
            }
        }
        let due =
            (relaunch && started < max) || (timer_armed && timer.as_mut().poll(cx).is_ready());
        if due {
            if policy.try_hedge(started) {
                started += 1;
                let at = adaptive.then(|| clock.now());
                hedges.push((Box::pin(launch()), at));
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + policy.current_delay());
                timer_armed = started < max;
                // Poll the new attempt (and the re-armed timer).
                continue;
            }
            budget_refused |= started < max;
            timer_armed = false;
        }
        if first.is_none() && hedges.is_empty() {
            let (result, verdict) = last.take().expect("every attempt ended");
            let stop = if started >= max {
                Stop::AttemptsExhausted
            } else if budget_refused {
                Stop::BudgetExhausted
            } else if let Verdict::Wait(retry_after) = verdict {
                Stop::Throttled { retry_after }
            } else {
                Stop::AttemptsExhausted
            };
            return Poll::Ready(Raced {
                result,
                started,
                stop,
            });
        }
        return Poll::Pending;
    })
    .await
}

/// `hedge_attempts_total`: hedged attempts started (attempts after the
/// first).
pub const HEDGE_ATTEMPTS_TOTAL: &str = "hedge_attempts_total";

/// Builder for [`HedgePolicy`]; [`build`](Self::build) validates every
/// setting and names the first bad one.
#[derive(Debug, Clone)]
#[must_use]
pub struct HedgePolicyBuilder {
    delay: HedgeDelay,
    max_attempts: u32,
    budget: Option<RetryBudget>,
    dependency: Arc<str>,
    clock: Clock,
}

impl Default for HedgePolicyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HedgePolicyBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        HedgePolicyBuilder {
            delay: HedgeDelay::Percentile {
                percentile: 0.95,
                initial: Duration::from_millis(100),
                min: Duration::from_millis(1),
                min_samples: 20,
            },
            max_attempts: 2,
            budget: None,
            dependency: Arc::from("default"),
            clock: Clock::default(),
        }
    }

    /// Hedge after a fixed delay. Default: adaptive, see
    /// [`percentile_delay`](Self::percentile_delay). Must be non-zero.
    pub fn fixed_delay(mut self, delay: Duration) -> Self {
        self.delay = HedgeDelay::Fixed(delay);
        self
    }

    /// Hedge at the `percentile` of recent latencies (the default, at
    /// 0.95), using `initial` until 20 latencies were recorded, never below
    /// 1 ms. `percentile` must be in (0, 1); `initial` non-zero.
    pub fn percentile_delay(mut self, percentile: f64, initial: Duration) -> Self {
        self.delay = HedgeDelay::Percentile {
            percentile,
            initial,
            min: Duration::from_millis(1),
            min_samples: 20,
        };
        self
    }

    /// Sets the delay directly; see [`HedgeDelay`].
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// Attempts at most for one call, **the first included** (so 2 = one
    /// hedge). Default 2. Must be between 1 and 10.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The retry budget hedges withdraw from, shared with the retries of the
    /// same dependency. Default: none.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The `dependency` label. Default `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The clock latencies are measured on. Default [`Clock::default`]
    /// (follows tokio's paused time).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates and builds.
    ///
    /// Rejected: `max_attempts` 0 or above 10; a zero fixed or initial
    /// delay; a percentile outside (0, 1).
    pub fn build(self) -> Result<HedgePolicy, ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_HEDGE_ATTEMPTS {
            return Err(ConfigError::new(
                COMPONENT,
                "max_attempts",
                format!(
                    "must be between 1 and {MAX_HEDGE_ATTEMPTS} (it counts the first attempt; got {})",
                    self.max_attempts
                ),
            ));
        }
        match self.delay {
            HedgeDelay::Fixed(d) => {
                check::non_zero_duration(COMPONENT, "delay", d)?;
            }
            HedgeDelay::Percentile {
                percentile,
                initial,
                ..
            } => {
                if !(percentile.is_finite() && percentile > 0.0 && percentile < 1.0) {
                    return Err(ConfigError::new(
                        COMPONENT,
                        "percentile",
                        format!("must be in (0, 1), e.g. 0.95 (got {percentile})"),
                    ));
                }
                check::non_zero_duration(COMPONENT, "initial_delay", initial)?;
            }
        }
        Ok(HedgePolicy {
            delay: self.delay,
            max_attempts: self.max_attempts,
            budget: self.budget,
            dependency: self.dependency,
            clock: self.clock,
            latency: Arc::new(LatencyTracker::new()),
        })
    }
}

/// Sub-buckets per power of two (precision about 9 %).
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: latencies up to 2^41 ns (about 36 minutes).
const BUCKETS: usize = (42 * SUB) as usize;
/// When the histogram holds this many samples it halves, so old latencies
/// fade and the percentile follows the dependency.
const DECAY_AT: u32 = 2_000;
/// The cached percentile is recomputed every this many samples.
const RECOMPUTE_EVERY: u64 = 16;

/// A lock-free log-linear latency histogram with exponential decay.
pub(crate) struct LatencyTracker {
    counts: Box<[AtomicU32]>,
    total: AtomicU32,
    samples: AtomicU64,
    cached_nanos: AtomicU64,
    decaying: AtomicBool,
}

impl LatencyTracker {
    fn new() -> Self {
        LatencyTracker {
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            total: AtomicU32::new(0),
            samples: AtomicU64::new(0),
            cached_nanos: AtomicU64::new(0),
            decaying: AtomicBool::new(false),
        }
    }

    fn index(nanos: u64) -> usize {
        if nanos < SUB {
            return nanos as usize;
        }
        let msb = 63 - nanos.leading_zeros() as u64;
        let sub = (nanos >> (msb - SUB_BITS as u64)) & (SUB - 1);
        (((msb - SUB_BITS as u64 + 1) * SUB + sub) as usize).min(BUCKETS - 1)
    }

    /// The upper bound (in ns) of bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let octave = i / SUB - 1 + SUB_BITS as u64;
        let sub = i % SUB;
        ((SUB + sub + 1) << (octave - SUB_BITS as u64)) - 1
    }

    fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Duration {
        Duration::from_nanos(self.cached_nanos.load(Ordering::Relaxed))
    }

    fn record(&self, latency: Duration, percentile: f64) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(nanos)].fetch_add(1, Ordering::Relaxed);
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let n = self.samples.fetch_add(1, Ordering::Relaxed) + 1;
        if total >= DECAY_AT && !self.decaying.swap(true, Ordering::Acquire) {
            let mut kept = 0;
            for c in self.counts.iter() {
                let v = c.load(Ordering::Relaxed);
                c.store(v / 2, Ordering::Relaxed);
                kept += v / 2;
            }
            self.total.store(kept, Ordering::Relaxed);
            self.decaying.store(false, Ordering::Release);
        }
        if n % RECOMPUTE_EVERY == 0 || n < RECOMPUTE_EVERY * 2 {
            self.cached_nanos
                .store(self.percentile(percentile), Ordering::Relaxed);
        }
    }

    fn percentile(&self, p: f64) -> u64 {
        let counts: u64 = self
            .counts
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .sum();
        if counts == 0 {
            return 0;
        }
        let rank = ((counts as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(c.load(Ordering::Relaxed));
            if seen >= rank {
                return Self::upper(i);
            }
        }
        Self::upper(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values() {
        for nanos in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            123_456,
            10_000_000_000,
        ] {
            let i = LatencyTracker::index(nanos);
            assert!(LatencyTracker::upper(i) >= nanos, "{nanos} in {i}");
            if i > 0 {
                assert!(LatencyTracker::upper(i - 1) < nanos, "{nanos} in {i}");
            }
        }
    }

    #[test]
    fn percentile_tracks_latencies() {
        let t = LatencyTracker::new();
        for ms in 1..=100u64 {
            t.record(Duration::from_millis(ms), 0.95);
        }
        let p95 = Duration::from_nanos(t.percentile(0.95));
        assert!(
            p95 >= Duration::from_millis(95) && p95 <= Duration::from_millis(105),
            "{p95:?}"
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = HedgePolicy::builder().max_attempts(0).build().unwrap_err();
        assert_eq!(e.field(), "max_attempts");
        let e = HedgePolicy::builder()
            .percentile_delay(1.0, Duration::from_millis(5))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "percentile");
        let e = HedgePolicy::builder()
            .fixed_delay(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "delay");
    }
}
