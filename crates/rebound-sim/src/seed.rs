//! Seeds for runs, derived so that results never depend on thread scheduling.
//!
//! A sweep's runs execute in parallel in whatever order rayon picks; each
//! run's seed is a hash of the user's seed and the run's coordinates
//! (scenario, variant, point, run index), never a draw from a shared
//! generator.
//!
//! ```
//! use rebound_sim::seed::derive;
//! assert_eq!(derive(42, &[1, 2, 3]), derive(42, &[1, 2, 3]));
//! assert_ne!(derive(42, &[1, 2, 3]), derive(42, &[1, 2, 4]));
//! assert_ne!(derive(42, &[1, 2, 3]), derive(43, &[1, 2, 3]));
//! ```

/// The seed used when none is given (`--seed`).
pub const DEFAULT_SEED: u64 = 2015;

/// Mixes `seed` with the coordinates `parts` into a run seed.
pub fn derive(seed: u64, parts: &[u64]) -> u64 {
    let mut h = splitmix64(seed);
    for &p in parts {
        h = splitmix64(h ^ splitmix64(p.wrapping_add(0x632B_E59B_D9B4_E019)));
    }
    h
}

/// A stable number for a name (FNV-1a), to use as a coordinate.
pub fn name_id(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 finalizer.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
