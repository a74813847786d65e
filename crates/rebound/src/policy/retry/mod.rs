//! Retrying: the policy, its builder, the executors.
//!
//! A [`RetryPolicy`] says how often and how long to retry; an executor runs
//! your operation under it:
//!
//! * [`RetryPolicy::retry`] — async, on tokio (feature `tokio`, on by default);
//! * [`RetryPolicy::retry_blocking`] — on the current thread;
//! * [`RetryState`] — the sans-IO core both are built on, for your own drivers.
//!
//! **Attempts, not retries.** `max_attempts` counts the first call: with
//! `max_attempts(3)` the operation runs at most three times — the first
//! attempt and two retries. A *retry* is an attempt after the first.
//!
//! **Time.** A total timeout covers the whole call, attempts and delays
//! alike, measured on the policy's [`Clock`](crate::Clock). The executor never sleeps past
//! it: if the next delay would cross it, it stops at once with
//! [`Stop::DeadlineExceeded`]: fail fast. A per-attempt timeout
//! cuts off a single slow attempt (async only; a blocking call cannot be
//! interrupted) and is shortened to what is left of the total.
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Backoff, RetryBudget, RetryPolicy, Stop};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::builder()
//!     .dependency("inventory")
//!     .max_attempts(4)
//!     .backoff(Backoff::exponential(Duration::from_millis(50)))
//!     .attempt_timeout(Duration::from_millis(500))
//!     .total_timeout(Duration::from_secs(3))
//!     .budget(RetryBudget::ratio(0.1).build()?)
//!     .build()?;
//!
//! let mut calls = 0;
//! let stock = policy
//!     .retry(|| {
//!         calls += 1;
//!         let n = calls;
//!         async move {
//!             if n < 3 {
//!                 Err(std::io::Error::other("connection reset"))
//!             } else {
//!                 Ok(42)
//!             }
//!         }
//!     })
//!     .await?;
//! assert_eq!((stock, calls), (42, 3));
//! # Ok(()) }
//! ```

mod attempt;
mod builder;
mod policy;
mod report;
mod state;
mod stop;

#[cfg(feature = "tokio")]
pub use crate::driver::retry::AttemptIo;
pub use crate::driver::retry::{NoHook, RetryEvent, RetryExecutor, RetryHook};
pub use attempt::{Attempt, Next};
pub use builder::RetryPolicyBuilder;
pub(crate) use policy::RetryMetrics;
pub use policy::RetryPolicy;
pub use report::{Failure, Report, RetryError};
pub use state::RetryState;
pub use stop::Stop;
