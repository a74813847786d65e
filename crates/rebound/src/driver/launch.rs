//! How a driver starts calls: the operation of the closure API, or a
//! tower service that must be ready first.

use std::future::Future;
use std::task::{Context, Poll};

/// How a driver starts calls of its operation (copies of a hedged call,
/// a pipeline's attempts).
pub(crate) trait Launch {
    /// A call in flight.
    type Copy: Future;

    /// Whether a call can start now; an error result (a service that
    /// failed to become ready) stands for the call instead.
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), <Self::Copy as Future>::Output>>;

    /// Starts a call.
    fn launch(&mut self) -> Self::Copy;
}

/// The closure API's launcher: the operation, always ready.
pub(crate) struct Calls<F>(pub(crate) F);

impl<T, E, F, Fut> Launch for Calls<F>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Copy = Fut;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Result<T, E>>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn launch(&mut self) -> Fut {
        (self.0)()
    }
}
