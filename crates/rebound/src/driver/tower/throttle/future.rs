use crate::throttle::{ThrottlePermit, Throttled};
use crate::tower::permit::PermitFuture;

/// The response future of [`Throttle`](super::Throttle): the call, reported
/// to the throttle when it ends (accepted or rejected), or [`Throttled`] at
/// once. The same future as the breaker layer's; see [`PermitFuture`].
pub type ResponseFuture<F, C> = PermitFuture<F, C, ThrottlePermit, Throttled>;
