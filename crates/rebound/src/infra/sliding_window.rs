//! A lock-free sliding window of event counts, shared by the ratio retry
//! budget and the adaptive throttle.
//!
//! The window is `buckets` slices of `bucket` time each. Every slot packs the
//! epoch (slice number) it counts for in its high 24 bits with a count in its
//! low 40 bits, so a slot left over from an older slice reads as zero and the
//! first writer of the new slice resets it with the same CAS that counts —
//! no lock, no sweeper.
//!
//! Reading the window's total would mean summing every slot on every check;
//! instead each series caches the total of the slices *before* the current
//! one (the "tail", packed and tagged like a slot), recomputed once per
//! slice. Only a thread that read the clock just before a slice boundary and
//! counts after another thread recomputed the tail can add to a tail slice
//! afterwards; that count shows in the window once its own slice is
//! recomputed past — at most one event per such racing thread, at a
//! boundary. Single-threaded, and whenever no thread straddles a boundary,
//! totals are exact.
//!
//! Time comes from a [`Stopwatch`]: on the system clock, the OS's coarse
//! monotonic clock (a few ns a read, 1–4 ms resolution — ample for slices
//! of ~1 s).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{check, ConfigError};
use crate::infra::clock::Stopwatch;
use crate::Clock;

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// Time sliced into epochs on an injected clock.
#[derive(Debug)]
pub(crate) struct Epochs {
    stopwatch: Stopwatch,
    bucket_nanos: u64,
    buckets: u64,
    /// The epoch last computed and its slot index (`epoch << INDEX_BITS |
    /// epoch % buckets`): a hint that spares both divisions while time stays
    /// in that epoch.
    last: AtomicU64,
}

/// Bits of [`Epochs::last`] holding the slot index (`buckets` ≤ 1000).
const INDEX_BITS: u32 = 10;

/// An epoch and the slot it counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tick {
    epoch: u64,
    index: usize,
}

impl Tick {
    /// The epoch: slices of time since the window started.
    #[inline]
    pub(crate) fn epoch(self) -> u64 {
        self.epoch
    }

    /// The slot this epoch counts in: `epoch % buckets`.
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.index
    }

    /// The tick of `epoch` in a window of `buckets` slots.
    #[cfg(test)]
    pub(crate) fn at(epoch: u64, buckets: u64) -> Self {
        Tick {
            epoch,
            index: (epoch % buckets) as usize,
        }
    }
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
            stopwatch: Stopwatch::new(clock),
            bucket_nanos: u64::try_from(window.as_nanos() / u128::from(buckets))
                .unwrap_or(u64::MAX)
                .max(1),
            buckets: u64::from(buckets),
            // Epoch 0, slot 0.
            last: AtomicU64::new(0),
        }
    }

    /// The current epoch (nanoseconds since the start `/ bucket_nanos`) and
    /// its slot, without dividing while time stays in the last epoch
    /// computed.
    #[inline(always)]
    pub(crate) fn now(&self) -> Tick {
        let nanos = self.stopwatch.nanos();
        let hint = self.last.load(Ordering::Relaxed);
        let epoch = hint >> INDEX_BITS;
        // `epoch * bucket_nanos` cannot overflow: `epoch` was computed as
        // `x / bucket_nanos` for some `x: u64`.
        match nanos.checked_sub(epoch * self.bucket_nanos) {
            Some(into) if into < self.bucket_nanos => Tick {
                epoch,
                index: (hint & ((1 << INDEX_BITS) - 1)) as usize,
            },
            _ => self.new_epoch(nanos),
        }
    }

    /// Out of line, so the hot path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn new_epoch(&self, nanos: u64) -> Tick {
        // The hint keeps 54 bits of epoch; an epoch past that (slices under
        // a microsecond, after years) is recomputed on every read instead.
        let epoch = nanos / self.bucket_nanos;
        let index = epoch % self.buckets;
        if epoch < 1 << (64 - INDEX_BITS) {
            self.last
                .store((epoch << INDEX_BITS) | index, Ordering::Relaxed);
        }
        Tick {
            epoch,
            index: index as usize,
        }
    }
}

/// One series of counts over the window.
#[derive(Debug)]
pub(crate) struct Series {
    slots: Box<[AtomicU64]>,
    /// The total of the `buckets - 1` slices before the tagged epoch.
    tail: AtomicU64,
}

impl Series {
    pub(crate) fn new(epochs: &Epochs) -> Self {
        Series {
            slots: (0..epochs.buckets).map(|_| AtomicU64::new(0)).collect(),
            // Tagged for epoch 0, before which nothing happened.
            tail: AtomicU64::new(0),
        }
    }

