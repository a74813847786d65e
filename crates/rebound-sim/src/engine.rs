//! The discrete-event engine: a queue of timed events and a virtual clock
//! that the real rebound policies read.
//!
//! Time is a `u64` count of nanoseconds since the start of the run. Events
//! at the same instant pop in the order they were scheduled, so a run never
//! depends on how a heap breaks ties. [`VirtualTime`] turns engine time into
//! the [`Instant`]s and the [`Clock`] that rebound's policies take: the
//! driver moves it to each event's time before it asks a policy anything,
//! exactly as a real executor would read the system clock.
//!
//! ```
//! use rebound_sim::engine::{EventQueue, VirtualTime};
//!
//! let mut q = EventQueue::new();
//! q.schedule(30, "late");
//! q.schedule(10, "early");
//! q.schedule(10, "early, second");
//! let time = VirtualTime::new();
//! let mut seen = Vec::new();
//! while let Some((t, ev)) = q.pop() {
//!     time.set(t);
//!     seen.push(ev);
//! }
//! assert_eq!(seen, ["early", "early, second", "late"]);
//! assert_eq!(time.now_nanos(), 30);
//! assert_eq!(q.processed(), 3);
//! ```

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rebound::{Clock, ManualClock};

/// A min-queue of events keyed by time, FIFO among equal times.
///
/// Keys are `(time << 64) | sequence`, so one integer comparison orders by
/// time and then by scheduling order. Two stores hold them:
///
/// * a **lane**: a FIFO of events scheduled in time order. An event at or
///   after the lane's last one is appended there in O(1). Timeouts of a
///   fixed length, the bulk of a loaded model's pending events (and almost
///   all of them stale: the answer came first), always are.
/// * a binary **heap** for everything else.
///
/// `pop` takes the smaller of the two fronts. The order popped is exactly
/// the order of the keys, whichever store an event sat in.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    lane: VecDeque<Entry<E>>,
    seq: u64,
    now: u64,
    processed: u64,
}

#[derive(Debug)]
struct Entry<E> {
    key: u128,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        other.key.cmp(&self.key)
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            lane: VecDeque::new(),
            seq: 0,
            now: 0,
            processed: 0,
        }
    }

    /// An empty queue with room for `n` pending events.
    pub fn with_capacity(n: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(n),
            lane: VecDeque::with_capacity(n),
            ..Self::new()
        }
    }

    /// Schedules `event` at absolute time `at` (nanoseconds). A time in the
    /// past is moved to now: the engine never goes back.
    #[inline]
    pub fn schedule(&mut self, at: u64, event: E) {
        let at = at.max(self.now);
        let key = ((at as u128) << 64) | self.seq as u128;
        self.seq += 1;
        let e = Entry { key, event };
        // Keys grow with the sequence, so `key > back` iff `at >= back's time`.
        if self.lane.back().is_none_or(|b| b.key < key) {
            self.lane.push_back(e);
        } else {
            self.heap.push(e);
        }
    }

    /// Schedules `event` `delay` nanoseconds from now.
    #[inline]
    pub fn schedule_in(&mut self, delay: u64, event: E) {
        self.schedule(self.now.saturating_add(delay), event);
    }

    /// Removes the earliest event and moves the queue's time to it.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let from_lane = match (self.lane.front(), self.heap.peek()) {
            (Some(l), Some(h)) => l.key < h.key,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let e = if from_lane {
            self.lane.pop_front()
        } else {
            self.heap.pop()
        }?;
        let t = (e.key >> 64) as u64;
        self.now = t;
        self.processed += 1;
        Some((t, e.event))
    }

    /// The time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<u64> {
        let l = self.lane.front().map(|e| e.key);
        let h = self.heap.peek().map(|e| e.key);
        let k = match (l, h) {
            (Some(l), Some(h)) => l.min(h),
            (l, h) => l.or(h)?,
        };
        Some((k >> 64) as u64)
    }

    /// The time of the last event popped.
    #[inline]
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Events popped so far.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Events still pending.
    pub fn len(&self) -> usize {
        self.heap.len() + self.lane.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.lane.is_empty()
    }
}

/// Virtual time for the policies: a [`ManualClock`] the engine moves.
///
/// Hand [`clock`](Self::clock) to every policy and budget of a run; call
/// [`set`](Self::set) with each event's time before asking them anything;
/// pass [`instant`](Self::instant) where a policy takes `now`.
#[derive(Debug, Clone)]
pub struct VirtualTime {
    manual: ManualClock,
    clock: Clock,
    origin: Instant,
}

impl Default for VirtualTime {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualTime {
    /// A fresh virtual clock at time 0.
    pub fn new() -> Self {
        let manual = ManualClock::new();
        VirtualTime {
            origin: manual.origin(),
            clock: Clock::from(manual.clone()),
            manual,
        }
    }

    /// The clock to give to policies and budgets.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Moves time to `t` nanoseconds after the start (never backwards).
    #[inline]
    pub fn set(&self, t: u64) {
        self.manual.set_elapsed(Duration::from_nanos(t));
    }

    /// The instant `t` nanoseconds after the start.
    #[inline]
    pub fn instant(&self, t: u64) -> Instant {
        self.origin + Duration::from_nanos(t)
    }

    /// Nanoseconds from the start to `at` (0 for an instant before it): an
    /// instant a policy names (a timer's deadline) as engine time.
    #[inline]
    pub fn nanos_at(&self, at: Instant) -> u64 {
        crate::dist::nanos(at.saturating_duration_since(self.origin))
    }

    /// The current virtual time in nanoseconds.
    pub fn now_nanos(&self) -> u64 {
        crate::dist::nanos(self.manual.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a sorted reference: random times with many ties pop in time
    /// order, FIFO among equal times, interleaved with pushes.
    #[test]
    fn pops_in_time_then_fifo_order() {
        let mut rng = crate::SimRng::new(5);
        let mut q = EventQueue::new();
        let mut reference: Vec<(u64, u64)> = Vec::new(); // (time, seq)
        let mut seq = 0u64;
        for round in 0..2000 {
            for _ in 0..rng.u32(5) {
                let t = q.now() + rng.u64_in(0, 20);
                q.schedule(t, seq);
                reference.push((t, seq));
                seq += 1;
            }
            if round % 3 != 0 {
                if let Some((t, s)) = q.pop() {
                    reference.sort();
                    assert_eq!(reference.remove(0), (t, s));
                }
            }
        }
        reference.sort();
        for want in reference {
            let (t, s) = q.pop().unwrap();
            assert_eq!((t, s), want);
        }
        assert!(q.is_empty());
    }
}
