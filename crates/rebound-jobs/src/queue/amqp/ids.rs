//! Job ids for a broker that assigns none.
//!
//! Redis Streams and JetStream number each message; RabbitMQ does not, so
//! the producer makes the id, and several producers (web servers, say)
//! enqueue into one queue without talking to each other. An id is
//! `tick << 22 | producer`:
//!
//! * `producer`: 22 bits that tell producers apart, drawn at random when
//!   the adapter connects, or given ([`AmqpQueue::with_producer_id`]) when a
//!   deployment can number its producers and wants no chance of a clash.
//!   Two producers with random bits share them with probability 1 in
//!   4,194,304 per pair.
//! * `tick`: the enqueue time in milliseconds, but never the same twice
//!   for one producer: a burst of more than one job a millisecond runs
//!   ahead of the clock, which catches up afterwards. 42 bits of
//!   milliseconds last until the year 2109 (after which ids saturate).
//!
//! So a producer's ids increase in the order it hands them out (a batch's
//! ids are in order), ids of different producers interleave by time, and
//! an id is never reused by its producer, however many jobs a millisecond
//! it enqueues.
//!
//! [`AmqpQueue::with_producer_id`]: super::AmqpQueue::with_producer_id

use std::sync::atomic::{AtomicU64, Ordering};

use crate::job::JobId;

/// Bits of an id that tell producers apart.
pub(super) const PRODUCER_BITS: u32 = 22;
/// The largest producer number.
pub(super) const MAX_PRODUCER: u32 = (1 << PRODUCER_BITS) - 1;
/// The largest tick: milliseconds since 1970, to the year 2109.
const MAX_TICK: u64 = (1 << (64 - PRODUCER_BITS)) - 1;

/// One producer's ids.
#[derive(Debug)]
pub(super) struct IdSource {
    producer: u64,
    /// The last tick handed out.
    last: AtomicU64,
}

impl IdSource {
    /// Ids of producer `producer` (at most [`MAX_PRODUCER`]).
    pub(super) fn new(producer: u32) -> Self {
        debug_assert!(producer <= MAX_PRODUCER);
        IdSource {
            producer: u64::from(producer & MAX_PRODUCER),
            last: AtomicU64::new(0),
        }
    }

    /// Ids of a producer whose number is drawn from `rng`.
    pub(super) fn random(rng: &mut fastrand::Rng) -> Self {
        Self::new(rng.u32(0..=MAX_PRODUCER))
    }

    /// The producer's number.
    pub(super) fn producer(&self) -> u32 {
        self.producer as u32
    }

    /// The next id, for a job enqueued `now_millis` after 1970.
    pub(super) fn next(&self, now_millis: u64) -> JobId {
        let wanted = now_millis.min(MAX_TICK);
        let step = |last: u64| wanted.max(last.saturating_add(1)).min(MAX_TICK);
        let last = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(step(last))
            })
            .unwrap_or_else(|last| last);
        JobId(step(last) << PRODUCER_BITS | self.producer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const T: u64 = 1_764_800_000_000; // 2025-12-03, in milliseconds

    #[test]
    fn a_burst_runs_ahead_of_the_clock_and_the_clock_catches_up() {
        let ids = IdSource::new(5);
        let burst: Vec<JobId> = (0..100_000).map(|_| ids.next(T)).collect();
        assert!(burst.windows(2).all(|w| w[0] < w[1]), "increasing");
        assert_eq!(burst.iter().collect::<HashSet<_>>().len(), 100_000);
        assert_eq!(burst[0].0 >> PRODUCER_BITS, T);
        assert_eq!(burst[99_999].0 >> PRODUCER_BITS, T + 99_999);
        assert!(burst.iter().all(|id| id.0 & u64::from(MAX_PRODUCER) == 5));
        // Still ahead: the next id follows the burst, not the clock.
        assert_eq!(ids.next(T + 10).0 >> PRODUCER_BITS, T + 100_000);
        // Caught up: the clock again.
        assert_eq!(ids.next(T + 200_000).0 >> PRODUCER_BITS, T + 200_000);
        // A clock that steps back does not repeat an id.
        assert_eq!(ids.next(T).0 >> PRODUCER_BITS, T + 200_001);
    }

    #[test]
    fn producers_never_share_an_id_and_interleave_by_time() {
        let (a, b) = (IdSource::new(1), IdSource::new(2));
        let mut seen = HashSet::new();
        for ms in 0..1_000 {
            for _ in 0..3 {
                assert!(seen.insert(a.next(T + ms)));
                assert!(seen.insert(b.next(T + ms)));
            }
        }
        // Both caught up at the same time: a later enqueue has a larger id
        // whichever producer made it.
        let (early, late) = (a.next(T + 10_000), b.next(T + 10_001));
        assert!(early < late);
    }

    #[test]
    fn ids_are_unique_across_threads() {
        let ids = std::sync::Arc::new(IdSource::new(MAX_PRODUCER));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ids = std::sync::Arc::clone(&ids);
                std::thread::spawn(move || (0..10_000).map(|_| ids.next(T)).collect::<Vec<_>>())
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id), "{id:?} handed out twice");
            }
        }
        assert_eq!(all.len(), 40_000);
    }

    #[test]
    fn the_far_future_saturates_instead_of_wrapping() {
        let ids = IdSource::new(MAX_PRODUCER);
        let id = ids.next(u64::MAX);
        assert_eq!(id.0, u64::MAX, "the largest tick and producer");
        // Ticks start at 1: id 0 is never handed out.
        assert_eq!(IdSource::new(0).next(0), JobId(1 << PRODUCER_BITS));
    }

    #[test]
    fn random_producers_stay_within_their_bits() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1_000 {
            assert!(IdSource::random(&mut rng).producer() <= MAX_PRODUCER);
        }
    }
}
