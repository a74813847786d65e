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
//! again .
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

mod builder;
mod core;
mod error;
mod outcome_window;
mod permit;
mod state;
mod transition;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use builder::{
    BreakGrowth, CircuitBreakerBuilder, SlidingWindow, DEFAULT_TIME_BUCKETS, MAX_BUCKETS,
    MAX_COUNT_WINDOW, MAX_PROBES,
};
pub use state::State;

pub use crate::policy::score::CallOutcome;

pub use error::{BreakerOpen, CallError};
pub use permit::{OwnedPermit, Permit};
pub use transition::{Snapshot, Transition, TransitionCause};

use crate::infra::sync::Ordering;
use core::Inner;
use state::{Word, CLOSED, DISABLED, ISOLATED, OPEN};

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

    pub(crate) fn from_config(cfg: builder::Config) -> Self {
        let breaker = CircuitBreaker {
            inner: Arc::new(Inner::new(cfg)),
        };
        breaker.observe();
        breaker
    }

    /// Describes the breaker's metrics, registers its series (the state
    /// gauge reads closed) and lists it in [`crate::state`].
    fn observe(&self) {
        use crate::telemetry;
        let dep = &self.inner.cfg.dependency;
        telemetry::register_all(
            &[
                telemetry::CIRCUIT_BREAKER_OPEN_TOTAL,
                telemetry::CIRCUIT_BREAKER_REJECTED_TOTAL,
            ],
            dep,
        );
        metrics::gauge!(
            telemetry::CIRCUIT_BREAKER_STATE,
            telemetry::DEPENDENCY_LABEL => metrics::SharedString::from(Arc::clone(dep))
        )
        .set(self.state().gauge_value());
        crate::state::register(dep, &self.inner, |inner| {
            let s = CircuitBreaker { inner }.snapshot();
            crate::state::Component::Breaker(crate::state::BreakerState {
                state: s.state.as_str(),
                calls: s.calls,
                failures: s.failures,
                slow_calls: s.slow_calls,
                open_for_ms: s.open_for.map(crate::state::millis),
            })
        });
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

    /// The `host` label of its metrics, if one was set with
    /// [`CircuitBreakerBuilder::host`](crate::CircuitBreakerBuilder::host).
    pub fn host(&self) -> Option<&str> {
        self.inner.cfg.host.as_deref()
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
