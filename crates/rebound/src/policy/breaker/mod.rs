//! Circuit breakers: stop calling a dependency that is failing, and find out
//! cheaply when it is back.
//!
//! Retries handle a blip; they make an outage worse. When most calls to a
//! dependency fail, every retry is more load on a service that is already
//! struggling, and every caller waits for timeouts it could have skipped. A
//! breaker watches the outcomes of recent calls and, once they are bad
//! enough, **opens**: calls fail fast, without touching the dependency, for a
//! break duration. Then it goes **half-open** and lets a few probes through;
//! if they succeed it **closes** and traffic resumes, if one fails it opens
//! again (seed 001, "Circuit Breaker Integration").
//!
//! ```text
//!            failure ratio / slow-call ratio / N in a row
//!   Closed ──────────────────────────────────────────────▶ Open
//!     ▲                                                  │   ▲
//!     │ all probes succeeded          break elapsed,     │   │ a probe failed
//!     │                               next call arrives  ▼   │ (or was slow)
//!     └──────────────────────────────────────────────── HalfOpen
//!
//!   isolate() ─▶ Isolated (refuses everything)   disable() ─▶ Disabled (admits everything)
//!   reset()   ─▶ Closed, from any state, with an empty window
//! ```
//!
//! The breaker is a sans-IO state machine: it reads the time from its
//! [`Clock`](crate::Clock), never sleeps, never spawns. You ask it for a
//! [`Permit`], make the call, and tell the permit how it went; or let
//! [`CircuitBreaker::call`] / [`CircuitBreaker::call_async`] do both, or hand
//! it to a [`RetryPolicy`](crate::RetryPolicy) with
//! [`breaker`](crate::retry::RetryPolicyBuilder::breaker), which then stops
//! retrying at once with [`Stop::BreakerOpen`](crate::Stop::BreakerOpen).
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Clock, CircuitBreaker, breaker::State};
//!
//! let (clock, time) = Clock::manual();
//! let cb = CircuitBreaker::builder()
//!     .dependency("inventory")
//!     .failure_ratio(0.5)
//!     .min_calls(4)
//!     .count_window(10)
//!     .break_duration(Duration::from_secs(30))
//!     .clock(clock)
//!     .build()?;
//!
//! for ok in [true, false, true, false] {
//!     let permit = cb.try_acquire()?;
//!     if ok { permit.success() } else { permit.failure() }
//! }
//! assert_eq!(cb.state(), State::Open); // 2 of 4 failed
//! assert!(cb.try_acquire().is_err()); // fail fast
//!
//! time.advance(Duration::from_secs(30));
//! let probe = cb.try_acquire()?; // the one half-open probe
//! assert!(probe.is_probe());
//! assert!(cb.try_acquire().is_err()); // no second probe
//! probe.success();
//! assert_eq!(cb.state(), State::Closed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! * **Closed is cheap.** Admitting and recording a call in the closed state
//!   takes no lock and allocates nothing: a load of the state word, and a
//!   few atomic operations on the window (see `BENCHMARKS.md`). Once a count
//!   window is full of successes, a further success only reads it, so
//!   threads sharing a healthy breaker do not contend on a cache line.
//! * **The probe limit holds.** Half-open probes are reserved with one CAS on
//!   the state word: never more than `half_open_probes` are admitted per
//!   half-open period, whatever the threads do.
//! * **A cancelled probe cannot wedge the breaker.** A [`Permit`] dropped
//!   without an outcome (its future was cancelled, a panic unwound through
//!   it) gives its probe slot back.
//! * **Stale outcomes are ignored.** Every state change starts a new
//!   *generation*; a permit remembers the one it was admitted in, and an
//!   outcome reported after the state moved on is dropped, never counted
//!   against the new state.
//! * **Decisions on failures.** The ratios are evaluated when a failed or
//!   slow call is recorded (as Polly does), so a success never opens the
//!   breaker, and each trigger needs at least one failing (or slow) call in
//!   the window.
//!
//! ## Which calls count
//!
//! What a failure is, is yours to say: report
//! [`failure`](Permit::failure) for errors that mean the dependency is
//! unhealthy (timeouts, resets, 5xx), [`success`](Permit::success) for the
//! rest (a 404 is a healthy dependency answering), or drop the permit to
//! count nothing. The retry integration maps transient failures (as your
//! classifier decides) to failures and everything else to successes.

