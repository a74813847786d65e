//! Hedging: cut tail latency by racing a second copy of a slow call.
//!
//! Most calls are fast; a few are slow for reasons that have nothing to do
//! with the request (a GC pause, a cold cache, a busy replica). Retrying
//! after a *timeout* waits for the slow call to fail first; a **hedge**
//! starts another attempt while the first is still running, once it has
//! taken longer than usual, and takes whichever answers first (Dean and
//! Barroso, "The Tail at Scale"; gRPC hedging, gRFC A6).
//!
//! * **When.** After a fixed [`HedgeDelay::Fixed`] delay, or adaptively at
//!   a latency percentile tracked online ([`HedgeDelay::Percentile`]): with
//!   the 95th percentile, about one call in twenty is hedged.
//! * **How many.** At most `max_attempts` attempts run for one call, the
//!   first included (default 2: one hedge).
//! * **Who wins.** The first *acceptable* result: a value the
//!   [classifier](crate::Classifier) would not retry (by default every
//!   value; bind one with [`HedgePolicy::classify`] to turn away, say, an
//!   HTTP 503). A result it
//!   would retry — an error, a timeout, a bad value — is *not acceptable*:
//!   it does not end the call while other attempts are running or may
//!   still start, and it starts the next hedge at once if the cap and
//!   budget allow. A permanent error (`DoNotRetry` on an error) is final
//!   and ends the call at once. The other attempts are cancelled (dropped —
//!   nothing is spawned, so nothing leaks). When every attempt ended
//!   unacceptable, the **last** one to end is returned, as the retry
//!   executor returns its last attempt.
//! * **Budget.** Every hedge withdraws from the same [`RetryBudget`] the
//!   retries use, so hedging cannot double the load on a dependency that is
//!   already struggling: when the budget is exhausted, calls stop hedging.
//! * **Only idempotent operations.** A hedge sends the same request twice;
//!   that is only safe when doing it twice is the same as doing it once. The
//!   executor takes the operation wrapped in [`Idempotent`], so the promise
//!   is written at the call site; the tower layer takes a predicate and
//!   sends other requests straight through.
//!
//! ```
//! use std::time::Duration;
//! use rebound::hedge::{HedgePolicy, Idempotent};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hedge = HedgePolicy::builder()
//!     .dependency("catalog")
//!     .fixed_delay(Duration::from_millis(50))
//!     .max_attempts(2)
//!     .build()?;
//!
//! let mut calls = 0;
//! let price = hedge
//!     .run(Idempotent(|| {
//!         calls += 1;
//!         let slow = calls == 1; // the first replica is having a bad day
//!         async move {
//!             let took = if slow { 5_000 } else { 10 };
//!             tokio::time::sleep(Duration::from_millis(took)).await;
//!             Ok::<_, std::io::Error>(if slow { "slow" } else { "hedged" })
//!         }
//!     }))
//!     .await?;
//! assert_eq!((price, calls), ("hedged", 2));
//! # Ok(()) }
//! ```

mod builder;
mod latency;
mod state;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::budget::RetryBudget;
use crate::Clock;

#[cfg(feature = "tokio")]
pub use crate::driver::hedge::ClassifiedHedge;
pub use builder::HedgePolicyBuilder;
pub(crate) use latency::LatencyTracker;
pub use state::{HedgeAction, HedgeCopy, HedgeState, Verdict};

/// The largest `max_attempts` (gRPC caps hedged attempts at 5; a little
/// more room here, but hedging wider than this only multiplies load).
pub const MAX_HEDGE_ATTEMPTS: u32 = 10;

/// `hedge_attempts_total`: hedged attempts started (attempts after the
/// first).
pub const HEDGE_ATTEMPTS_TOTAL: &str = crate::telemetry::HEDGE_ATTEMPTS_TOTAL;

