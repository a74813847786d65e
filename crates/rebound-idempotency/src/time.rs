//! Time as the stores keep it, read from the injected [`rebound::Clock`].
//!
//! Leases and retention are decided against absolute [`Timestamp`]s
//! (milliseconds since the Unix epoch) that the layer reads from its clock's
//! wall time, so every process sharing a store agrees on them, and a test
//! can move time by hand with a manual clock and watch leases and retention
//! expire without sleeping, even against Redis or PostgreSQL.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        Self::from_system_time(clock.wall())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_millisecond_durations_round_up() {
        assert_eq!(duration_millis(Duration::from_micros(1)), 1);
        assert_eq!(duration_millis(Duration::from_millis(7)), 7);
        assert_eq!(duration_millis(Duration::MAX), u64::MAX);
    }
}