mod config;
mod outcome_window;
mod state;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::{
    BreakGrowth, CircuitBreakerBuilder, SlidingWindow, MAX_BUCKETS, MAX_COUNT_WINDOW, MAX_PROBES,
};
pub use state::State;

pub use crate::policy::score::CallOutcome;

use crate::infra::sync::{AtomicU64, Mutex, Ordering};
use crate::telemetry;
use config::Config;
use outcome_window::Window;
use state::{Word, CLOSED, DISABLED, HALF_OPEN, ISOLATED, OPEN};

/// A circuit breaker. Cheap to clone; clones share one state. Build one per
/// dependency with [`CircuitBreaker::builder`]; see the [module
/// docs](self).
///
/// ```
/// use rebound::CircuitBreaker;
///
/// let cb = CircuitBreaker::builder().dependency("payments").build()?;
/// let charged = cb.call(|| Ok::<_, std::io::Error>("charge ch_1"))?;
/// assert_eq!(charged, "charge ch_1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Config,
    origin: Instant,
    /// The packed [`Word`]: kind, probe counts, generation.
    state: AtomicU64,
    /// Nanoseconds after `origin` when the current opening ends. Written
    /// under `lock` before the open state is published.
    open_until: AtomicU64,
    /// Failures in a row: `gen16 << 48 | count`.
    consecutive: AtomicU64,
    window: Window,
    lock: Mutex<Guarded>,
    /// `circuit_breaker_rejected_total`, labelled once: rejections are hot
    /// while the breaker is open.
    rejected: telemetry::CounterKey,
}

/// What only transitions touch.
struct Guarded {
    /// Openings since the breaker last closed (drives break growth).
    openings: u32,
    rng: Option<fastrand::Rng>,
}

/// What the breaker remembers about an admitted call.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    gen: u32,
    kind: TicketKind,
    started: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketKind {
    Closed,
    Probe,
    Passthrough,
}

/// Why the breaker changed state, carried by a [`Transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// The failure ratio reached its threshold.
    FailureRatio,
    /// The slow-call ratio reached its threshold.
    SlowCallRatio,
    /// `consecutive_failures` calls in a row failed.
    ConsecutiveFailures,
    /// The break duration passed and a call arrived.
    BreakElapsed,
    /// A half-open probe failed or was slow.
    ProbeFailed,
    /// Every half-open probe succeeded.
    ProbesSucceeded,
    /// `isolate`, `disable` or `reset` was called.
    Manual,
}

impl Cause {
    /// A short, stable name, e.g. `failure_ratio`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::FailureRatio => "failure_ratio",
            Cause::SlowCallRatio => "slow_call_ratio",
            Cause::ConsecutiveFailures => "consecutive_failures",
            Cause::BreakElapsed => "break_elapsed",
            Cause::ProbeFailed => "probe_failed",
            Cause::ProbesSucceeded => "probes_succeeded",
            Cause::Manual => "manual",
        }
    }
}

/// A state change, as passed to
/// [`on_state_change`](CircuitBreakerBuilder::on_state_change) callbacks.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use rebound::{CircuitBreaker, breaker::{Cause, State}};
///
/// let last = Arc::new(Mutex::new(None));
/// let slot = Arc::clone(&last);
/// let cb = CircuitBreaker::consecutive_failures(1)
///     .on_state_change(move |t| *slot.lock().unwrap() = Some((t.to(), t.cause())))
///     .build()
///     .unwrap();
/// cb.try_acquire().unwrap().failure();
/// assert_eq!(*last.lock().unwrap(), Some((State::Open, Cause::ConsecutiveFailures)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: State,
    to: State,
    at: Instant,
    cause: Cause,
    generation: u32,
    break_duration: Option<Duration>,
}

impl Transition {
    /// The state left.
    pub fn from(&self) -> State {
        self.from
    }

    /// The state entered.
    pub fn to(&self) -> State {
        self.to
    }

    /// When, on the breaker's clock.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Why.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// The generation entered: one more than the last (wrapping at 2^29), so
    /// callbacks racing on different threads can be put back in order.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// How long the breaker will stay open, when it opened.
    pub fn break_duration(&self) -> Option<Duration> {
        self.break_duration
    }
}

