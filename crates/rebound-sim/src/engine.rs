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
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rebound::{Clock, ManualClock};

/// A min-queue of events keyed by time, FIFO among equal times.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: u64,
    processed: u64,
}

#[derive(Debug)]
struct Entry<E> {
    // (time << 64) | sequence: one comparison orders by time, then FIFO.
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
            seq: 0,
            now: 0,
            processed: 0,
        }
    }

    /// An empty queue with room for `n` pending events.
    pub fn with_capacity(n: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(n),
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
        self.heap.push(Entry { key, event });
    }

    /// Schedules `event` `delay` nanoseconds from now.
    #[inline]
    pub fn schedule_in(&mut self, delay: u64, event: E) {
        self.schedule(self.now.saturating_add(delay), event);
    }

    /// Removes the earliest event and moves the queue's time to it.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let e = self.heap.pop()?;
        let t = (e.key >> 64) as u64;
        self.now = t;
        self.processed += 1;
        Some((t, e.event))
    }

    /// The time of the earliest pending event.
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|e| (e.key >> 64) as u64)
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
        self.heap.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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

    /// The current virtual time in nanoseconds.
    pub fn now_nanos(&self) -> u64 {
        crate::dist::nanos(self.manual.elapsed())
    }
}
