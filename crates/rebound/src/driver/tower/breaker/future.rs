use crate::breaker::{BreakerOpen, OwnedPermit};
use crate::tower::permit::PermitFuture;

/// The response future of [`Breaker`](super::Breaker): the call, reported
/// to the breaker when it ends, or [`BreakerOpen`] at once. The same future
/// as the throttle layer's; see [`PermitFuture`].
pub type ResponseFuture<F, C> = PermitFuture<F, C, OwnedPermit, BreakerOpen>;
