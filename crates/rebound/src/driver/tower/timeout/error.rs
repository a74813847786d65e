//! Errors of the timeout layer.

/// The call was cut off by the timeout layer: the same type as the closure
/// API's [`crate::timeout::Elapsed`], so one `downcast_ref` finds both.
pub use crate::timeout::Elapsed;
