//! Time, injected: the one clock of the workspace.
//!
//! Every time-dependent decision in rebound reads the time from a [`Clock`]
//! handed to the policy, and every wait a driver makes — a backoff delay, an
//! attempt timeout, a hedge delay, a bulkhead's queue wait — waits on it.
//! Nothing reads [`Instant::now`] or sleeps on tokio directly. That is what
//! lets the very same code run in real time (in production), in tokio's
//! paused time (in your tests) and in virtual time (in `rebound-sim`).
//!
//! There are three kinds of clock, and you say which one you mean:
//!
//! | clock | `now()` | `wall()` | waits |
//! |---|---|---|---|
//! | [`Clock::system`] | the OS monotonic clock ([`Instant::now`]) | the OS wall clock ([`SystemTime::now`]) | tokio timers (or the thread) |
//! | [`Clock::tokio`] | tokio's clock, which `#[tokio::test(start_paused = true)]` pauses and advances | the system time when the process first read this clock, plus tokio's time since | tokio timers |
//! | [`Clock::manual`] | moves only when told ([`ManualClock::advance`]) | its wall origin plus the time advanced | see below |
//!
//! [`Clock::default`] is [`Clock::tokio`] with the `tokio` feature (on by
//! default) — in production tokio's clock *is* the OS clock, and your tests
//! can pause it — and [`Clock::system`] without it.
//!
//! **Two kinds of wait.** A driver waits in one of two ways, and the
//! difference matters on a manual clock:
//!
//! * [`Clock::sleep`] is an *idle* wait — a backoff delay with nothing else
//!   in flight. On a manual clock it advances the clock by the delay and
//!   returns at once: nothing can happen meanwhile, so jumping is what
//!   tokio's paused clock does when its runtime is idle. Executors driven by
//!   a manual clock therefore finish instantly and deterministically.
//! * A [`Timer`] ([`Clock::timer`], [`Clock::timeout`]) *races* other work
//!   — an attempt timeout, a hedge delay. On a manual clock it fires only
//!   when something else moves the clock past its deadline (your test, an
//!   operation that advances the clock, another driver's idle wait); it
//!   never moves the clock itself.
//!
//! **Sliding windows read a coarse clock.** Ratio budgets, the adaptive
//! throttle and time-based breaker windows count events in slices of about
//! a second and consult the time on every call. On the system and tokio
//! clocks they read the operating system's *coarse* monotonic clock
//! (`CLOCK_MONOTONIC_COARSE` on Linux and Android: a few nanoseconds a read
//! against ~25 ns for a precise one, with the resolution of a kernel tick,
//! 1–4 ms; elsewhere the precise clock). Windows on a manual clock read it
//! exactly. To make windows on the tokio clock follow tokio's paused time in
//! your tests, enable rebound's `test-util` feature in your
//! dev-dependencies — the same switch tokio itself needs (`tokio/test-util`)
//! before its clock can be paused, which it also enables.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Clock, ManualClock};
//!
//! let (clock, time) = Clock::manual();
//! let start = clock.now();
//! let wall = clock.wall();
//! time.advance(Duration::from_secs(30));
//! assert_eq!(clock.now() - start, Duration::from_secs(30));
//! assert_eq!(clock.wall().duration_since(wall).unwrap(), Duration::from_secs(30));
//! ```

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

mod manual;
mod stopwatch;
#[cfg(feature = "tokio")]
mod timer;

pub use manual::ManualClock;
pub(crate) use stopwatch::Stopwatch;
#[cfg(feature = "tokio")]
pub use timer::{Timer, WithTimeout};

/// A source of time, cheap to clone and share. See the [module docs](self)
/// for the kinds of clock.
#[derive(Clone)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone)]
pub(crate) enum Kind {
    System,
    #[cfg(feature = "tokio")]
    Tokio,
    Manual(ManualClock),
}

impl Default for Clock {
    /// [`Clock::tokio`] with the `tokio` feature, else [`Clock::system`].
    fn default() -> Self {
        #[cfg(feature = "tokio")]
        {
            Clock::tokio()
        }
        #[cfg(not(feature = "tokio"))]
        {
            Clock::system()
        }
    }
}

impl Clock {
    /// The operating system's clocks: [`Instant::now`] and
    /// [`SystemTime::now`]. It never follows tokio's paused time; for code
    /// tested with paused time, use [`Clock::tokio`] (the default).
    pub const fn system() -> Self {
        Clock { kind: Kind::System }
    }

    /// tokio's clock: [`tokio::time::Instant::now`], which a
    /// `#[tokio::test(start_paused = true)]` test pauses and advances. Its
    /// wall time is the system time when the process first read this clock
    /// plus tokio's time since, so it advances with paused time too (and,
    /// over days, may drift from an NTP-corrected wall clock by the drift of
    /// the monotonic clock: parts per million).
    ///
    /// The default clock of every policy (feature `tokio`).
    #[cfg(feature = "tokio")]
    pub const fn tokio() -> Self {
        Clock { kind: Kind::Tokio }
    }

    /// A new manual clock and a handle to this clock reading it.
    ///
    /// Shorthand for `let m = ManualClock::new(); (Clock::from(m.clone()), m)`.
    pub fn manual() -> (Self, ManualClock) {
        let m = ManualClock::new();
        (Clock::from(m.clone()), m)
    }

