//! Time, injectable: the layer and every store read "now" from a [`Clock`].
//!
//! Stores keep absolute timestamps ([`Timestamp`], milliseconds since the Unix
//! epoch) computed from the clock the layer was given, so a test can move time
//! by hand with [`ManualClock`] and watch leases and retention expire without
//! sleeping, even against Redis or PostgreSQL.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A point in time: milliseconds since the Unix epoch.
///
/// ```
/// use rebound_idempotency::Timestamp;
/// use std::time::Duration;
/// let t = Timestamp::from_millis(1_000);
/// assert_eq!(t + Duration::from_secs(2), Timestamp::from_millis(3_000));
/// assert_eq!(Timestamp::from_millis(3_000).saturating_duration_since(t), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(rhs)))
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(rhs)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Whole milliseconds in `d`, rounded up so a non-zero duration never
/// becomes zero, saturating at `u64::MAX`.
pub(crate) fn duration_millis(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if !d.subsec_nanos().is_multiple_of(1_000_000) {
        ms + 1
    } else {
        ms
    };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// A boxed future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the layer and stores get the time from, and how they wait.
///
/// [`SystemClock`] is the real one; [`ManualClock`] is moved by hand in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time now.
    fn now(&self) -> Timestamp;

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The wall clock; sleeps on tokio's timer.
///
/// ```
/// use rebound_idempotency::{Clock, SystemClock};
/// assert!(SystemClock.now().as_millis() > 0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
///
/// Sleepers wake when [`advance`](ManualClock::advance) or
/// [`set`](ManualClock::set) moves the time past their deadline.
///
/// ```
/// use rebound_idempotency::{Clock, ManualClock, Timestamp};
/// use std::time::Duration;
/// let clock = ManualClock::new(Timestamp::from_millis(10));
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now(), Timestamp::from_millis(15));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: AtomicU64,
    tick: watch::Sender<u64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        let (tick, _) = watch::channel(start.0);
        ManualClock {
            inner: Arc::new(ManualInner {
                now: AtomicU64::new(start.0),
                tick,
            }),
        }
    }

    /// A clock standing at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Move the clock forward by `by`, waking sleepers whose time has come.
    pub fn advance(&self, by: Duration) {
        let now = self
            .inner
            .now
            .fetch_add(duration_millis(by), Ordering::SeqCst)
            .saturating_add(duration_millis(by));
        self.inner.tick.send_replace(now);
    }

    /// Set the clock to `to` (it may go backwards; sleepers only wake forwards).
    pub fn set(&self, to: Timestamp) {
        self.inner.now.store(to.0, Ordering::SeqCst);
        self.inner.tick.send_replace(to.0);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.inner.now.load(Ordering::SeqCst))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now() + duration;
        let mut rx = self.inner.tick.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if every
            // clone is gone nothing can move time again, so never wake.
            if rx.wait_for(|now| *now >= deadline.0).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_wakes_only_when_advanced_past_deadline() {
        let clock = ManualClock::new(Timestamp::from_millis(0));
        let mut sleep = clock.sleep(Duration::from_millis(100));
        assert!(futures_util::poll!(&mut sleep).is_pending());
        clock.advance(Duration::from_millis(99));
        assert!(futures_util::poll!(&mut sleep).is_pending());
        clock.advance(Duration::from_millis(1));
        assert!(futures_util::poll!(&mut sleep).is_ready());
    }

    #[test]
    fn sub_millisecond_durations_round_up() {
        assert_eq!(duration_millis(Duration::from_micros(1)), 1);
        assert_eq!(duration_millis(Duration::from_millis(7)), 7);
        assert_eq!(duration_millis(Duration::MAX), u64::MAX);
    }
}
