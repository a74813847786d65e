use tower_layer::Layer;

use super::Bulkhead;

/// Applies [`Bulkhead`] to a service. Every service it makes shares the
/// one bulkhead's slots.
///
/// ```
/// use rebound::tower::bulkhead::BulkheadLayer;
/// let layer = BulkheadLayer::new(rebound::Bulkhead::builder().max_concurrent(10).build()?);
/// # let _ = layer;
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: crate::Bulkhead,
}

impl BulkheadLayer {
    /// A layer capping services with `bulkhead`.
    pub fn new(bulkhead: crate::Bulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(inner, self.bulkhead.clone())
    }
}
