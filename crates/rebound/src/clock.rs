//! Time, injected.
//!
//! Every time-dependent decision in rebound reads the time from a [`Clock`]
//! handed to the policy, never from [`Instant::now`] directly. That is what
//! lets the very same policy code run in real time (in production), in tokio's
//! paused time (in your tests) and in virtual time (in `rebound-sim`).
//!
//! * [`Clock::system`] — the default. Monotonic. When the `tokio` feature is
//!   on it reads [`tokio::time::Instant::now`], so it follows tokio's paused
//!   test clock (`#[tokio::test(start_paused = true)]`) and the real clock
//!   everywhere else.
//! * [`ManualClock`] — time that only moves when you move it. Sleeping on a
//!   manual clock advances it instead of waiting, so executors driven by one
//!   finish instantly and deterministically.
//!
//! **Sliding windows read a coarse clock.** Ratio budgets, the adaptive
//! throttle and time-based breaker windows count events in slices of about
//! a second, and consult the time on every call; on the system clock they
//! read the operating system's coarse monotonic clock
//! (`CLOCK_MONOTONIC_COARSE` on Linux and Android: a few nanoseconds a read
//! against ~25 ns for a precise one, with the resolution of a kernel tick,
//! 1–4 ms; elsewhere the precise clock). A window built inside a tokio
//! runtime whose time is paused reads tokio's time instead, so
//! `#[tokio::test(start_paused = true)]` tests see windows slide as they
//! advance time; one built before pausing keeps the real clock. Windows on
//! a manual clock read it exactly.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Clock, ManualClock};
//!
//! let manual = ManualClock::new();
//! let clock = Clock::from(manual.clone());
//! let start = clock.now();
//! manual.advance(Duration::from_secs(30));
//! assert_eq!(clock.now() - start, Duration::from_secs(30));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source of monotonic time, cheap to clone and share.
///
/// See the [module docs](self) for the kinds of clock.
#[derive(Clone, Default)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Default)]
enum Kind {
    #[default]
    System,
    Manual(ManualClock),
}

impl Clock {
    /// The monotonic system clock (tokio-aware with the `tokio` feature).
    /// This is the default clock of every policy.
    pub const fn system() -> Self {
        Clock { kind: Kind::System }
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
            Kind::System => system_now(),
            Kind::Manual(m) => m.now(),
        }
    }

    /// Whether this clock only moves by hand.
    pub fn is_manual(&self) -> bool {
        matches!(self.kind, Kind::Manual(_))
    }

    /// Blocks the current thread for `duration` on this clock.
    ///
    /// On the system clock this is [`std::thread::sleep`]; on a manual clock
    /// it advances the clock by `duration` and returns at once.
    pub fn sleep_blocking(&self, duration: Duration) {
        match &self.kind {
            Kind::System => std::thread::sleep(duration),
            Kind::Manual(m) => m.advance(duration),
        }
    }

    /// Waits for `duration` on this clock.
    ///
    /// On the system clock this is [`tokio::time::sleep`] (so it honours
    /// tokio's paused time); on a manual clock it advances the clock by
    /// `duration` and yields once.
    #[cfg(feature = "tokio")]
    pub async fn sleep(&self, duration: Duration) {
        match &self.kind {
            Kind::System => tokio::time::sleep(duration).await,
            Kind::Manual(m) => {
                m.advance(duration);
                tokio::task::yield_now().await;
            }
        }
    }
}

#[inline]
fn system_now() -> Instant {
    #[cfg(feature = "tokio")]
    {
        tokio::time::Instant::now().into_std()
    }
    #[cfg(not(feature = "tokio"))]
    {
        Instant::now()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::System => f.write_str("Clock::System"),
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

/// A clock that moves only when told to. Clones share the same time.
///
/// Use it in tests and simulations; hand a [`Clock`] made from it to policies.
///
/// ```
/// use std::time::Duration;
/// use rebound::ManualClock;
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now() - t0, Duration::from_millis(250));
/// assert_eq!(clock.elapsed(), Duration::from_millis(250));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    origin: Instant,
    nanos: AtomicU64,
}