/// The breaker refused a call.
///
/// ```
/// use rebound::{CircuitBreaker, breaker::State};
/// let cb = CircuitBreaker::builder().build().unwrap();
/// cb.isolate();
/// let refused = cb.try_acquire().unwrap_err();
/// assert_eq!(refused.state(), State::Isolated);
/// assert_eq!(refused.retry_in(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOpen {
    state: State,
    retry_in: Option<Duration>,
}

impl BreakerOpen {
    /// The state that refused: open, half-open (all probes taken) or
    /// isolated.
    pub fn state(&self) -> State {
        self.state
    }

    /// When open: how long until the breaker lets a probe through.
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_in) {
            (State::HalfOpen, _) => f.write_str("circuit breaker half-open: probes in flight"),
            (State::Isolated, _) => f.write_str("circuit breaker isolated"),
            (_, Some(d)) => write!(f, "circuit breaker open (probing again in {d:?})"),
            _ => f.write_str("circuit breaker open"),
        }
    }
}

impl std::error::Error for BreakerOpen {}

/// The error of [`CircuitBreaker::call`] and
/// [`call_async`](CircuitBreaker::call_async).
#[derive(Debug)]
pub enum CallError<E> {
    /// The breaker refused the call; the operation did not run.
    Rejected(BreakerOpen),
    /// The operation ran and failed.
    Failed(E),
}

impl<E> CallError<E> {
    /// The operation's error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Failed(e) => Some(e),
            CallError::Rejected(_) => None,
        }
    }

    /// Whether the breaker refused the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Failed(e) => Some(e),
        }
    }
}

/// What a breaker holds right now, from [`CircuitBreaker::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The state.
    pub state: State,
    /// Calls in the window (closed state; 0 otherwise).
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow_calls: u64,
    /// Half-open probe slots taken (in flight or succeeded).
    pub probes_reserved: u32,
    /// Half-open probes that succeeded.
    pub probes_succeeded: u32,
    /// When open: time left until a probe is let through.
    pub open_for: Option<Duration>,
    /// The generation (bumped on every state change).
    pub generation: u32,
}

impl CircuitBreaker {
    /// A builder with the defaults listed on each setter.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }

