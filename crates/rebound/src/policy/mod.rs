//! Policies decide: each is a plain state machine that, given the time
//! (from an injected [`Clock`](crate::Clock)) and an outcome, answers
//! "admit?", "retry, after how long?", "launch another copy?", "open?". None
//! sleeps, spawns or does I/O; the drivers in `crate::driver` do that.

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod classify;
pub mod fallback;
pub mod freshness;
pub mod hedge;
#[cfg(feature = "tokio")]
pub mod pipeline;
pub mod retry;
pub(crate) mod score;
pub(crate) mod stale_cache;
pub mod throttle;
