//! # rebound
//!
//! Retries that do not make outages worse.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Backoff, Jitter, RetryBudget, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One policy per dependency: 3 attempts (the first and 2 retries),
//! // exponential backoff with full jitter, a 2 s total budget of time,
//! // and a retry budget shared by every call so an outage is not amplified.
//! let inventory = RetryPolicy::builder()
//!     .dependency("inventory")
//!     .max_attempts(3)
//!     .backoff(Backoff::exponential(Duration::from_millis(100)).with_jitter(Jitter::Full))
//!     .attempt_timeout(Duration::from_millis(300))
//!     .total_timeout(Duration::from_secs(2))
//!     .budget(RetryBudget::ratio(0.1).build()?)
//!     .build()?;
//!
//! let mut attempts = 0;
//! let reserved = inventory
//!     .retry(|| {
//!         attempts += 1;
//!         let first = attempts == 1;
//!         async move {
//!             if first {
//!                 Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
//!             } else {
//!                 Ok("reservation r-17")
//!             }
//!         }
//!     })
//!     .await?;
//! assert_eq!(reserved, "reservation r-17");
//! assert_eq!(attempts, 2);
//! # Ok(()) }
//! ```
//!
//! ## What is here
//!
//! | piece | what it does |
//! |---|---|
//! | [`Backoff`], [`Jitter`] | how long to wait before each retry: constant, linear, exponential; full, equal, decorrelated, proportional jitter |
//! | [`RetryPolicy`] | attempts, backoff, per-attempt and total timeouts, server-requested delays, budget |
//! | [`RetryPolicy::retry`], [`RetryPolicy::retry_blocking`] | async (tokio) and blocking executors |
//! | [`Classifier`], [`Decision`] | transient vs permanent, and `Retry-After` |
//! | [`RetryBudget`] | a cap on retries shared by all calls: ratio (SRE/Finagle) or token bucket (gRPC) |
//! | [`CircuitBreaker`] | stop calling a failing dependency, probe it, resume: count or time windows, failure and slow-call ratios, consecutive failures |
//! | [`Bulkhead`] | a cap on concurrent calls, with a bounded queue and a maximum wait |
//! | `Timeout` | a standalone async timeout, counted in `dependency_timeout_total` |
//! | [`RetryState`] | the sans-IO state machine every executor drives |
//! | [`Clock`], [`ManualClock`], [`RandomSource`] | injected time and randomness, for deterministic tests |
//! | [`telemetry`] | metric names: `retry_attempts_total`, `retry_exhausted_total`, `dependency_timeout_total`, `circuit_breaker_open_total`, `fallback_used_total`, … |
//! | [`hedge`] | hedged requests: a second attempt after a fixed or percentile delay, the first *acceptable* answer wins (a classifier turns away a fast 503), budgeted, idempotent operations only |
//! | [`fallback`] | a degraded answer on failure, open breaker, exhausted budget or full bulkhead; a stale-on-error cache with a maximum age, for closures and as a tower layer |
//! | `coalesce` | request coalescing: concurrent identical calls share one execution (thundering herd), errors shared or not, a bounded wait for followers; for closures and as a tower layer |
//! | [`freshness`] | a cache's TTL with jitter (staggered expiry) and probabilistic early refresh (XFetch); `Fallback::read_through` puts the cache and the coalescer together (cache-miss locking) |
//! | `pipeline` | strategies composed in a declared order (timeouts, retry, hedge, breaker, bulkhead, throttle), with a validated `standard()` preset, for closures and as a tower layer |
//! | `tower` | tower layers for every policy (feature `tower`) |
//! | `config` | TOML / JSON configuration of every policy, with human durations (feature `serde`) |
//!
//! ## Vocabulary
//!
//! * An **attempt** is one call of your operation. `max_attempts` counts the
//!   first one. A **retry** is an attempt after the first.
//! * A **transient** failure may go away if you wait (timeouts, resets, 503,
//!   429); a **permanent** one will not (400, 401, 403, 404, 422).
//! * **Exponential** means `base * factor^n`, never `base^n`.
//!
//! ## Design
//!
//! Policies decide, drivers act: every policy is a plain state machine that
//! reads the time from an injected [`Clock`] and never sleeps or spawns. The
//! executors here, the tower layers, the HTTP middleware and the simulator
//! all drive the same code.

#![cfg_attr(docsrs, feature(doc_cfg))]

// The tree shows the architecture: `policy` decides (sans-IO state
// machines: no I/O, no sleeping, time from an injected clock), `driver`
// acts (executors, runners and tower layers that wait and call, each a
// loop of "ask the machine, do the I/O, tell the machine"), `infra` is the
// plumbing both stand on (clock, randomness, sliding windows, telemetry,
// errors). The public modules below are concepts, re-exported from there.
mod driver;
mod infra;
mod policy;

#[cfg(feature = "serde")]
pub mod config;

pub use infra::{clock, error, random, state, telemetry};
pub use policy::{
    backoff, breaker, budget, bulkhead, classify, fallback, freshness, hedge, retry, throttle,
};

#[cfg(feature = "tower")]
pub use driver::tower;
#[cfg(feature = "tokio")]
pub use driver::{coalesce, timeout};
#[cfg(feature = "tokio")]
pub use policy::pipeline;

pub use backoff::{Backoff, BackoffState, Jitter, Schedule};
pub use breaker::{BreakerOpen, CircuitBreaker, CircuitBreakerBuilder};
pub use budget::{BudgetSnapshot, RetryBudget};
pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadFull, BulkheadPermit};
pub use classify::{Classifier, Decision, Outcome, RetryErrors};
pub use clock::{Clock, ManualClock};
pub use error::ConfigError;
pub use random::RandomSource;
pub use retry::{
    Attempt, Failure, Next, NoHook, Report, RetryError, RetryEvent, RetryExecutor, RetryHook,
    RetryPolicy, RetryPolicyBuilder, RetryState, Stop,
};
#[cfg(feature = "tokio")]
pub use timeout::{Elapsed, Timeout};
