//! Errors of the throttle layer: the core's [`Throttled`], so one downcast
//! works for the closure API and the layer alike.

pub use crate::throttle::Throttled;
