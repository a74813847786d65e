//! Errors of the bulkhead layer: the core's [`BulkheadFull`], so one
//! downcast works for the closure API and the layer alike.

pub use crate::bulkhead::{BulkheadFull, FullReason};
