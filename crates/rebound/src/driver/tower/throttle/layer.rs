use tower_layer::Layer;

use super::Throttle;
use crate::classify::RetryErrors;
use crate::throttle::AdaptiveThrottle;

/// Applies [`Throttle`] to a service. Every service it makes shares the one
/// throttle's window.
///
/// ```
/// use rebound::{throttle::AdaptiveThrottle, tower::throttle::ThrottleLayer};
/// let layer = ThrottleLayer::new(AdaptiveThrottle::builder().k(2.0).build()?);
/// # let _ = layer;
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ThrottleLayer<C = RetryErrors> {
    throttle: AdaptiveThrottle,
    classifier: C,
}

impl ThrottleLayer {
    /// A layer throttling with `throttle`; every error counts as the
    /// backend rejecting.
    pub fn new(throttle: AdaptiveThrottle) -> Self {
        ThrottleLayer {
            throttle,
            classifier: RetryErrors,
        }
    }
}

impl<C> ThrottleLayer<C> {
    /// Replaces the classifier: outcomes it calls transient count as the
    /// backend rejecting. Default: every error.
    pub fn classify<C2>(self, classifier: C2) -> ThrottleLayer<C2> {
        ThrottleLayer {
            throttle: self.throttle,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for ThrottleLayer<C> {
    type Service = Throttle<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttle::with_classifier(inner, self.throttle.clone(), self.classifier.clone())
    }
}
