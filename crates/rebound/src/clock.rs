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
}
