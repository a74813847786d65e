//! Sliding windows of call outcomes, lock-free.
//!
//! Every entry is tagged with the breaker's *generation* (bumped on every
//! state change), so a call admitted before a change that reports after it
//! lands in a slot the current generation reads as empty: stale outcomes are
//! never counted against the new state.

use std::time::{Duration, Instant};

use crate::breaker::config::SlidingWindow;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// What a window holds at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow, origin: Instant) -> Self {
        match kind {
            SlidingWindow::Count { size } => Window::Count(CountWindow::new(size)),
            SlidingWindow::Time { duration, buckets } => {
                Window::Time(TimeWindow::new(duration, buckets, origin))
            }
        }
    }

    /// Whether recording needs the time.
    #[inline]
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Records one outcome of generation `gen`; returns the window's tally
    /// when `want` (the caller evaluates it), computed right after this
    /// record.
    #[inline]
    pub(crate) fn record(
        &self,
        gen: u32,
        failure: bool,
        slow: bool,
        now: Option<Instant>,
        want: bool,
    ) -> Option<Tally> {
        match self {
            Window::Count(w) => w.record(gen, failure, slow, want),
            Window::Time(w) => w.record(gen, failure, slow, now.unwrap_or(w.origin), want),
        }
    }

    /// The tally of generation `gen` at `now`.
    pub(crate) fn tally(&self, gen: u32, now: Instant) -> Tally {
        match self {
            Window::Count(w) => w.tally(gen),
            Window::Time(w) => w.tally(gen, w.epoch(now)),
        }
    }

    /// Empties the window for generation `gen`. Called under the breaker's
    /// transition lock, before the state that uses `gen` is published.
    pub(crate) fn reset(&self, gen: u32) {
        match self {
            Window::Count(w) => w.reset(gen),
            Window::Time(w) => w.reset(),
        }
    }
}

// ---- count window ---------------------------------------------------------

const PRESENT: u32 = 1;
const FAILURE: u32 = 2;
const SLOW: u32 = 4;

/// The last `n` calls: a ring of tagged slots and one packed aggregate.
///
/// Slot: `gen16 << 16 | flags`. Aggregate: `gen16 << 48 | calls << 32 |
/// failures << 16 | slow`. Invariant (in every quiescent state): the
/// aggregate's counts are the sum of the slots tagged with its generation,
/// because every slot swap adjusts the aggregate by exactly the difference
/// it made.
pub(crate) struct CountWindow {
    cursor: AtomicU64,
    slots: Box<[AtomicU32]>,
    agg: AtomicU64,
}

#[inline]
fn g16(gen: u32) -> u32 {
    gen & 0xFFFF
}

#[inline]
fn field(w: u64, shift: u32) -> u64 {
    (w >> shift) & 0xFFFF
}

impl CountWindow {
    fn new(size: u32) -> Self {
        CountWindow {
            cursor: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
            agg: AtomicU64::new(0),
        }
    }

    #[inline]
    fn record(&self, gen: u32, failure: bool, slow: bool, want: bool) -> Option<Tally> {
        let g = g16(gen);
        let new =
            (g << 16) | PRESENT | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        let n = self.slots.len() as u64;
        let i = (self.cursor.fetch_add(1, Ordering::Relaxed) % n) as usize;
        let slot = &self.slots[i];
        // In steady state (a full window of successes) the slot already holds
        // what we would write: skip the write and keep the line shared.
        let old = if slot.load(Ordering::Relaxed) == new {
            new
        } else {
            slot.swap(new, Ordering::AcqRel)
        };
        if old == new && !want {
            return None;
        }
        let mut tally = None;
        let _ = self
            .agg
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let wg = (w >> 48) as u32;
                let mut c = [field(w, 32), field(w, 16), field(w, 0)];
                let mut apply = |tag: u32, sign: u64| {
                    if tag & PRESENT != 0 && tag >> 16 == wg {
                        // Fields wrap independently: a transient underflow
                        // (two writers of one slot racing) heals itself.
                        c[0] = c[0].wrapping_add(sign) & 0xFFFF;
                        if tag & FAILURE != 0 {
                            c[1] = c[1].wrapping_add(sign) & 0xFFFF;
                        }
                        if tag & SLOW != 0 {
                            c[2] = c[2].wrapping_add(sign) & 0xFFFF;
                        }
                    }
                };
                if old != new {
                    apply(old, u64::MAX);
                    apply(new, 1);
                }
                tally = (wg == g).then_some(Tally {
                    calls: c[0],
                    failures: c[1],
                    slow: c[2],
                });
                if old == new {
                    return None;
                }
                Some((w & !((1 << 48) - 1)) | (c[0] << 32) | (c[1] << 16) | c[2])
            });
        tally.filter(|t| want && t.calls <= n && t.failures <= t.calls && t.slow <= t.calls)
    }

    fn tally(&self, gen: u32) -> Tally {
        let w = self.agg.load(Ordering::Acquire);
        if (w >> 48) as u32 != g16(gen) {
            return Tally::default();
        }
        Tally {
            calls: field(w, 32),
            failures: field(w, 16),
            slow: field(w, 0),
        }
    }

    fn reset(&self, gen: u32) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.agg.store(u64::from(g16(gen)) << 48, Ordering::Release);
    }
}

