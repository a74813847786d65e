//! Retry budgets: a cap on retries across *all* calls, not per call.
//!
//! `max_attempts = 3` looks safe, but when a dependency is failing for
//! everyone it means every caller sends three times the load to the service
//! that is already struggling — and with three layers each retrying three
//! times, 27 times: every retry needs a budget (Google, *Site Reliability
//! Engineering*, 2016, chapter 22, "Addressing Cascading Failures"). A budget is
//! shared by every call to one dependency and allows retries only while
//! they are a small fraction of the traffic, so a blip is retried and an
//! outage is not amplified.
//!
//! Two kinds, both `Clone` (clones share state), `Send + Sync` and lock-free:
//!
//! * [`RetryBudget::ratio`] — retries ≤ `ratio` × requests over a sliding
//!   window, plus a floor of `min_retries_per_second` so low-traffic callers
//!   can still retry (Google SRE's 10 %, Finagle's `RetryBudget`, Envoy's
//!   `budget_percent`). A *request* is a first attempt; a retry withdraws
//!   one. Fractional ratios are exact: the check is
//!   `retries + 1 ≤ ratio × requests + floor` on whole counts, with the
//!   ratio and floor kept to 15 decimal places (so `0.3 × 10` is 3). The
//!   guarantee: whenever a retry is granted, the retries in the window that
//!   ends then (this one included) are at most `ratio × requests + floor`
//!   for the requests in that same window.
//! * [`RetryBudget::token_bucket`] — gRPC's retry throttling (gRFC A6): the
//!   bucket starts full at `max_tokens`; each failed attempt costs 1 token,
//!   each success refunds `token_ratio`; retries are allowed only while
//!   tokens > `max_tokens / 2`.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{RetryBudget, Clock};
//!
//! let (clock, time) = Clock::manual();
//! let budget = RetryBudget::ratio(0.1)
//!     .min_retries_per_second(0.0)
//!     .window(Duration::from_secs(10))
//!     .clock(clock)
//!     .build()
//!     .unwrap();
//! for _ in 0..20 {
//!     budget.record_request();
//! }
//! assert!(budget.try_withdraw()); // 1 ≤ 0.1 × 20
//! assert!(budget.try_withdraw()); // 2 ≤ 0.1 × 20
//! assert!(!budget.try_withdraw()); // 3 > 2: exhausted
//! time.advance(Duration::from_secs(11)); // the window slides past them
//! assert!(!budget.try_withdraw());
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{check, ConfigError};
use crate::infra::sliding_window::{Epochs, Series, Tick};
use crate::Clock;

/// A shared cap on retries. See the [module docs](self).
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

enum Inner {
    Ratio(Ratio),
    Bucket(Bucket),
}

impl RetryBudget {
    /// A ratio budget builder: retries ≤ `ratio` × requests + floor.
    ///
    /// # Default
    /// `min_retries_per_second` 10, `window` 10 s in 10 buckets, system clock.
    pub fn ratio(ratio: f64) -> RatioBudgetBuilder {
        RatioBudgetBuilder {
            ratio,
            min_per_second: 10.0,
            window: Duration::from_secs(10),
            buckets: 10,
            clock: Clock::default(),
        }
    }

    /// A gRPC-style token bucket (gRFC A6). `max_tokens` must be in
    /// `(0, 1000]` and `token_ratio` in `(0, max_tokens]`; both keep three
    /// decimal places, as gRPC does.
    ///
    /// ```
    /// use rebound::RetryBudget;
    /// let b = RetryBudget::token_bucket(10.0, 0.1).unwrap();
    /// for _ in 0..5 { b.record_failure(); } // 10 -> 5 tokens
    /// assert!(!b.try_withdraw());           // 5 is not > 10/2
    /// b.record_success();                   // 5.1
    /// assert!(b.try_withdraw());
    /// ```
    pub fn token_bucket(max_tokens: f64, token_ratio: f64) -> Result<Self, ConfigError> {
        const C: &str = "token bucket";
        check::positive_f64(C, "max_tokens", max_tokens)?;
        if max_tokens > 1000.0 {
            return Err(ConfigError::new(
                C,
                "max_tokens",
                format!("must be at most 1000 (got {max_tokens})"),
            ));
        }
        check::positive_f64(C, "token_ratio", token_ratio)?;
        if token_ratio > max_tokens {
            return Err(ConfigError::new(
                C,
                "token_ratio",
                format!("must be at most max_tokens ({max_tokens}; got {token_ratio})"),
            ));
        }
        let max = (max_tokens * 1000.0).round() as u64;
        Ok(RetryBudget {
            inner: Arc::new(Inner::Bucket(Bucket {
                max,
                ratio: ((token_ratio * 1000.0).round() as u64).max(1),
                tokens: AtomicU64::new(max),
            })),
        })
    }

