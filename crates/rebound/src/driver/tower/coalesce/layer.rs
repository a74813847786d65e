//! The layer of [`Coalesce`](super::Coalesce).

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::Coalesce;
use crate::coalesce::Coalescer;
use crate::tower::BoxError;

/// Applies [`Coalesce`]: requests with the same key, made by `key(&request)`
/// (`None`: pass the request through), share one call of the inner
/// service. Every service the layer makes shares the one [`Coalescer`].
///
/// ```
/// use rebound::coalesce::Coalescer;
/// use rebound::tower::coalesce::CoalesceLayer;
///
/// // Reads are coalesced by path; writes pass.
/// let layer = CoalesceLayer::new(
///     Coalescer::new().dependency("catalog"),
///     |req: &(bool, String)| (!req.0).then(|| req.1.clone()),
/// );
/// # let _: CoalesceLayer<String, u32, _> = layer;
/// ```
pub struct CoalesceLayer<K, T, F> {
    herd: Coalescer<K, T, BoxError>,
    key: Arc<F>,
}

impl<K, T, F> Clone for CoalesceLayer<K, T, F> {
    fn clone(&self) -> Self {
        CoalesceLayer {
            herd: self.herd.clone(),
            key: Arc::clone(&self.key),
        }
    }
}

impl<K, T, F> fmt::Debug for CoalesceLayer<K, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceLayer")
            .field("herd", &self.herd)
            .finish_non_exhaustive()
    }
}

impl<K, T, F> CoalesceLayer<K, T, F> {
    /// A layer merging requests with the same `key(&request)` through
    /// `herd` (its dependency label, wait bound, error sharing and clock).
    pub fn new(herd: Coalescer<K, T, BoxError>, key: F) -> Self {
        CoalesceLayer {
            herd,
            key: Arc::new(key),
        }
    }

    /// The coalescer.
    pub fn coalescer(&self) -> &Coalescer<K, T, BoxError> {
        &self.herd
    }
}

impl<S, K, T, F> Layer<S> for CoalesceLayer<K, T, F> {
    type Service = Coalesce<S, K, T, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Coalesce {
            inner,
            herd: self.herd.clone(),
            key: Arc::clone(&self.key),
        }
    }
}