    #[inline]
    fn slot(&self, epoch: u64) -> &AtomicU64 {
        &self.slots[(epoch % self.slots.len() as u64) as usize]
    }

    #[inline]
    fn slot_of(&self, tick: Tick) -> &AtomicU64 {
        // In range: `index` is `epoch % buckets`, and every series of these
        // epochs has `buckets` slots.
        &self.slots[tick.index]
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

    /// Counts one event at `tick`.
    #[inline]
    pub(crate) fn bump(&self, tick: Tick) {
        let epoch = tick.epoch;
        let slot = self.slot_of(tick);
        let mut word = slot.load(Ordering::Acquire);
        loop {
            let next = Self::with_count(epoch, Self::count_in(word, epoch) + 1);
            match slot.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(seen) => word = seen,
            }
        }
    }

    /// Events in the window ending at `tick` (its slice and the
    /// `buckets - 1` before it).
    #[inline]
    pub(crate) fn sum(&self, tick: Tick) -> u64 {
        self.tail(tick.epoch)
            + Self::count_in(self.slot_of(tick).load(Ordering::Acquire), tick.epoch)
    }

    /// Events in the `buckets - 1` slices before `epoch`.
    #[inline]
    fn tail(&self, epoch: u64) -> u64 {
        let word = self.tail.load(Ordering::Acquire);
        if word >> COUNT_BITS == epoch & TAG_MASK {
            word & COUNT_MASK
        } else {
            self.new_tail(epoch)
        }
    }

    #[cold]
    #[inline(never)]
    fn new_tail(&self, epoch: u64) -> u64 {
        let n = self.slots.len() as u64;
        let total = (1..n.min(epoch + 1))
            .map(|back| {
                let e = epoch - back;
                Self::count_in(self.slot(e).load(Ordering::Acquire), e)
            })
            .sum();
        self.tail
            .store(Self::with_count(epoch, total), Ordering::Release);
        total
    }

    /// Counts one event at `tick` only if `allow(total)` holds for the
    /// window's total *before* it, atomically with respect to other
    /// `bump_if` callers on this series.
    #[inline]
    pub(crate) fn bump_if(&self, tick: Tick, mut allow: impl FnMut(u64) -> bool) -> bool {
        let epoch = tick.epoch;
        let slot = self.slot_of(tick);
        let tail = self.tail(epoch);
        let mut word = slot.load(Ordering::Acquire);
        loop {
            let count = Self::count_in(word, epoch);
            if !allow(tail + count) {
                return false;
            }
            let next = Self::with_count(epoch, count + 1);
            match slot.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(seen) => word = seen,
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
        let t0 = Tick::at(0, 1);
        assert!(s.bump_if(t0, |n| n < 2));
        assert!(s.bump_if(t0, |n| n < 2));
        assert!(!s.bump_if(t0, |n| n < 2));
        assert_eq!(s.sum(t0), 2);
    }

    #[test]
    fn cached_tails_match_a_full_sum() {
        // Against a plain model: events at random epochs moving forward.
        let m = ManualClock::new();
        let epochs = Epochs::new(m.clone().into(), Duration::from_secs(5), 5);
        let s = Series::new(&epochs);
        let mut model: Vec<u64> = Vec::new(); // epoch of every event
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2_000 {
            match rng.u8(0..10) {
                0 => m.advance(Duration::from_millis(rng.u64(0..3_000))),
                1..=3 => {
                    let t = epochs.now();
                    let bound = rng.u64(0..40);
                    let before = model.iter().filter(|&&x| x + 5 > t.epoch).count() as u64;
                    let granted = s.bump_if(t, |n| n < bound);
                    assert_eq!(granted, before < bound);
                    if granted {
                        model.push(t.epoch);
                    }
                }
                _ => {
                    let t = epochs.now();
                    s.bump(t);
                    model.push(t.epoch);
                }
            }
            let t = epochs.now();
            assert_eq!(t, Tick::at(t.epoch, 5));
            let expected = model.iter().filter(|&&x| x + 5 > t.epoch).count() as u64;
            assert_eq!(s.sum(t), expected, "at epoch {}", t.epoch);
        }
    }

    #[test]
    fn the_epoch_hint_never_changes_the_epoch() {
        let m = ManualClock::new();
        let epochs = Epochs::new(m.clone().into(), Duration::from_millis(3_000), 7);
        let bucket = 3_000_000_000u64 / 7;
        let mut rng = fastrand::Rng::with_seed(3);
        let mut nanos = 0u64;
        for _ in 0..10_000 {
            let step = rng.u64(0..bucket / 2);
            m.advance(Duration::from_nanos(step));
            nanos += step;
            assert_eq!(epochs.now(), Tick::at(nanos / bucket, 7));
        }
    }
}