/// When to start the next hedge.
///
/// # Default
/// [`HedgeDelay::ADAPTIVE`]: the 95th percentile of recent latencies, 100
/// ms until 20 were seen, never below 1 ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// A fixed delay after the previous attempt started.
    Fixed(Duration),
    /// The `percentile` (in (0, 1), e.g. 0.95) of recent attempt latencies,
    /// tracked online; `initial` until `min_samples` latencies were seen;
    /// never below `min`.
    Percentile {
        /// Which percentile, in (0, 1).
        percentile: f64,
        /// The delay used until enough latencies were recorded.
        initial: Duration,
        /// The floor of the adaptive delay.
        min: Duration,
        /// Latencies needed before the percentile is used.
        min_samples: u32,
    },
}

impl HedgeDelay {
    /// The default delay: the 95th percentile of recent latencies (so about
    /// one call in twenty is hedged), 100 ms until 20 latencies were seen,
    /// never below 1 ms.
    pub const ADAPTIVE: HedgeDelay = HedgeDelay::Percentile {
        percentile: 0.95,
        initial: Duration::from_millis(100),
        min: Duration::from_millis(1),
        min_samples: 20,
    };
}

impl Default for HedgeDelay {
    fn default() -> Self {
        HedgeDelay::ADAPTIVE
    }
}

/// A hedging policy. Cheap to clone; clones share the latency tracker.
/// Build one per dependency with [`HedgePolicy::builder`]; see the [module
/// docs](self).
#[derive(Clone)]
pub struct HedgePolicy {
    pub(crate) delay: HedgeDelay,
    pub(crate) max_attempts: u32,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) dependency: Arc<str>,
    pub(crate) clock: Clock,
    pub(crate) latency: Arc<LatencyTracker>,
}

impl fmt::Debug for HedgePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgePolicy")
            .field("delay", &self.delay)
            .field("max_attempts", &self.max_attempts)
            .field("budget", &self.budget)
            .field("dependency", &self.dependency)
            .finish_non_exhaustive()
    }
}

/// Marks an operation as safe to run more than once at the same time: the
/// only kind [`HedgePolicy::run`] accepts.
///
/// ```
/// use rebound::hedge::Idempotent;
/// let get_price = Idempotent(|| async { Ok::<_, std::io::Error>(42) });
/// # let _ = get_price;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Idempotent<F>(pub F);

impl HedgePolicy {
    /// A builder with the defaults listed on each setter.
    pub fn builder() -> HedgePolicyBuilder {
        HedgePolicyBuilder::new()
    }

    /// Attempts at most, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured delay.
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }

    /// The delay before the next hedge, now: the fixed delay, or the tracked
    /// percentile.
    #[inline]
    pub fn current_delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile {
                initial,
                min,
                min_samples,
                ..
            } => {
                if self.latency.samples() < u64::from(min_samples) {
                    initial
                } else {
                    self.latency.cached().max(min)
                }
            }
        }
    }

    /// Whether the delay follows tracked latencies (so drivers must measure
    /// them).
    #[inline]
    pub fn is_adaptive(&self) -> bool {
        matches!(self.delay, HedgeDelay::Percentile { .. })
    }

    /// The shared retry budget hedges withdraw from, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// The dependency name used as the metrics label.
    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// The policy's clock (latencies are measured on it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Records a call: counts a request against the budget. Drivers call it
    /// once per call, before the first attempt.
    #[inline]
    pub fn record_request(&self) {
        if let Some(b) = &self.budget {
            b.record_request();
        }
    }

    /// Asks to start hedge number `started` + 1: `true` if the cap and the
    /// budget allow it (the budget is then spent).
    #[inline]
    pub fn try_hedge(&self, started: u32) -> bool {
        if started >= self.max_attempts {
            return false;
        }
        let ok = self.budget.as_ref().is_none_or(RetryBudget::try_withdraw);
        if !ok {
            crate::telemetry::incr(
                crate::telemetry::RETRY_BUDGET_EXHAUSTED_TOTAL,
                &self.dependency,
            );
        } else {
            crate::telemetry::incr(HEDGE_ATTEMPTS_TOTAL, &self.dependency);
        }
        ok
    }

    /// Records how long a completed attempt took (feeds the adaptive delay).
    #[inline]
    pub fn record_latency(&self, latency: Duration) {
        if let HedgeDelay::Percentile { percentile, .. } = self.delay {
            self.latency.record(latency, percentile);
        }
    }
}
