//! Sliding windows of call outcomes, lock-free.
//!
//! Every entry is tagged with the breaker's *generation* (bumped on every
//! state change), so a call admitted before a change that reports after it
//! lands in a slot the current generation reads as empty: stale outcomes are
//! never counted against the new state.

use std::time::Duration;

use crate::breaker::builder::SlidingWindow;
use crate::infra::sliding_window::{Epochs, Tick};
use crate::infra::sync::{AtomicU32, AtomicU64, Ordering};
use crate::Clock;

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
    pub(crate) fn new(kind: SlidingWindow, clock: &Clock) -> Self {
        match kind {
            SlidingWindow::Count { size } => Window::Count(CountWindow::new(size)),
            SlidingWindow::Time { duration, buckets } => {
                Window::Time(TimeWindow::new(duration, buckets, clock))
            }
        }
    }

    /// Records one outcome of generation `gen`; returns the window's tally
    /// when `want` (the caller evaluates it), computed right after this
    /// record.
    #[inline]
    pub(crate) fn record(&self, gen: u32, failure: bool, slow: bool, want: bool) -> Option<Tally> {
        match self {
            Window::Count(w) => w.record(gen, failure, slow, want),
            Window::Time(w) => w.record(gen, failure, slow, want),
        }
    }

    /// The tally of generation `gen` now.
    pub(crate) fn tally(&self, gen: u32) -> Tally {
        match self {
            Window::Count(w) => w.tally(gen),
            Window::Time(w) => w.tally(gen, w.epochs.now()),
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
///
/// **Steady state writes nothing.** When the aggregate says the window is
/// full and holds only plain successes (`calls == n`, no failure, no slow
/// call), recording another plain success only loads the aggregate: it
/// neither writes a slot nor advances the cursor, so threads hammering a
/// healthy breaker share its cache lines read-only instead of bouncing the
/// cursor's line between cores. This is exact, not an approximation: a ring
/// whose `n` slots all hold the same value is invariant under rotation, so
/// the state "cursor at `c`, all successes" (the skipped record) and "cursor
/// at `c + 1`, all successes" (the record made) hold the same calls and
/// evolve into windows with the same counts whatever is recorded next; the
/// window remains exactly the last `n` calls. Under concurrency the skipped
/// success is ordered at the instant its load of the aggregate read "full of
/// successes", before any record whose aggregate update came later (as
/// before, a window written by several threads at once is the last `n` calls
/// in cursor order, which may differ from completion order by the calls in
/// flight).
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
        let n = self.slots.len() as u64;
        if !(failure || slow || want)
            && self.agg.load(Ordering::Relaxed) == ((u64::from(g) << 48) | (n << 32))
        {
            // Full of successes, and this is one more: see the type's docs.
            return None;
        }
        let new =
            (g << 16) | PRESENT | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
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

/// The calls of the last `duration`, in `buckets` slices of time read from
/// the breaker's clock through a [`Stopwatch`](crate::infra::clock::Stopwatch)
/// (coarse on the system clock: a few ns a read).
pub(crate) struct TimeWindow {
    epochs: Epochs,
    calls: Box<[AtomicU64]>,
    failures: Box<[AtomicU64]>,
    slow: Box<[AtomicU64]>,
}

impl TimeWindow {
    fn new(duration: Duration, buckets: u32, clock: &Clock) -> Self {
        let make = || (0..buckets).map(|_| AtomicU64::new(0)).collect();
        TimeWindow {
            epochs: Epochs::new(clock.clone(), duration, buckets),
            calls: make(),
            failures: make(),
            slow: make(),
        }
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
    fn record(&self, gen: u32, failure: bool, slow: bool, want: bool) -> Option<Tally> {
        let now = self.epochs.now();
        let (e, i) = (now.epoch(), now.index());
        let tag = Self::tag(gen, e);
        Self::bump(&self.calls[i], tag);
        if failure {
            Self::bump(&self.failures[i], tag);
        }
        if slow {
            Self::bump(&self.slow[i], tag);
        }
        want.then(|| self.tally(gen, now))
    }

    fn tally(&self, gen: u32, now: Tick) -> Tally {
        let now_epoch = now.epoch();
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
    fn a_full_window_of_successes_is_not_written() {
        let w = CountWindow::new(3);
        for _ in 0..3 {
            w.record(0, false, false, false);
        }
        let cursor = w.cursor.load(Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(w.record(0, false, false, false), None);
        }
        assert_eq!(w.cursor.load(Ordering::Relaxed), cursor, "nothing written");
        // Still exactly the last 3 calls: a failure, then two successes, then
        // a third evicts it.
        let t = w.record(0, true, false, true).unwrap();
        assert_eq!((t.calls, t.failures), (3, 1));
        w.record(0, false, false, false);
        w.record(0, false, false, false);
        assert_eq!(w.tally(0).failures, 1, "the failure is among the last 3");
        w.record(0, false, false, false);
        assert_eq!(w.tally(0).failures, 0, "evicted after 3 more calls");
        // Other generations never take the shortcut.
        w.reset(1);
        w.record(0, false, false, false);
        assert_eq!(w.tally(1), Tally::default());
    }

    #[test]
    fn time_window_slides() {
        let (clock, time) = Clock::manual();
        let w = TimeWindow::new(Duration::from_secs(10), 10, &clock);
        let tally = |gen| w.tally(gen, w.epochs.now());
        w.record(0, true, false, false);
        time.advance(Duration::from_secs(5));
        w.record(0, false, false, false);
        time.advance(Duration::from_secs(4));
        assert_eq!(tally(0).calls, 2);
        assert_eq!(tally(1).calls, 0, "other generation");
        time.advance(Duration::from_secs(1));
        assert_eq!(
            tally(0),
            Tally {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        time.advance(Duration::from_secs(5));
        assert_eq!(tally(0).calls, 0);
    }
}
