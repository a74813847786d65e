//! The atomics and lock the breaker and bulkhead are built on.
//!
//! Under `--cfg loom` these are loom's, so `tests/loom_*.rs` model-check the
//! very code that ships; otherwise they are std's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
