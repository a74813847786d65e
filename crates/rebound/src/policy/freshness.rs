//! Freshness: how long a cached value is served without asking the
//! dependency, and when it is refreshed.
//!
//! A cache in front of a busy dependency protects it until an entry
//! expires: then every reader misses at once and the dependency takes the
//! whole herd (the *cache stampede*). Three rules spread that load, and a
//! [`Freshness`] holds them; it is a plain value the
//! [`StaleCache`](crate::fallback::StaleCache) consults (no I/O, no
//! waiting, its randomness drawn by the caller from an injected
//! [`RandomSource`](crate::RandomSource)):
//!
//! * **A time to live** (`ttl`): a value younger than its TTL is served
//!   without calling the dependency.
//! * **Staggered expiration** (`jitter` = *x* in [0, 1]): each entry's TTL
//!   is `ttl × U(1 − x, 1)`, drawn when it is stored, so entries written
//!   together (a cache warmed at start-up, a batch) do not expire together.
//! * **Probabilistic early refresh** (`early_refresh` = β > 0): the
//!   XFetch rule of Vattani, Chierichetti and Lowenstein, *Optimal
//!   Probabilistic Cache Stampede Prevention* (VLDB 2015). A reader whose
//!   entry still has `remaining` to live refreshes it now if
//!   `δ · β · (−ln u) ≥ remaining`, with *u* uniform in (0, 1] and δ the
//!   time the entry's last load took. So one reader, a little before
//!   expiry, reloads while the others keep reading. The probability that a
//!   given read refreshes is `exp(−remaining / (δ · β))`
//!   ([`early_refresh_probability`](Freshness::early_refresh_probability)):
//!   1/e when `remaining = δβ`, one half when `remaining = δβ·ln 2`.
//!   β = 1 is the paper's optimum; a larger β refreshes earlier.
//!
//! ```
//! use std::time::Duration;
//! use rebound::freshness::Freshness;
//!
//! let fresh = Freshness::builder(Duration::from_secs(60))
//!     .jitter(0.1)        // each entry lives 54 s to 60 s
//!     .early_refresh(1.0) // XFetch with β = 1
//!     .build()?;
//! assert_eq!(fresh.ttl_for(0.0), Duration::from_secs(60));
//! assert_eq!(fresh.ttl_for(1.0), Duration::from_secs(54));
//! # Ok::<(), rebound::ConfigError>(())
//! ```

use std::time::{Duration, Instant};

use crate::ConfigError;

/// The freshness rules of a cache: TTL, jitter, early refresh. A small
/// `Copy` value; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness {
    ttl: Duration,
    jitter: f64,
    early_refresh: Option<f64>,
    stale_while_loading: bool,
}

/// What a read finds, by [`Freshness::judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Younger than its TTL: serve it.
    Fresh,
    /// Still fresh, but this reader should reload it now (early refresh).
    RefreshEarly,
    /// Past its TTL: load it.
    Expired,
}

impl Freshness {
    /// A builder: values live `ttl`, no jitter, no early refresh, readers
    /// wait for a load rather than take a stale value.
    pub fn builder(ttl: Duration) -> FreshnessBuilder {
        FreshnessBuilder {
            f: Freshness {
                ttl,
                jitter: 0.0,
                early_refresh: None,
                stale_while_loading: false,
            },
        }
    }

    /// The TTL before jitter.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The jitter fraction *x*: TTLs are drawn from `ttl × U(1 − x, 1)`.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The early refresh factor β, if early refresh is on.
    pub fn early_refresh(&self) -> Option<f64> {
        self.early_refresh
    }

    /// Whether, while one reader loads an expired entry, the others are
    /// served the stale value (within the cache's `max_age`) instead of
    /// waiting.
    pub fn stale_while_loading(&self) -> bool {
        self.stale_while_loading
    }

    /// The TTL of one entry, for a uniform draw `u` in [0, 1]:
    /// `ttl × (1 − x·u)`, so always in `[ttl × (1 − x), ttl]`.
    pub fn ttl_for(&self, u: f64) -> Duration {
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.ttl.mul_f64(1.0 - self.jitter * u)
    }