    /// Records a request (a first attempt). Ratio budgets earn credit from it;
    /// token buckets ignore it.
    #[inline]
    pub fn record_request(&self) {
        if let Inner::Ratio(r) = &*self.inner {
            r.record_request();
        }
    }

    /// Whether the budget counts attempts' outcomes (a token bucket does; a
    /// ratio budget counts only requests and retries).
    #[inline]
    pub(crate) fn counts_outcomes(&self) -> bool {
        matches!(*self.inner, Inner::Bucket(_))
    }

    /// Records an attempt that succeeded. Token buckets refund `token_ratio`.
    #[inline]
    pub fn record_success(&self) {
        if let Inner::Bucket(b) = &*self.inner {
            b.add(b.ratio);
        }
    }

    /// Records an attempt that failed in a retryable way. Token buckets lose
    /// one token.
    #[inline]
    pub fn record_failure(&self) {
        if let Inner::Bucket(b) = &*self.inner {
            b.sub(1000);
        }
    }

    /// Asks to spend one retry. `true` means the retry may go ahead (and, for
    /// a ratio budget, it was counted); `false` means the budget is exhausted.
    #[inline]
    pub fn try_withdraw(&self) -> bool {
        match &*self.inner {
            Inner::Ratio(r) => r.try_withdraw(),
            Inner::Bucket(b) => b.tokens.load(Ordering::Acquire) * 2 > b.max,
        }
    }

    /// Whether `other` is this budget or a clone of it (so they share
    /// their counts).
    ///
    /// ```
    /// use rebound::RetryBudget;
    /// let a = RetryBudget::token_bucket(10.0, 0.1)?;
    /// assert!(a.same_as(&a.clone()));
    /// assert!(!a.same_as(&RetryBudget::token_bucket(10.0, 0.1)?));
    /// # Ok::<(), rebound::ConfigError>(())
    /// ```
    pub fn same_as(&self, other: &RetryBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Lists the budget in [`crate::state`] under `dependency` (a retry or
    /// hedge policy using it does so when it is built).
    pub(crate) fn observe(&self, dependency: &Arc<str>) {
        crate::state::register(dependency, &self.inner, |inner| {
            crate::state::Component::Budget(RetryBudget { inner }.snapshot().into())
        });
    }

    /// What the budget holds right now.
    pub fn snapshot(&self) -> BudgetSnapshot {
        match &*self.inner {
            Inner::Ratio(r) => {
                let (requests, retries) = r.window_counts(r.epochs.now());
                BudgetSnapshot::Ratio {
                    requests,
                    retries,
                    allowed: r.allowed(requests),
                }
            }
            Inner::Bucket(b) => BudgetSnapshot::TokenBucket {
                tokens: b.tokens.load(Ordering::Acquire) as f64 / 1000.0,
                max_tokens: b.max as f64 / 1000.0,
            },
        }
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryBudget")
            .field(&self.snapshot())
            .finish()
    }
}

/// The state of a budget at one instant, from [`RetryBudget::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BudgetSnapshot {
    /// A ratio budget.
    Ratio {
        /// Requests (first attempts) in the window.
        requests: u64,
        /// Retries spent in the window.
        retries: u64,
        /// Retries the window allows: `ratio × requests + floor`.
        allowed: f64,
    },
    /// A token bucket.
    TokenBucket {
        /// Tokens now.
        tokens: f64,
        /// The bucket's size.
        max_tokens: f64,
    },
}

/// Builder for a ratio budget; see [`RetryBudget::ratio`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RatioBudgetBuilder {
    ratio: f64,
    min_per_second: f64,
    window: Duration,
    buckets: u32,
    clock: Clock,
}