    /// A builder for a breaker that opens on `n` failures in a row and on
    /// nothing else; see [`CircuitBreakerBuilder::consecutive`].
    pub fn consecutive_failures(n: u32) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::consecutive(n)
    }

    pub(crate) fn from_config(cfg: Config) -> Self {
        let origin = cfg.clock.now();
        let window = Window::new(cfg.window, &cfg.clock);
        let rejected = telemetry::CounterKey::new(
            telemetry::CIRCUIT_BREAKER_REJECTED_TOTAL,
            &cfg.dependency,
            None,
        );
        CircuitBreaker {
            inner: Arc::new(Inner {
                rejected,
                cfg,
                origin,
                state: AtomicU64::new(0),
                open_until: AtomicU64::new(0),
                consecutive: AtomicU64::new(0),
                window,
                lock: Mutex::new(Guarded {
                    openings: 0,
                    rng: None,
                }),
            }),
        }
    }

    /// Asks to make one call. `Ok` carries a [`Permit`]: make the call, then
    /// report how it went on the permit (or drop it to count nothing).
    /// `Err` means the breaker is open, isolated, or half-open with every
    /// probe taken; the call must not be made.
    ///
    /// In the open state this is where the breaker notices that the break
    /// has passed: the first call after it becomes the half-open probe.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, BreakerOpen> {
        let ticket = self.inner.acquire()?;
        Ok(Permit {
            inner: &self.inner,
            ticket: Some(ticket),
        })
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit owns a handle
    /// to the breaker, so it can be stored or sent (the retry integration
    /// keeps one in each [`Attempt`](crate::Attempt)). Costs one reference
    /// count increment more.
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, BreakerOpen> {
        let ticket = self.inner.acquire()?;
        Ok(OwnedPermit {
            breaker: self.clone(),
            ticket: Some(ticket),
        })
    }

    /// Runs `op` if the breaker admits it, recording `Ok` as a success and
    /// `Err` as a failure.
    ///
    /// ```
    /// use rebound::{CircuitBreaker, breaker::CallError};
    /// let cb = CircuitBreaker::consecutive_failures(1).build().unwrap();
    /// assert!(matches!(cb.call(|| Err::<(), _>("reset")), Err(CallError::Failed("reset"))));
    /// assert!(cb.call(|| Ok::<_, &str>(())).unwrap_err().is_rejected());
    /// ```
    pub fn call<T, E>(&self, op: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let result = op();
        permit.record(if result.is_ok() {
            CallOutcome::Success
        } else {
            CallOutcome::Failure
        });
        result.map_err(CallError::Failed)
    }

    /// Awaits `fut` if the breaker admits it, recording `Ok` as a success and
    /// `Err` as a failure. Cancelling the returned future before `fut`
    /// finishes records nothing (a probe slot is given back).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use rebound::CircuitBreaker;
    /// let cb = CircuitBreaker::builder().build().unwrap();
    /// let v = cb.call_async(async { Ok::<_, std::io::Error>(7) }).await.unwrap();
    /// assert_eq!(v, 7);
    /// # }
    /// ```
    pub async fn call_async<T, E, F>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let result = fut.await;
        permit.record(if result.is_ok() {
            CallOutcome::Success
        } else {
            CallOutcome::Failure
        });
        result.map_err(CallError::Failed)
    }

    /// The current state. An open breaker whose break has passed still reads
    /// [`State::Open`] until a call arrives and becomes the probe.
    #[inline]
    pub fn state(&self) -> State {
        Word::unpack(self.inner.state.load(Ordering::Acquire)).state()
    }

    /// The state, the window's counts and the probe slots, read without a
    /// lock (the parts may be from slightly different instants under
    /// concurrent use).
    pub fn snapshot(&self) -> Snapshot {
        let inner = &*self.inner;
        let w = Word::unpack(inner.state.load(Ordering::Acquire));
        let now = inner.cfg.clock.now();
        let t = if w.kind == CLOSED {
            inner.window.tally(w.gen)
        } else {
            outcome_window::Tally::default()
        };
        let open_for = (w.kind == OPEN).then(|| {
            let until = inner.open_until.load(Ordering::Acquire);
            Duration::from_nanos(until.saturating_sub(inner.nanos(now)))
        });
        Snapshot {
            state: w.state(),
            calls: t.calls,
            failures: t.failures,
            slow_calls: t.slow,
            probes_reserved: w.reserved,
            probes_succeeded: w.successes,
            open_for,
            generation: w.gen,
        }
    }

    /// Holds the breaker open by hand: every call is refused until
    /// [`reset`](Self::reset). For maintenance windows and kill switches.
    pub fn isolate(&self) {
        self.inner.force(ISOLATED);
    }

    /// Switches the breaker off: every call is admitted and nothing is
    /// recorded until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.inner.force(DISABLED);
    }

    /// The sliding window the breaker judges the dependency on.
    pub fn window(&self) -> SlidingWindow {
        self.inner.cfg.window
    }

    /// Closes the breaker from any state, with an empty window and the break
    /// growth reset. Permits admitted before are ignored when they report.
    pub fn reset(&self) {
        self.inner.force(CLOSED);
    }

    /// The dependency name used as the metrics label.
    pub fn dependency(&self) -> &str {
        &self.inner.cfg.dependency
    }

    /// The breaker's clock.
    pub fn clock(&self) -> &crate::Clock {
        &self.inner.cfg.clock
    }

    /// Whether two handles share one breaker.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("dependency", &self.inner.cfg.dependency)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

const G16_SHIFT: u32 = 48;
const RUN_MASK: u64 = (1 << G16_SHIFT) - 1;

impl Inner {
    #[inline]
    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    fn started(&self) -> Option<Instant> {
        self.cfg.slow_call_duration.map(|_| self.cfg.clock.now())
    }

