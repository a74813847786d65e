//! A lock-free sliding window of event counts, shared by the ratio retry
//! budget and the adaptive throttle.
//!
//! The window is `buckets` slices of `bucket` time each. Every slot packs the
//! epoch (slice number) it counts for in its high 24 bits with a count in its
//! low 40 bits, so a slot left over from an older slice reads as zero and the
//! first writer of the new slice resets it with the same CAS that counts —
//! no lock, no sweeper.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{check, ConfigError};
use crate::Clock;

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// Time sliced into epochs on an injected clock.
#[derive(Debug)]
pub(crate) struct Epochs {
    clock: Clock,
    origin: Instant,
    bucket_nanos: u64,
    buckets: u64,
}

impl Epochs {
    /// Validates a builder's `window` and `buckets` settings and makes the
    /// epochs; errors name the field and `component`.
    pub(crate) fn checked(
        component: &'static str,
        clock: Clock,
        window: Duration,
        buckets: u32,
    ) -> Result<Self, ConfigError> {
        check::non_zero_duration(component, "window", window)?;
        if !(1..=1000).contains(&buckets) {
            return Err(ConfigError::new(
                component,
                "buckets",
                format!("must be between 1 and 1000 (got {buckets})"),
            ));
        }
        Ok(Self::new(clock, window, buckets))
    }

    pub(crate) fn new(clock: Clock, window: Duration, buckets: u32) -> Self {
        let buckets = buckets.max(1);
        Epochs {
            origin: clock.now(),
            clock,
            bucket_nanos: (window.as_nanos() / buckets as u128).max(1) as u64,
            buckets: buckets as u64,
        }
    }

    /// The current epoch.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        let since = self.clock.now().saturating_duration_since(self.origin);
        // u64 nanoseconds cover 584 years; a u128 division would cost more
        // than the rest of a budget check.
        let nanos = since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(since.subsec_nanos() as u64);
        nanos / self.bucket_nanos
    }
}

/// One series of counts over the window.
#[derive(Debug)]
pub(crate) struct Series {
    slots: Box<[AtomicU64]>,
}

impl Series {
    pub(crate) fn new(epochs: &Epochs) -> Self {
        Series {
            slots: (0..epochs.buckets).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[inline]
    fn slot(&self, epoch: u64) -> &AtomicU64 {
        &self.slots[(epoch % self.slots.len() as u64) as usize]
    }

    #[inline]
    fn count_in(word: u64, epoch: u64) -> u64 {
        if word >> COUNT_BITS == epoch & TAG_MASK {
            word & COUNT_MASK
        } else {
            0
        }
    }

    #[inline]
    fn with_count(epoch: u64, count: u64) -> u64 {
        ((epoch & TAG_MASK) << COUNT_BITS) | count.min(COUNT_MASK)
    }

    /// Counts one event in `epoch`.
    #[inline]
    pub(crate) fn bump(&self, epoch: u64) {
        let _ = self
            .slot(epoch)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(Self::with_count(epoch, Self::count_in(w, epoch) + 1))
            });
    }

    /// Events in the window ending at `epoch` (this slice and the
    /// `buckets - 1` before it).
    #[inline]
    pub(crate) fn sum(&self, epoch: u64) -> u64 {
        let n = self.slots.len() as u64;
        (0..n.min(epoch + 1))
            .map(|back| {
                let e = epoch - back;
                Self::count_in(self.slot(e).load(Ordering::Acquire), e)
            })
            .sum()
    }

    /// Counts one event in `epoch` only if `allow(total)` holds for the
    /// window's total *before* it, atomically with respect to other
    /// `bump_if` callers on this series.
    #[inline]
    pub(crate) fn bump_if(&self, epoch: u64, mut allow: impl FnMut(u64) -> bool) -> bool {
        let slot = self.slot(epoch);
        loop {
            let word = slot.load(Ordering::Acquire);
            if !allow(self.sum(epoch)) {
                return false;
            }
            let next = Self::with_count(epoch, Self::count_in(word, epoch) + 1);
            if slot
                .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn old_slices_fall_out_of_the_window() {
        let m = ManualClock::new();
        let epochs = Epochs::new(m.clone().into(), Duration::from_secs(3), 3);
        let s = Series::new(&epochs);
        s.bump(epochs.now());
        s.bump(epochs.now());
        m.advance(Duration::from_secs(1));
        s.bump(epochs.now());
        assert_eq!(s.sum(epochs.now()), 3);
        m.advance(Duration::from_secs(2));
        assert_eq!(s.sum(epochs.now()), 1, "the first slice slid out");
        m.advance(Duration::from_secs(10));
        assert_eq!(s.sum(epochs.now()), 0);
        // A slot reused for a new slice starts from zero.
        s.bump(epochs.now());
        assert_eq!(s.sum(epochs.now()), 1);
    }

    #[test]
    fn bump_if_checks_the_total_before_counting() {
        let (clock, _) = Clock::manual();
        let epochs = Epochs::new(clock, Duration::from_secs(1), 1);
        let s = Series::new(&epochs);
        assert!(s.bump_if(0, |n| n < 2));
        assert!(s.bump_if(0, |n| n < 2));
        assert!(!s.bump_if(0, |n| n < 2));
        assert_eq!(s.sum(0), 2);
    }
}
