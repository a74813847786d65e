//! Errors of the pipeline layer: [`RetryFailed`], as the retry layer's.

#[allow(unused_imports)]
pub use crate::tower::retry::error::RetryFailed;