impl RatioBudgetBuilder {
    /// Retries allowed per second regardless of traffic, so callers with
    /// little traffic can still retry. Default 10 (Finagle's and Linkerd's).
    /// Set 0 for a pure ratio.
    ///
    /// The floor is per budget: a fleet of 100 processes, each with its own
    /// budget, may send `100 × floor` retries per second to a dead
    /// dependency on top of `ratio × requests`. For large fleets calling one
    /// dependency, lower the floor (or share a budget per process across
    /// its callers) — `rebound simulate --scenario budgets` shows the effect.
    pub fn min_retries_per_second(mut self, per_second: f64) -> Self {
        self.min_per_second = per_second;
        self
    }

    /// How far back requests and retries are remembered. Default 10 s.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many slices the window slides by (resolution). Default 10.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// The clock the window slides on. Default: the system clock (read
    /// coarsely, as [every sliding window](crate::clock) is). Use the same
    /// clock as the policies that share this budget.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates and builds the budget.
    pub fn build(self) -> Result<RetryBudget, ConfigError> {
        const C: &str = "ratio budget";
        check::ratio(C, "ratio", self.ratio)?;
        check::non_negative_f64(C, "min_retries_per_second", self.min_per_second)?;
        let epochs = Epochs::checked(C, self.clock, self.window, self.buckets)?;
        let floor = self.min_per_second * self.window.as_secs_f64();
        Ok(RetryBudget {
            inner: Arc::new(Inner::Ratio(Ratio {
                ratio_fixed: fixed(self.ratio) as u64,
                floor_fixed: fixed(floor).min(1 << 126),
                requests: Series::new(&epochs),
                retries: Series::new(&epochs),
                epochs,
            })),
        })
    }
}

/// The fixed-point unit of the ratio and the floor: both are kept to 15
/// decimal places, so the ratios people write (0.1, 0.3, 0.25, 0.05) are
/// exact — `0.3 × 10` allows 3 retries, though the `f64` 0.3 is a hair
/// below 0.3 — and the check is integer arithmetic, cheaper than floating
/// point.
const FIXED_ONE: u64 = 1_000_000_000_000_000;

/// `x × FIXED_ONE`, to the nearest integer, saturating.
fn fixed(x: f64) -> u128 {
    (x * FIXED_ONE as f64).round() as u128
}

struct Ratio {
    /// `ratio × FIXED_ONE` (≤ 10^15).
    ratio_fixed: u64,
    /// `floor × FIXED_ONE`, kept below 2^126 so the sum cannot overflow.
    floor_fixed: u128,
    epochs: Epochs,
    requests: Series,
    retries: Series,
}

impl Ratio {
    #[inline]
    fn record_request(&self) {
        self.requests.bump(self.epochs.now());
    }

    fn window_counts(&self, epoch: Tick) -> (u64, u64) {
        (self.requests.sum(epoch), self.retries.sum(epoch))
    }

    /// `ratio × requests + floor` from the fixed-point values the check
    /// uses, so `0.1 × 98 + 100` reads `109.8`, not `109.80000000000001`.
    fn allowed(&self, requests: u64) -> f64 {
        let fixed = u128::from(self.ratio_fixed) * u128::from(requests) + self.floor_fixed;
        // In billionths, rounded: exact in an f64 below 9 million retries,
        // and what is dropped is the fixed point's own rounding.
        let per_unit = u128::from(FIXED_ONE / 1_000_000_000);
        let billionths = (fixed + per_unit / 2) / per_unit;
        billionths as f64 / 1e9
    }
    #[inline]
    fn try_withdraw(&self) -> bool {
        let e = self.epochs.now();
        self.retries.bump_if(e, |retries| {
            // `retries + 1 ≤ ratio × requests + floor`, in fixed point.
            u128::from(retries + 1) * u128::from(FIXED_ONE)
                <= u128::from(self.ratio_fixed) * u128::from(self.requests.sum(e))
                    + self.floor_fixed
        })
    }
}

