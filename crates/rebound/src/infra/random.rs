//! Randomness, injected.
//!
//! Jitter and randomized break durations draw from a [`RandomSource`]. The
//! default draws fresh entropy; a seeded source makes every draw reproducible,
//! which tests and the simulator rely on.
//!
//! ```
//! use rebound::RandomSource;
//!
//! let a = RandomSource::seeded(42);
//! let b = RandomSource::seeded(42);
//! assert_eq!(a.rng().u64(..), b.rng().u64(..));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where random draws come from. Cheap to clone; clones share a seeded
/// sequence.
#[derive(Clone, Default)]
pub struct RandomSource {
    seed: Option<Arc<Seeded>>,
}

struct Seeded {
    seed: u64,
    next: AtomicU64,
}

impl RandomSource {
    /// Fresh entropy for every generator (the default).
    pub const fn entropy() -> Self {
        RandomSource { seed: None }
    }

    /// A reproducible source: the n-th generator handed out by this source
    /// (and its clones) is always the same, for the same seed.
    pub fn seeded(seed: u64) -> Self {
        RandomSource {
            seed: Some(Arc::new(Seeded {
                seed,
                next: AtomicU64::new(0),
            })),
        }
    }

    /// A new generator. Executors take one per call, lazily, only when a
    /// retry needs a random delay.
    pub fn rng(&self) -> fastrand::Rng {
        match &self.seed {
            None => fastrand::Rng::new(),
            Some(s) => {
                let n = s.next.fetch_add(1, Ordering::Relaxed);
                fastrand::Rng::with_seed(splitmix64(s.seed ^ splitmix64(n)))
            }
        }
    }

    /// One uniform draw in `[0, 1)` from the shared sequence, without a
    /// generator of its own: lock-free, for policies shared across threads
    /// (the adaptive throttle). Seeded sources give the same sequence of
    /// draws for the same order of calls.
    pub fn f64(&self) -> f64 {
        match &self.seed {
            None => fastrand::f64(),
            Some(s) => {
                let n = s.next.fetch_add(1, Ordering::Relaxed);
                (splitmix64(s.seed ^ splitmix64(n ^ 0xA5A5_A5A5)) >> 11) as f64
                    * (1.0 / (1u64 << 53) as f64)
            }
        }
    }

    /// The seed, if this source is seeded.
    pub fn seed(&self) -> Option<u64> {
        self.seed.as_ref().map(|s| s.seed)
    }
}

impl fmt::Debug for RandomSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.seed {
            None => f.write_str("RandomSource::Entropy"),
            Some(s) => write!(f, "RandomSource::Seeded({})", s.seed),
        }
    }
}

/// SplitMix64 finalizer: spreads consecutive counters over the seed space.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sources_repeat_and_generators_differ() {
        let a = RandomSource::seeded(7);
        let b = RandomSource::seeded(7);
        let (mut a1, mut a2) = (a.rng(), a.rng());
        let (mut b1, mut b2) = (b.rng(), b.rng());
        let (x1, x2) = (a1.u64(..), a2.u64(..));
        assert_eq!(x1, b1.u64(..));
        assert_eq!(x2, b2.u64(..));
        assert_ne!(x1, x2);
    }
}