// ---- time window ----------------------------------------------------------

// Each counter packs a tag (generation low 8 bits, epoch low 32 bits) with a
// 24-bit count, so a bucket from a past epoch or generation reads as zero and
// is reset by its first writer with one CAS, without a lock.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The calls of the last `duration`, in `buckets` slices.
pub(crate) struct TimeWindow {
    origin: Instant,
    bucket_nanos: u64,
    calls: Box<[AtomicU64]>,
    failures: Box<[AtomicU64]>,
    slow: Box<[AtomicU64]>,
}

impl TimeWindow {
    fn new(duration: Duration, buckets: u32, origin: Instant) -> Self {
        let bucket_nanos = (duration.as_nanos() / u128::from(buckets)).max(1);
        let make = || (0..buckets).map(|_| AtomicU64::new(0)).collect();
        TimeWindow {
            origin,
            bucket_nanos: u64::try_from(bucket_nanos).unwrap_or(u64::MAX),
            calls: make(),
            failures: make(),
            slow: make(),
        }
    }

    #[inline]
    fn epoch(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX) / self.bucket_nanos
    }

    #[inline]
    fn tag(gen: u32, epoch: u64) -> u64 {
        (u64::from(gen & 0xFF) << 32) | (epoch & 0xFFFF_FFFF)
    }

    #[inline]
    fn count_in(word: u64, tag: u64) -> u64 {
        if word >> COUNT_BITS == tag {
            word & COUNT_MASK
        } else {
            0
        }
    }

    #[inline]
    fn bump(slot: &AtomicU64, tag: u64) {
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            let c = Self::count_in(w, tag);
            Some((tag << COUNT_BITS) | (c + 1).min(COUNT_MASK))
        });
    }

    #[inline]
    fn record(
        &self,
        gen: u32,
        failure: bool,
        slow: bool,
        now: Instant,
        want: bool,
    ) -> Option<Tally> {
        let e = self.epoch(now);
        let i = (e % self.calls.len() as u64) as usize;
        let tag = Self::tag(gen, e);
        Self::bump(&self.calls[i], tag);
        if failure {
            Self::bump(&self.failures[i], tag);
        }
        if slow {
            Self::bump(&self.slow[i], tag);
        }
        want.then(|| self.tally(gen, e))
    }

    fn tally(&self, gen: u32, now_epoch: u64) -> Tally {
        let n = self.calls.len() as u64;
        let mut t = Tally::default();
        for back in 0..n.min(now_epoch + 1) {
            let e = now_epoch - back;
            let i = (e % n) as usize;
            let tag = Self::tag(gen, e);
            t.calls += Self::count_in(self.calls[i].load(Ordering::Acquire), tag);
            t.failures += Self::count_in(self.failures[i].load(Ordering::Acquire), tag);
            t.slow += Self::count_in(self.slow[i].load(Ordering::Acquire), tag);
        }
        t
    }

    fn reset(&self) {
        for a in self.calls.iter().chain(&*self.failures).chain(&*self.slow) {
            a.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_the_oldest_call() {
        let w = CountWindow::new(3);
        w.record(0, true, false, false);
        w.record(0, false, true, false);
        w.record(0, false, false, false);
        assert_eq!(
            w.tally(0),
            Tally {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(0, false, false, false); // evicts the failure
        assert_eq!(
            w.tally(0),
            Tally {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn count_window_ignores_other_generations() {
        let w = CountWindow::new(4);
        w.record(0, true, false, false);
        w.reset(1);
        assert_eq!(w.record(0, true, false, true), None, "stale outcome");
        assert_eq!(w.tally(1), Tally::default());
        let t = w.record(1, true, false, true).unwrap();
        assert_eq!(
            t,
            Tally {
                calls: 1,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_slides() {
        let origin = Instant::now();
        let w = TimeWindow::new(Duration::from_secs(10), 10, origin);
        let at = |s| origin + Duration::from_secs(s);
        w.record(0, true, false, at(0), false);
        w.record(0, false, false, at(5), false);
        assert_eq!(w.tally(0, w.epoch(at(9))).calls, 2);
        assert_eq!(
            w.tally(0, w.epoch(at(10))),
            Tally {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.tally(0, w.epoch(at(15))).calls, 0);
        assert_eq!(w.tally(1, w.epoch(at(5))).calls, 0, "other generation");
    }
}