struct Bucket {
    /// Capacity in thousandths of a token.
    max: u64,
    /// Refund per success in thousandths of a token.
    ratio: u64,
    tokens: AtomicU64,
}

impl Bucket {
    #[inline]
    fn add(&self, milli: u64) {
        let max = self.max;
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t < max).then(|| (t + milli).min(max))
            });
    }

    #[inline]
    fn sub(&self, milli: u64) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t > 0).then(|| t.saturating_sub(milli))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn ratio_validation_names_fields() {
        let e = RetryBudget::ratio(1.5).build().unwrap_err();
        assert_eq!(e.field(), "ratio");
        let e = RetryBudget::ratio(f64::NAN).build().unwrap_err();
        assert_eq!(e.field(), "ratio");
        let e = RetryBudget::ratio(0.1)
            .min_retries_per_second(-1.0)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "min_retries_per_second");
        let e = RetryBudget::ratio(0.1)
            .window(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "window");
        let e = RetryBudget::ratio(0.1).buckets(0).build().unwrap_err();
        assert_eq!(e.field(), "buckets");
        assert_eq!(
            RetryBudget::token_bucket(0.0, 0.1).unwrap_err().field(),
            "max_tokens"
        );
        assert_eq!(
            RetryBudget::token_bucket(10.0, -1.0).unwrap_err().field(),
            "token_ratio"
        );
    }

    #[test]
    fn floor_allows_retries_without_traffic() {
        let m = ManualClock::new();
        let b = RetryBudget::ratio(0.0)
            .min_retries_per_second(1.0)
            .window(Duration::from_secs(3))
            .buckets(3)
            .clock(m.clone().into())
            .build()
            .unwrap();
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
        m.advance(Duration::from_secs(2));
        assert!(
            !b.try_withdraw(),
            "t=2s: the retries at t=0 are still in the 3 s window"
        );
        m.advance(Duration::from_secs(1));
        assert!(b.try_withdraw(), "t=3s: they slid out");
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
    }

    #[test]
    fn fractional_ratio_is_exact() {
        // tower#857: fractional percentages were mis-scaled.
        let m = ManualClock::new();
        let b = RetryBudget::ratio(0.25)
            .min_retries_per_second(0.0)
            .clock(m.into())
            .build()
            .unwrap();
        for _ in 0..10 {
            b.record_request();
        }
        let granted = (0..10).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 2); // floor(0.25 * 10)
    }

    #[test]
    fn fixed_point_check_is_exact_for_the_values_given() {
        let m = ManualClock::new();
        for (ratio, requests, granted) in [
            (0.1, 20, 2),
            (0.1, 19, 1),
            (1.0, 7, 7),
            (0.3, 10, 3),
            (0.7, 10, 7),
            (0.05, 100, 5),
        ] {
            let b = RetryBudget::ratio(ratio)
                .min_retries_per_second(0.0)
                .clock(m.clone().into())
                .build()
                .unwrap();
            for _ in 0..requests {
                b.record_request();
            }
            let n = (0..100).filter(|_| b.try_withdraw()).count();
            assert_eq!(n, granted, "{ratio} × {requests}");
        }
        // A huge floor allows everything without overflowing.
        let b = RetryBudget::ratio(1.0)
            .min_retries_per_second(1e300)
            .clock(m.into())
            .build()
            .unwrap();
        assert!((0..1000).all(|_| b.try_withdraw()));
    }

    #[test]
    fn token_bucket_is_bounded() {
        let b = RetryBudget::token_bucket(2.0, 1.0).unwrap();
        for _ in 0..10 {
            b.record_success();
        }
        assert_eq!(
            b.snapshot(),
            BudgetSnapshot::TokenBucket {
                tokens: 2.0,
                max_tokens: 2.0
            }
        );
        for _ in 0..10 {
            b.record_failure();
        }
        assert_eq!(
            b.snapshot(),
            BudgetSnapshot::TokenBucket {
                tokens: 0.0,
                max_tokens: 2.0
            }
        );
    }
}
