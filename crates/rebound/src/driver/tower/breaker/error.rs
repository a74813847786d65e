//! Errors of the breaker layer: the core's [`BreakerOpen`], so one
//! downcast works for the closure API and the layer alike.

pub use crate::breaker::BreakerOpen;