impl ManualClock {
    /// A manual clock standing at an arbitrary origin instant.
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                origin: Instant::now(),
                nanos: AtomicU64::new(0),
            }),
        }
    }

    /// The current instant: the origin plus everything advanced so far.
    #[inline]
    pub fn now(&self) -> Instant {
        self.inner.origin + Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }

    /// The instant this clock started at.
    pub fn origin(&self) -> Instant {
        self.inner.origin
    }

    /// Time advanced since the origin.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .inner
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Moves the clock to `origin + elapsed`. Time never goes backwards: an
    /// earlier value is ignored.
    pub fn set_elapsed(&self, elapsed: Duration) {
        let target = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.inner.nanos.fetch_max(target, Ordering::AcqRel);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

/// Nanoseconds elapsed on a [`Clock`] since a stopwatch was made, read as
/// cheaply as the clock allows: what sliding windows (ratio budgets, the
/// adaptive throttle) slice into buckets.
///
/// Windows measure seconds in buckets of ~1 s, where a precise clock read
/// (~25–30 ns through the vDSO on a VM) would cost more than the rest of a
/// budget check. So on the system clock a stopwatch reads the operating
/// system's *coarse* monotonic clock — `CLOCK_MONOTONIC_COARSE` on Linux and
/// Android, ~5 ns, advancing once per kernel tick (1–4 ms) — and elsewhere
/// [`Instant::now`]. On a manual clock, and on the system clock when the
/// stopwatch is made inside a tokio runtime whose time is paused (a
/// `#[tokio::test(start_paused = true)]`), it reads [`Clock::now`], so
/// windows slide in virtual time.
pub(crate) struct Stopwatch {
    source: Source,
}

enum Source {
    Coarse { origin: u64 },
    Clock { clock: Clock, origin: Instant },
}

impl Stopwatch {
    /// A stopwatch on `clock`, starting now.
    pub(crate) fn new(clock: Clock) -> Self {
        let source = if matches!(clock.kind, Kind::System) && !tokio_time_is_paused() {
            Source::Coarse {
                origin: coarse::nanos(),
            }
        } else {
            Source::Clock {
                origin: clock.now(),
                clock,
            }
        };
        Stopwatch { source }
    }

    /// Nanoseconds since the stopwatch was made (saturating at ~584 years).
    #[inline(always)]
    pub(crate) fn nanos(&self) -> u64 {
        match &self.source {
            Source::Coarse { origin } => coarse::nanos().saturating_sub(*origin),
            Source::Clock { clock, origin } => {
                let since = clock.now().saturating_duration_since(*origin);
                // A u128 conversion would cost more than the rest of a
                // budget check.
                since
                    .as_secs()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::from(since.subsec_nanos()))
            }
        }
    }
}

impl fmt::Debug for Stopwatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Coarse { .. } => f.write_str("Stopwatch::Coarse"),
            Source::Clock { clock, .. } => write!(f, "Stopwatch({clock:?})"),
        }
    }
}

/// Whether this thread is inside a tokio runtime whose clock is paused.
///
/// tokio offers no query for it; its paused clock, though, stands still
/// between two reads unless the runtime parks, while the real one moves. The
/// probe spins for at most a microsecond, once per window built.
fn tokio_time_is_paused() -> bool {
    #[cfg(feature = "tokio")]
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return false;
        }
        let virtual_start = tokio::time::Instant::now();
        let real_start = Instant::now();
        while real_start.elapsed() < Duration::from_micros(1) {
            std::hint::spin_loop();
        }
        tokio::time::Instant::now() == virtual_start
    }
    #[cfg(not(feature = "tokio"))]
    {
        false
    }
}

mod coarse {
    /// The coarse monotonic clock in nanoseconds.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    pub(super) fn nanos() -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        // Monotonic time (time since boot) is never negative, and would take
        // 584 years to overflow.
        (t.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(t.tv_nsec as u64)
    }

    /// No coarse clock here: the precise one, from a process-wide origin.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    #[inline]
    pub(super) fn nanos() -> u64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let since = ORIGIN.get_or_init(Instant::now).elapsed();
        since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()))
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

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn system_clock_follows_tokio_paused_time() {
        let clock = Clock::system();
        let t0 = clock.now();
        clock.sleep(Duration::from_secs(60)).await;
        assert!(clock.now() - t0 >= Duration::from_secs(60));
    }

    #[test]
    fn stopwatch_on_a_manual_clock_reads_it() {
        let (clock, m) = Clock::manual();
        let w = Stopwatch::new(clock);
        m.advance(Duration::from_millis(1500));
        assert_eq!(w.nanos(), 1_500_000_000);
    }

    #[test]
    fn stopwatch_on_the_system_clock_is_coarse_and_moves() {
        let w = Stopwatch::new(Clock::system());
        assert!(matches!(w.source, Source::Coarse { .. }), "{w:?}");
        let first = w.nanos();
        // The coarse clock moves once per kernel tick (at most 10 ms apart
        // on any Linux configuration); spin until it has.
        let start = Instant::now();
        while w.nanos() == first {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "coarse clock stuck"
            );
            std::hint::spin_loop();
        }
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn stopwatch_follows_tokio_paused_time() {
        let w = Stopwatch::new(Clock::system());
        assert!(matches!(w.source, Source::Clock { .. }), "{w:?}");
        tokio::time::advance(Duration::from_secs(7)).await;
        assert!(w.nanos() >= 7_000_000_000);
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn stopwatch_in_a_running_runtime_is_coarse() {
        let w = Stopwatch::new(Clock::system());
        assert!(matches!(w.source, Source::Coarse { .. }), "{w:?}");
    }
}