    /// The probability that one read with `remaining` left before expiry
    /// refreshes early, for an entry whose load took `load_time`:
    /// `exp(−remaining / (load_time · β))`; 0 without early refresh or
    /// when the load took no time.
    pub fn early_refresh_probability(&self, load_time: Duration, remaining: Duration) -> f64 {
        match self.early_refresh {
            Some(beta) if !load_time.is_zero() => {
                (-remaining.as_secs_f64() / (load_time.as_secs_f64() * beta)).exp()
            }
            _ => 0.0,
        }
    }

    /// Judges an entry expiring at `expires_at`, whose load took
    /// `load_time`, read at `now`; `u` is a uniform draw in [0, 1) for the
    /// early refresh (unused without it).
    pub fn judge(&self, now: Instant, expires_at: Instant, load_time: Duration, u: f64) -> Verdict {
        let Some(remaining) = expires_at
            .checked_duration_since(now)
            .filter(|r| !r.is_zero())
        else {
            return Verdict::Expired;
        };
        if let Some(beta) = self.early_refresh {
            // XFetch: −ln(1 − u) is an exponential draw of mean 1.
            let draw = -(1.0 - u.clamp(0.0, 1.0 - f64::EPSILON)).ln();
            if load_time.as_secs_f64() * beta * draw >= remaining.as_secs_f64() {
                return Verdict::RefreshEarly;
            }
        }
        Verdict::Fresh
    }
}

/// Builder for [`Freshness`].
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct FreshnessBuilder {
    f: Freshness,
}

impl FreshnessBuilder {
    /// The jitter fraction *x* in [0, 1]: each entry lives
    /// `ttl × U(1 − x, 1)`. Default 0 (every entry lives `ttl`).
    pub fn jitter(mut self, x: f64) -> Self {
        self.f.jitter = x;
        self
    }

    /// Turns on probabilistic early refresh with factor β > 0 (1 is the
    /// XFetch paper's optimum). Default: off.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.f.early_refresh = Some(beta);
        self
    }

    /// While one reader loads an expired entry, serve the others the stale
    /// value (if younger than the cache's `max_age`) instead of making them
    /// wait. Default `false`: they wait for the load (bounded by the
    /// coalescer's `max_wait`), then fall back to the stale value.
    pub fn stale_while_loading(mut self, yes: bool) -> Self {
        self.f.stale_while_loading = yes;
        self
    }

    /// The rules, validated: `ttl` above zero, `jitter` in [0, 1],
    /// `early_refresh` finite and above zero.
    pub fn build(self) -> Result<Freshness, ConfigError> {
        const C: &str = "cache freshness";
        let f = self.f;
        if f.ttl.is_zero() {
            return Err(ConfigError::new(C, "ttl", "must be above zero"));
        }
        if !(0.0..=1.0).contains(&f.jitter) {
            return Err(ConfigError::new(
                C,
                "jitter",
                format!("must be in [0, 1], got {}", f.jitter),
            ));
        }
        if let Some(beta) = f.early_refresh {
            if !(beta.is_finite() && beta > 0.0) {
                return Err(ConfigError::new(
                    C,
                    "early_refresh",
                    format!("must be a finite number above zero, got {beta}"),
                ));
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_by_name() {
        let s = Duration::from_secs(1);
        assert_eq!(
            Freshness::builder(Duration::ZERO)
                .build()
                .unwrap_err()
                .field(),
            "ttl"
        );
        assert_eq!(
            Freshness::builder(s)
                .jitter(1.5)
                .build()
                .unwrap_err()
                .field(),
            "jitter"
        );
        assert_eq!(
            Freshness::builder(s)
                .jitter(f64::NAN)
                .build()
                .unwrap_err()
                .field(),
            "jitter"
        );
        let e = Freshness::builder(s)
            .early_refresh(0.0)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "early_refresh");
    }

    #[test]
    fn an_expired_entry_is_expired_whatever_the_draw() {
        let f = Freshness::builder(Duration::from_secs(1))
            .early_refresh(1.0)
            .build()
            .unwrap();
        let now = Instant::now();
        assert_eq!(
            f.judge(now, now, Duration::from_secs(1), 0.5),
            Verdict::Expired
        );
    }
}