    #[inline]
    fn acquire(&self) -> Result<Ticket, BreakerOpen> {
        loop {
            let raw = self.state.load(Ordering::Acquire);
            let w = Word::unpack(raw);
            match w.kind {
                CLOSED => {
                    return Ok(Ticket {
                        gen: w.gen,
                        kind: TicketKind::Closed,
                        started: self.started(),
                    })
                }
                DISABLED => {
                    return Ok(Ticket {
                        gen: w.gen,
                        kind: TicketKind::Passthrough,
                        started: None,
                    })
                }
                ISOLATED => return Err(self.reject(State::Isolated, None)),
                OPEN => {
                    let now = self.cfg.clock.now();
                    let at = self.nanos(now);
                    let until = self.open_until.load(Ordering::Acquire);
                    if at < until {
                        return Err(
                            self.reject(State::Open, Some(Duration::from_nanos(until - at)))
                        );
                    }
                    if let Some(ticket) = self.half_open(raw, now) {
                        return Ok(ticket);
                    }
                }
                _ => {
                    if w.reserved >= self.cfg.half_open_probes {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    let next = Word {
                        reserved: w.reserved + 1,
                        ..w
                    };
                    if self
                        .state
                        .compare_exchange(raw, next.pack(), Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return Ok(Ticket {
                            gen: w.gen,
                            kind: TicketKind::Probe,
                            started: self.started(),
                        });
                    }
                }
            }
        }
    }

    #[cold]
    fn reject(&self, state: State, retry_in: Option<Duration>) -> BreakerOpen {
        self.rejected.incr();
        BreakerOpen { state, retry_in }
    }

    /// Open → HalfOpen, taking the first probe slot for the caller. `None`
    /// when the state moved on meanwhile (the caller looks again).
    #[cold]
    fn half_open(&self, raw: u64, now: Instant) -> Option<Ticket> {
        let mut g = self.guard();
        if self.state.load(Ordering::Acquire) != raw {
            return None;
        }
        let t = self.transition(&mut g, raw, HALF_OPEN, Cause::BreakElapsed, now)?;
        drop(g);
        self.notify(&t);
        Some(Ticket {
            gen: t.generation,
            kind: TicketKind::Probe,
            started: self.started(),
        })
    }

    fn guard(&self) -> crate::infra::sync::MutexGuard<'_, Guarded> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves from exactly the state word `raw` to a new state `to`, under the
    /// lock. Lock-free writers (probe reserve and release) may change the
    /// probe counts meanwhile; the generation and kind cannot change. Returns
    /// `None` if the generation or kind differ from `raw`'s.
    fn transition(
        &self,
        g: &mut Guarded,
        raw: u64,
        to: u64,
        cause: Cause,
        now: Instant,
    ) -> Option<Transition> {
        let from = Word::unpack(raw);
        let mut cur = raw;
        loop {
            let w = Word::unpack(cur);
            if w.kind != from.kind || w.gen != from.gen {
                return None;
            }
            let mut next = w.next(to);
            let mut break_duration = None;
            match to {
                OPEN => {
                    let n = g.openings.saturating_add(1);
                    let rng = g.rng.get_or_insert_with(|| self.cfg.random.rng());
                    let d = self.cfg.jittered(self.cfg.break_for(n), rng);
                    self.open_until.store(
                        self.nanos(now).saturating_add(d.as_nanos() as u64),
                        Ordering::Release,
                    );
                    break_duration = Some(d);
                }
                HALF_OPEN => next.reserved = 1,
                CLOSED => {
                    self.window.reset(next.gen);
                    self.consecutive
                        .store(u64::from(next.gen & 0xFFFF) << G16_SHIFT, Ordering::Release);
                }
                _ => {}
            }
            match self
                .state
                .compare_exchange(cur, next.pack(), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    match to {
                        OPEN => g.openings = g.openings.saturating_add(1),
                        CLOSED => g.openings = 0,
                        _ => {}
                    }
                    let t = Transition {
                        from: w.state(),
                        to: next.state(),
                        at: now,
                        cause,
                        generation: next.gen,
                        break_duration,
                    };
                    self.emit(&t);
                    return Some(t);
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Telemetry of a transition, under the lock so the gauge ends on the
    /// last state.
    fn emit(&self, t: &Transition) {
        let dep = &self.cfg.dependency;
        metrics::gauge!(
            telemetry::CIRCUIT_BREAKER_STATE,
            telemetry::DEPENDENCY_LABEL => metrics::SharedString::from(Arc::clone(dep))
        )
        .set(t.to.gauge_value());
        if t.to == State::Open {
            telemetry::incr(telemetry::CIRCUIT_BREAKER_OPEN_TOTAL, dep);
            tracing::warn!(
                dependency = &**dep,
                from = t.from.as_str(),
                cause = t.cause.as_str(),
                break_duration = ?t.break_duration,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                dependency = &**dep,
                from = t.from.as_str(),
                to = t.to.as_str(),
                cause = t.cause.as_str(),
                "circuit breaker state changed"
            );
        }
    }

    fn notify(&self, t: &Transition) {
        for l in &self.cfg.listeners {
            l(t);
        }
    }

    fn force(&self, to: u64) {
        let now = self.cfg.clock.now();
        let mut g = self.guard();
        let raw = self.state.load(Ordering::Acquire);
        let from = Word::unpack(raw).kind;
        if from == to && to != CLOSED {
            return;
        }
        let t = self.transition(&mut g, raw, to, Cause::Manual, now);
        drop(g);
        if let Some(t) = t.filter(|t| t.from != t.to) {
            self.notify(&t);
        }
    }

    #[inline]
    fn record(&self, ticket: Ticket, outcome: CallOutcome, elapsed: Option<Duration>) {
        let failure = outcome == CallOutcome::Failure;
        let slow = match self.cfg.slow_call_duration {
            None => false,
            Some(threshold) => {
                let e = elapsed.or_else(|| {
                    ticket
                        .started
                        .map(|s| self.cfg.clock.now().saturating_duration_since(s))
                });
                e.is_some_and(|e| e >= threshold)
            }
        };
        match ticket.kind {
            TicketKind::Passthrough => {}
            TicketKind::Closed => self.record_closed(ticket.gen, failure, slow),
            TicketKind::Probe => self.record_probe(ticket.gen, failure, slow),
        }
    }

    #[inline]
    fn record_closed(&self, gen: u32, failure: bool, slow: bool) {
        let w = Word::unpack(self.state.load(Ordering::Acquire));
        if w.kind != CLOSED || w.gen != gen {
            return; // admitted under an older state
        }
        let cfg = &self.cfg;
        let mut cause = None;
        if let Some(n) = cfg.consecutive_failures {
            if failure {
                if self.bump_run(gen) >= u64::from(n) {
                    cause = Some(Cause::ConsecutiveFailures);
                }
            } else {
                self.clear_run(gen);
            }
        }
        let want = failure || slow;
        if let Some(t) = self.window.record(gen, failure, slow, want) {
            if cause.is_none() && t.calls >= u64::from(cfg.min_calls) {
                let calls = t.calls as f64;
                if t.failures > 0 && t.failures as f64 >= cfg.failure_ratio * calls {
                    cause = Some(Cause::FailureRatio);
                } else if cfg.slow_call_duration.is_some()
                    && t.slow > 0
                    && t.slow as f64 >= cfg.slow_call_ratio * calls
                {
                    cause = Some(Cause::SlowCallRatio);
                }
            }
        }
        if let Some(cause) = cause {
            self.trip(gen, CLOSED, cause, cfg.clock.now());
        }
    }

    /// One more failure in a row; returns the run's length.
    #[inline]
    fn bump_run(&self, gen: u32) -> u64 {
        let tag = u64::from(gen & 0xFFFF) << G16_SHIFT;
        let prev = self
            .consecutive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(if w & !RUN_MASK == tag { w + 1 } else { tag | 1 })
            })
            .unwrap_or(0);
        if prev & !RUN_MASK == tag {
            (prev & RUN_MASK) + 1
        } else {
            1
        }
    }

    /// A success ends the run. Reads first, so the common case (no run)
    /// writes nothing.
    #[inline]
    fn clear_run(&self, gen: u32) {
        let w = self.consecutive.load(Ordering::Relaxed);
        if w & RUN_MASK != 0 {
            let tag = u64::from(gen & 0xFFFF) << G16_SHIFT;
            let _ = self
                .consecutive
                .compare_exchange(w, tag, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    #[cold]
    fn trip(&self, gen: u32, kind: u64, cause: Cause, now: Instant) {
        let mut g = self.guard();
        let raw = self.state.load(Ordering::Acquire);
        let w = Word::unpack(raw);
        if w.kind != kind || w.gen != gen {
            return; // another thread got there first
        }
        let t = self.transition(&mut g, raw, OPEN, cause, now);
        drop(g);
        if let Some(t) = t {
            self.notify(&t);
        }
    }

    #[cold]
    fn record_probe(&self, gen: u32, failure: bool, slow: bool) {
        let now = self.cfg.clock.now();
        if failure || slow {
            return self.trip(gen, HALF_OPEN, Cause::ProbeFailed, now);
        }
        let mut g = self.guard();
        loop {
            let raw = self.state.load(Ordering::Acquire);
            let w = Word::unpack(raw);
            if w.kind != HALF_OPEN || w.gen != gen {
                return; // stale: the half-open period this probe belonged to ended
            }
            if w.successes + 1 >= self.cfg.half_open_probes {
                let t = self.transition(&mut g, raw, CLOSED, Cause::ProbesSucceeded, now);
                drop(g);
                if let Some(t) = t {
                    self.notify(&t);
                }
                return;
            }
            let next = Word {
                successes: w.successes + 1,
                ..w
            };
            if self
                .state
                .compare_exchange(raw, next.pack(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// A permit dropped without an outcome: a probe gives its slot back.
    #[inline]
    fn release(&self, ticket: Ticket) {
        if ticket.kind != TicketKind::Probe {
            return;
        }
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |raw| {
                let w = Word::unpack(raw);
                (w.kind == HALF_OPEN && w.gen == ticket.gen && w.reserved > w.successes).then(
                    || {
                        Word {
                            reserved: w.reserved - 1,
                            ..w
                        }
                        .pack()
                    },
                )
            });
    }
}

/// Leave to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report how the call went with [`success`](Self::success),
/// [`failure`](Self::failure) or [`record`](Self::record). Dropping the
/// permit without reporting (the call was cancelled, or its outcome says
/// nothing about the dependency's health) records nothing; a half-open probe
/// gives its slot back.
///
/// ```
/// use rebound::{CircuitBreaker, breaker::CallOutcome};
///
/// let cb = CircuitBreaker::builder().build().unwrap();
/// let permit = cb.try_acquire().expect("closed");
/// let status = 503; // make the call here
/// permit.record(if status >= 500 { CallOutcome::Failure } else { CallOutcome::Success });
/// assert_eq!(cb.snapshot().failures, 1);
/// ```
#[must_use = "report the call's outcome on the permit, or drop it to record nothing"]
pub struct Permit<'a> {
    inner: &'a Inner,
    ticket: Option<Ticket>,
}

/// Like [`Permit`] but owning a handle to its breaker, from
/// [`CircuitBreaker::try_acquire_owned`].
///
/// ```
/// use rebound::CircuitBreaker;
///
/// let cb = CircuitBreaker::builder().build().unwrap();
/// let permit = cb.try_acquire_owned().unwrap();
/// std::thread::spawn(move || permit.success()).join().unwrap();
/// assert_eq!(cb.snapshot().calls, 1);
/// ```
#[must_use = "report the call's outcome on the permit, or drop it to record nothing"]
pub struct OwnedPermit {
    breaker: CircuitBreaker,
    ticket: Option<Ticket>,
}

macro_rules! permit_methods {
    ($inner:ident) => {
        /// The call succeeded. With slow-call detection on, its duration is
        /// measured from when the permit was granted.
        #[inline]
        pub fn success(self) {
            self.record(CallOutcome::Success)
        }

        /// The call failed.
        #[inline]
        pub fn failure(self) {
            self.record(CallOutcome::Failure)
        }

        /// Records `outcome`, measuring the call's duration (for slow-call
        /// detection) from when the permit was granted.
        #[inline]
        pub fn record(mut self, outcome: CallOutcome) {
            if let Some(t) = self.ticket.take() {
                self.$inner().record(t, outcome, None);
            }
        }

        /// Records `outcome` for a call that took `elapsed` (measured by
        /// the caller).
        #[inline]
        pub fn record_elapsed(mut self, outcome: CallOutcome, elapsed: Duration) {
            if let Some(t) = self.ticket.take() {
                self.$inner().record(t, outcome, Some(elapsed));
            }
        }

        /// Whether this call is a half-open probe.
        pub fn is_probe(&self) -> bool {
            self.ticket.is_some_and(|t| t.kind == TicketKind::Probe)
        }

        /// The breaker generation this permit was admitted in (see
        /// [`Transition::generation`]); its outcome counts only while the
        /// breaker is still in that generation.
        pub fn generation(&self) -> u32 {
            self.ticket.map_or(0, |t| t.gen)
        }
    };
}

impl Permit<'_> {
    #[inline]
    fn inner(&self) -> &Inner {
        self.inner
    }
    permit_methods!(inner);
}

impl OwnedPermit {
    #[inline]
    fn inner(&self) -> &Inner {
        &self.breaker.inner
    }
    permit_methods!(inner);

    /// The breaker this permit belongs to.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.inner.release(t);
        }
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.breaker.inner.release(t);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("dependency", &self.breaker.inner.cfg.dependency)
            .field("ticket", &self.ticket)
            .finish()
    }
}
