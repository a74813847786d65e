//! The latency tracker behind the adaptive hedge delay.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (precision about 9 %).
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: latencies up to 2^41 ns (about 36 minutes).
const BUCKETS: usize = (42 * SUB) as usize;
/// When the histogram holds this many samples it halves, so old latencies
/// fade and the percentile follows the dependency.
const DECAY_AT: u32 = 2_000;
/// The cached percentile is recomputed every this many samples.
const RECOMPUTE_EVERY: u64 = 16;

/// A lock-free log-linear latency histogram with exponential decay.
pub(crate) struct LatencyTracker {
    counts: Box<[AtomicU32]>,
    total: AtomicU32,
    samples: AtomicU64,
    cached_nanos: AtomicU64,
    decaying: AtomicBool,
}

impl LatencyTracker {
    pub(crate) fn new() -> Self {
        LatencyTracker {
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            total: AtomicU32::new(0),
            samples: AtomicU64::new(0),
            cached_nanos: AtomicU64::new(0),
            decaying: AtomicBool::new(false),
        }
    }

    fn index(nanos: u64) -> usize {
        if nanos < SUB {
            return nanos as usize;
        }
        let msb = 63 - nanos.leading_zeros() as u64;
        let sub = (nanos >> (msb - SUB_BITS as u64)) & (SUB - 1);
        (((msb - SUB_BITS as u64 + 1) * SUB + sub) as usize).min(BUCKETS - 1)
    }

    /// The upper bound (in ns) of bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let octave = i / SUB - 1 + SUB_BITS as u64;
        let sub = i % SUB;
        ((SUB + sub + 1) << (octave - SUB_BITS as u64)) - 1
    }

    pub(crate) fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    pub(crate) fn cached(&self) -> Duration {
        Duration::from_nanos(self.cached_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn record(&self, latency: Duration, percentile: f64) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(nanos)].fetch_add(1, Ordering::Relaxed);
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let n = self.samples.fetch_add(1, Ordering::Relaxed) + 1;
        if total >= DECAY_AT && !self.decaying.swap(true, Ordering::Acquire) {
            let mut kept = 0;
            for c in self.counts.iter() {
                let v = c.load(Ordering::Relaxed);
                c.store(v / 2, Ordering::Relaxed);
                kept += v / 2;
            }
            self.total.store(kept, Ordering::Relaxed);
            self.decaying.store(false, Ordering::Release);
        }
        if n.is_multiple_of(RECOMPUTE_EVERY) || n < RECOMPUTE_EVERY * 2 {
            self.cached_nanos
                .store(self.percentile(percentile), Ordering::Relaxed);
        }
    }

    fn percentile(&self, p: f64) -> u64 {
        let counts: u64 = self
            .counts
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .sum();
        if counts == 0 {
            return 0;
        }
        let rank = ((counts as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(c.load(Ordering::Relaxed));
            if seen >= rank {
                return Self::upper(i);
            }
        }
        Self::upper(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values() {
        for nanos in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            123_456,
            10_000_000_000,
        ] {
            let i = LatencyTracker::index(nanos);
            assert!(LatencyTracker::upper(i) >= nanos, "{nanos} in {i}");
            if i > 0 {
                assert!(LatencyTracker::upper(i - 1) < nanos, "{nanos} in {i}");
            }
        }
    }

    #[test]
    fn percentile_tracks_latencies() {
        let t = LatencyTracker::new();
        for ms in 1..=100u64 {
            t.record(Duration::from_millis(ms), 0.95);
        }
        let p95 = Duration::from_nanos(t.percentile(0.95));
        assert!(
            p95 >= Duration::from_millis(95) && p95 <= Duration::from_millis(105),
            "{p95:?}"
        );
    }
}
