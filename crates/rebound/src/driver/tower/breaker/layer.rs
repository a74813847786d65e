use tower_layer::Layer;

use super::Breaker;
use crate::classify::RetryErrors;
use crate::CircuitBreaker;

/// Applies [`Breaker`] to a service. Clones of the layer, and every service
/// it makes, share the one breaker.
///
/// ```
/// use rebound::{tower::breaker::BreakerLayer, CircuitBreaker};
/// let layer = BreakerLayer::new(CircuitBreaker::builder().build()?);
/// # let _ = layer;
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BreakerLayer<C = RetryErrors> {
    breaker: CircuitBreaker,
    classifier: C,
}

impl BreakerLayer {
    /// A layer guarding services with `breaker`; every error is a failure.
    pub fn new(breaker: CircuitBreaker) -> Self {
        BreakerLayer {
            breaker,
            classifier: RetryErrors,
        }
    }
}

impl<C> BreakerLayer<C> {
    /// Replaces the classifier: outcomes it calls transient (`Retry`,
    /// `RetryAfter`) count as failures. Default: every error and timeout.
    pub fn classify<C2>(self, classifier: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = Breaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::with_classifier(inner, self.breaker.clone(), self.classifier.clone())
    }
}
