//! The run's source of randomness for the model (arrivals, service times,
//! failures, network hops).
//!
//! Policies draw their jitter from their own seeded
//! [`rebound::RandomSource`]; the model draws from this. Both are derived
//! from the run's seed, so a run is a pure function of it.
//!
//! ```
//! use rebound_sim::SimRng;
//! let (mut a, mut b) = (SimRng::new(3), SimRng::new(3));
//! assert_eq!(a.normal(), b.normal());
//! assert_eq!(a.exponential(2.0), b.exponential(2.0));
//! ```

/// A seeded generator with normal and exponential draws.
#[derive(Debug, Clone)]
pub struct SimRng {
    rng: fastrand::Rng,
    spare: Option<f64>,
}

impl SimRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng {
            rng: fastrand::Rng::with_seed(seed),
            spare: None,
        }
    }

    /// `U[0, 1)`.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        self.rng.f64()
    }

    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    pub fn u32(&mut self, n: u32) -> u32 {
        self.rng.u32(0..n)
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn u64_in(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.u64(lo..=hi)
    }

    /// A standard normal draw: Marsaglia's polar method, which yields two
    /// draws per logarithm and no trigonometry; the second is kept for the
    /// next call.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.rng.f64() - 1.0;
            let v = 2.0 * self.rng.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let m = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * m);
                return u * m;
            }
        }
    }

    /// An exponential draw with the given mean (inverse CDF).
    #[inline]
    pub fn exponential(&mut self, mean: f64) -> f64 {
        // 1 - U[0,1) lies in (0, 1], so the logarithm is finite.
        -mean * (1.0 - self.rng.f64()).ln()
    }
}
