//! Absolute time, as queues persist it.
//!
//! A job outlives the process that enqueued it, so every time a queue keeps
//! (when a job is due, when its lease ends, when it was dead-lettered) is a
//! wall-clock [`Timestamp`]: milliseconds since the UNIX epoch. Times are read
//! from the injected [`rebound::Clock`] through [`wall`], never from the
//! system directly, so tests move them by hand.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the UNIX epoch (UTC), the unit every queue persists.
///
/// ```
/// use std::time::Duration;
/// use rebound_jobs::Timestamp;
///
/// let t = Timestamp::from_millis(1_000);
/// assert_eq!(t + Duration::from_secs(2), Timestamp::from_millis(3_000));
/// assert_eq!(Timestamp::from_millis(3_000).saturating_since(t), Duration::from_secs(2));
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The UNIX epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The timestamp of a `SystemTime` (times before the epoch become the epoch).
    pub fn from_system(t: SystemTime) -> Self {
        Timestamp(duration_millis(
            t.duration_since(UNIX_EPOCH).unwrap_or_default(),
        ))
    }

    /// This timestamp as a `SystemTime`.
    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    /// The timestamp as a PostgreSQL `BIGINT` (saturating).
    pub(crate) fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    /// A timestamp from a PostgreSQL `BIGINT` (negative becomes the epoch).
    pub(crate) fn from_i64(v: i64) -> Self {
        Timestamp(u64::try_from(v).unwrap_or(0))
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.250Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1000;
        let ms = self.0 % 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wall-clock time on `clock` ([`rebound::Clock::wall`]) as a
/// [`Timestamp`]: on a manual clock it moves only when the clock is
/// advanced, so persisted times (due, lease end, dead-lettered at) move
/// with the clock a test controls.
pub fn wall(clock: &rebound::Clock) -> Timestamp {
    Timestamp::from_system(clock.wall())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339() {
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        // 2024-02-29T23:59:59.999Z
        assert_eq!(
            Timestamp::from_millis(1_709_251_199_999).to_string(),
            "2024-02-29T23:59:59.999Z"
        );
    }

    #[test]
    fn wall_follows_a_manual_clock() {
        let (clock, manual) = rebound::Clock::manual();
        let t0 = wall(&clock);
        manual.advance(Duration::from_secs(3600));
        assert_eq!(wall(&clock).saturating_since(t0), Duration::from_secs(3600));
    }
}
