use std::sync::Arc;

use tower_layer::Layer;

use super::{Fallback, Shared};

/// Applies [`Fallback`] to a service.
///
/// ```
/// use rebound::fallback::{Cause, Fallback};
/// use rebound::tower::{fallback::FallbackLayer, BoxError};
/// let layer = FallbackLayer::new(Fallback::builder().build(), |_: Cause, _: BoxError| {
///     Ok::<_, BoxError>("default answer")
/// });
/// # let _ = layer;
/// ```
pub struct FallbackLayer<F> {
    shared: Arc<Shared<F>>,
}

impl<F> Clone for FallbackLayer<F> {
    fn clone(&self) -> Self {
        FallbackLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<F> std::fmt::Debug for FallbackLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("fallback", &self.shared.fallback)
            .finish_non_exhaustive()
    }
}

impl<F> FallbackLayer<F> {
    /// A layer answering the failures `fallback` covers with
    /// `handler(cause, error)`: `Ok` answers, `Err` passes an error on.
    pub fn new(fallback: crate::fallback::Fallback, handler: F) -> Self {
        FallbackLayer {
            shared: Arc::new(Shared { fallback, handler }),
        }
    }
}

impl<S, F> Layer<S> for FallbackLayer<F> {
    type Service = Fallback<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback::from_shared(inner, Arc::clone(&self.shared))
    }
}
