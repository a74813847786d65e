//! Time as the stores keep it, read from the injected [`rebound::Clock`].
//!
//! Leases and retention are decided against absolute [`Timestamp`]s
//! (milliseconds since the Unix epoch) that the layer reads from its clock's
//! wall time, so every process sharing a store agrees on them, and a test
//! can move time by hand with a manual clock and watch leases and retention
//! expire without sleeping, even against Redis or PostgreSQL.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rebound::Clock;

/// A point in time as stored: milliseconds since the Unix epoch.
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

    /// The timestamp of a wall-clock time (the epoch for earlier times).
    ///
    /// ```
    /// use rebound_idempotency::Timestamp;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let t = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1500));
    /// assert_eq!(t.as_millis(), 1500);
    /// ```
    pub fn from_system_time(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// The wall-clock time now on `clock`, as stored.
    ///
    /// ```
    /// use rebound_idempotency::Timestamp;
    /// let (clock, manual) = rebound::Clock::manual();
    /// let t0 = Timestamp::now(&clock);
    /// manual.advance(std::time::Duration::from_secs(5));
    /// assert_eq!(Timestamp::now(&clock).as_millis() - t0.as_millis(), 5_000);
    /// ```
    pub fn now(clock: &Clock) -> Self {
        Self::from_system_time(wall(clock))
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

/// The wall-clock time on `clock`.
///
/// The system time when the process first read a clock here, plus how far
/// `clock` moved since, so a manual clock's wall time moves with it.
// TODO(clock): `clock.wall()` once the core's clock has it.
pub(crate) fn wall(clock: &Clock) -> SystemTime {
    use std::sync::OnceLock;
    static ANCHOR: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    let (at, wall) = *ANCHOR.get_or_init(|| (Clock::system().now(), SystemTime::now()));
    let now = clock.now();
    match now.checked_duration_since(at) {
        Some(ahead) => wall + ahead,
        None => wall - at.duration_since(now),
    }
}

/// Completes once `clock` reaches `deadline`: a timer that races other work
/// (a lease renewal, a poll, a backoff in the background). On a manual clock
/// it fires only when something else moves the clock past the deadline.
// TODO(clock): `clock.sleep_until(deadline)` once the core's clock has it.
pub(crate) async fn timer(clock: &Clock, deadline: Instant) {
    if clock.is_manual() {
        while clock.now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    } else {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_millisecond_durations_round_up() {
        assert_eq!(duration_millis(Duration::from_micros(1)), 1);
        assert_eq!(duration_millis(Duration::from_millis(7)), 7);
        assert_eq!(duration_millis(Duration::MAX), u64::MAX);
    }

    #[tokio::test]
    async fn a_manual_timer_fires_only_when_the_clock_passes_it() {
        let (clock, manual) = Clock::manual();
        let mut t = Box::pin(timer(&clock, clock.now() + Duration::from_secs(1)));
        assert!(futures_util::poll!(&mut t).is_pending());
        manual.advance(Duration::from_millis(999));
        assert!(futures_util::poll!(&mut t).is_pending());
        manual.advance(Duration::from_millis(1));
        t.await;
    }
}
