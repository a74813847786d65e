//! What sliding windows read: the cheapest clock that is right.

use std::fmt;
use std::time::Instant;

use super::{Clock, Kind};

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
    use crate::Clock;
    use std::time::Duration;

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