    /// The current instant.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.kind {
            Kind::System => Instant::now(),
            #[cfg(feature = "tokio")]
            Kind::Tokio => tokio::time::Instant::now().into_std(),
            Kind::Manual(m) => m.now(),
        }
    }

    /// The current wall-clock time: what to store when a time must mean the
    /// same to another process (a lease's expiry, a job's enqueue time).
    pub fn wall(&self) -> SystemTime {
        match &self.kind {
            Kind::System => SystemTime::now(),
            #[cfg(feature = "tokio")]
            Kind::Tokio => tokio_wall(),
            Kind::Manual(m) => m.wall(),
        }
    }

    /// Whether this clock only moves by hand.
    pub fn is_manual(&self) -> bool {
        matches!(self.kind, Kind::Manual(_))
    }

    /// The manual clock behind this clock, if it is one.
    pub fn as_manual(&self) -> Option<&ManualClock> {
        match &self.kind {
            Kind::Manual(m) => Some(m),
            _ => None,
        }
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Blocks the current thread for `duration` on this clock.
    ///
    /// On the system and tokio clocks this is [`std::thread::sleep`]; on a
    /// manual clock it advances the clock by `duration` and returns at once.
    pub fn sleep_blocking(&self, duration: Duration) {
        match &self.kind {
            Kind::Manual(m) => m.advance(duration),
            _ => std::thread::sleep(duration),
        }
    }

    /// Waits for `duration`, idle: a backoff delay with nothing else in
    /// flight.
    ///
    /// On the system and tokio clocks this is a tokio timer; on a manual
    /// clock, when first polled, it moves the clock to the end of the wait
    /// and is done. For a wait that races other work, use
    /// [`timer`](Self::timer).
    #[cfg(feature = "tokio")]
    pub fn sleep(&self, duration: Duration) -> Timer {
        Timer::idle(self, duration)
    }

    /// A timer firing at `deadline` on this clock, which races other work
    /// and can be [reset](Timer::reset). On a manual clock it fires when
    /// something else moves the clock to `deadline`.
    #[cfg(feature = "tokio")]
    pub fn timer(&self, deadline: Instant) -> Timer {
        Timer::new(self, deadline)
    }

    /// A timer firing `after` from now; see [`timer`](Self::timer). An
    /// `after` too large to represent never fires.
    #[cfg(feature = "tokio")]
    pub fn timer_after(&self, after: Duration) -> Timer {
        Timer::after(self, after)
    }

    /// `fut`, cut off (dropped) when `limit` has passed on this clock:
    /// `Err(Elapsed)` then. `None` for no limit.
    #[cfg(feature = "tokio")]
    pub fn timeout<F: std::future::Future>(
        &self,
        limit: Option<Duration>,
        fut: F,
    ) -> WithTimeout<F> {
        WithTimeout::new(self, limit, fut)
    }
}

/// The wall time of the tokio clock: a process-wide anchor taken at the
/// first read, moved by tokio's time since.
#[cfg(feature = "tokio")]
fn tokio_wall() -> SystemTime {
    use std::sync::OnceLock;
    static ANCHOR: OnceLock<(SystemTime, Instant)> = OnceLock::new();
    let &(wall, at) = ANCHOR.get_or_init(|| (SystemTime::now(), Instant::now()));
    let now = tokio::time::Instant::now().into_std();
    match now.checked_duration_since(at) {
        Some(ahead) => wall.checked_add(ahead).unwrap_or(wall),
        None => wall.checked_sub(at - now).unwrap_or(wall),
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::System => f.write_str("Clock::System"),
            #[cfg(feature = "tokio")]
            Kind::Tokio => f.write_str("Clock::Tokio"),
            Kind::Manual(m) => write!(f, "Clock::Manual(+{:?})", m.elapsed()),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(m: ManualClock) -> Self {
        Clock {
            kind: Kind::Manual(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_goes_back() {
        let m = ManualClock::new();
        m.set_elapsed(Duration::from_secs(5));
        m.set_elapsed(Duration::from_secs(2));
        assert_eq!(m.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn sleeping_on_a_manual_clock_advances_it() {
        let (clock, m) = Clock::manual();
        clock.sleep_blocking(Duration::from_secs(3));
        assert_eq!(m.elapsed(), Duration::from_secs(3));
    }

    #[test]
    fn wall_time_of_a_manual_clock_moves_with_it() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let m = ManualClock::starting_at(start);
        let clock = Clock::from(m.clone());
        m.advance(Duration::from_millis(1500));
        assert_eq!(clock.wall(), start + Duration::from_millis(1500));
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time_on_both_readings() {
        let clock = Clock::tokio();
        let (t0, w0) = (clock.now(), clock.wall());
        clock.sleep(Duration::from_secs(60)).await;
        assert!(clock.now() - t0 >= Duration::from_secs(60));
        assert!(clock.wall().duration_since(w0).unwrap() >= Duration::from_secs(60));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn the_default_clock_is_tokio_s() {
        assert!(matches!(Clock::default().kind, Kind::Tokio));
    }
}
