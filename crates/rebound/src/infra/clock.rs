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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

#[cfg(feature = "tokio")]
mod timer;
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

/// A clock that moves only when told to. Clones share the same time.
///
/// Use it in tests and simulations; hand a [`Clock`] made from it to
/// policies. Timers on it ([`Clock::timer`]) fire when it is moved past
/// their deadline, waking whoever waits on them.
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
    wall_origin: SystemTime,
    nanos: AtomicU64,
    timers: Mutex<Timers>,
}

/// The wakers of timers waiting on a manual clock.
#[derive(Default)]
pub(crate) struct Timers {
    #[cfg(feature = "tokio")]
    next_id: u64,
    /// (id, deadline in nanoseconds since the origin, waker)
    waiting: Vec<(u64, u64, std::task::Waker)>,
}

impl ManualClock {
    /// A manual clock standing at an arbitrary origin instant, with the
    /// current system time as its wall-clock origin.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A manual clock whose wall time starts at `wall`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use rebound::ManualClock;
    ///
    /// let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    /// let clock = ManualClock::starting_at(start);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(clock.wall(), start + Duration::from_secs(60));
    /// ```
    pub fn starting_at(wall: SystemTime) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                origin: Instant::now(),
                wall_origin: wall,
                nanos: AtomicU64::new(0),
                timers: Mutex::new(Timers::default()),
            }),
        }
    }

    /// The current instant: the origin plus everything advanced so far.
    #[inline]
    pub fn now(&self) -> Instant {
        self.inner.origin + Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }

    /// The current wall-clock time: the wall origin plus everything advanced
    /// so far.
    pub fn wall(&self) -> SystemTime {
        self.inner.wall_origin + self.elapsed()
    }

    /// The instant this clock started at.
    pub fn origin(&self) -> Instant {
        self.inner.origin
    }

    /// Time advanced since the origin.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` (saturating at about 584 years), and
    /// wakes the timers that are due.
    pub fn advance(&self, by: Duration) {
        let by = nanos_of(by);
        let _ = self
            .inner
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
        self.wake_due();
    }

    /// Moves the clock to `origin + elapsed`. Time never goes backwards: an
    /// earlier value is ignored.
    pub fn set_elapsed(&self, elapsed: Duration) {
        self.inner
            .nanos
            .fetch_max(nanos_of(elapsed), Ordering::AcqRel);
        self.wake_due();
    }

    /// Timers waiting on this clock.
    pub fn pending_timers(&self) -> usize {
        self.timers().waiting.len()
    }

    /// The earliest deadline of the timers waiting on this clock, as time
    /// since the origin: where [`advance`](Self::advance) must get to for
    /// the next timer to fire.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers()
            .waiting
            .iter()
            .map(|&(_, at, _)| at)
            .min()
            .map(Duration::from_nanos)
    }

    fn timers(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.inner
            .timers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_due(&self) {
        let now = self.inner.nanos.load(Ordering::Acquire);
        let due: Vec<std::task::Waker> = {
            let mut timers = self.timers();
            if timers.waiting.is_empty() {
                return;
            }
            let mut due = Vec::new();
            timers.waiting.retain(|(_, at, waker)| {
                if *at <= now {
                    due.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            due
        };
        // Woken outside the lock: a waker may poll at once.
        due.into_iter().for_each(std::task::Waker::wake);
    }

    #[cfg(feature = "tokio")]
    /// Nanoseconds of `at` since the origin (zero before it).
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        nanos_of(at.saturating_duration_since(self.inner.origin))
    }

    #[cfg(feature = "tokio")]
    /// Whether the clock has reached `at_nanos` (since the origin); if not,
    /// registers `waker` under `id` (a new id when `None`) to be woken when
    /// it does. Checked under the lock, so an advance cannot slip between
    /// the check and the registration.
    pub(crate) fn poll_reached(
        &self,
        at_nanos: u64,
        id: &mut Option<u64>,
        waker: &std::task::Waker,
    ) -> bool {
        let mut timers = self.timers();
        if self.inner.nanos.load(Ordering::Acquire) >= at_nanos {
            if let Some(id) = id.take() {
                timers.waiting.retain(|(i, ..)| *i != id);
            }
            return true;
        }
        match id {
            Some(id) => match timers.waiting.iter_mut().find(|(i, ..)| i == id) {
                Some(entry) => {
                    entry.1 = at_nanos;
                    if !entry.2.will_wake(waker) {
                        entry.2 = waker.clone();
                    }
                }
                None => timers.waiting.push((*id, at_nanos, waker.clone())),
            },
            None => {
                let new = timers.next_id;
                timers.next_id += 1;
                timers.waiting.push((new, at_nanos, waker.clone()));
                *id = Some(new);
            }
        }
        false
    }

    #[cfg(feature = "tokio")]
    /// Forgets the timer registered under `id`.
    pub(crate) fn cancel(&self, id: u64) {
        self.timers().waiting.retain(|(i, ..)| *i != id);
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
/// adaptive throttle, time-based breaker windows) slice into buckets.
///
/// Windows measure seconds in buckets of ~1 s, where a precise clock read
/// (~25–30 ns through the vDSO on a VM) would cost more than the rest of a
/// budget check. So on the system and tokio clocks a stopwatch reads the
/// operating system's *coarse* monotonic clock — `CLOCK_MONOTONIC_COARSE`
/// on Linux and Android, ~5 ns, advancing once per kernel tick (1–4 ms) —
/// and elsewhere [`Instant::now`]. On a manual clock, and on the tokio
/// clock with the `test-util` feature (for tests in paused time), it reads
/// [`Clock::now`].
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
        let precise = match &clock.kind {
            Kind::System => false,
            #[cfg(feature = "tokio")]
            Kind::Tokio => cfg!(feature = "test-util"),
            Kind::Manual(_) => true,
        };
        let source = if precise {
            Source::Clock {
                origin: clock.now(),
                clock,
            }
        } else {
            Source::Coarse {
                origin: coarse::nanos(),
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

    /// With `test-util`, windows on the tokio clock follow paused time;
    /// without it, they read the coarse clock. Either way, no guessing.
    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn stopwatch_on_the_tokio_clock_is_chosen_by_the_feature() {
        let w = Stopwatch::new(Clock::tokio());
        if cfg!(feature = "test-util") {
            assert!(matches!(w.source, Source::Clock { .. }), "{w:?}");
            tokio::time::advance(Duration::from_secs(7)).await;
            assert!(w.nanos() >= 7_000_000_000);
        } else {
            assert!(matches!(w.source, Source::Coarse { .. }), "{w:?}");
        }
    }
}
