use tower_layer::Layer;

use super::{Retry, SharedPolicy};
use crate::classify::RetryErrors;
use crate::RetryPolicy;

/// Applies [`Retry`] to a service. See the [module docs](super).
///
/// ```
/// use rebound::{tower::retry::RetryLayer, RetryPolicy};
/// let layer = RetryLayer::new(RetryPolicy::builder().max_attempts(2).build()?);
/// assert_eq!(layer.policy().max_attempts(), 2);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RetryLayer<C = RetryErrors> {
    policy: SharedPolicy,
    classifier: C,
}

impl<C> std::fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &*self.policy)
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A layer retrying under `policy`, every error and timeout (the
    /// default classifier). `policy` is a [`RetryPolicy`] (shared by
    /// reference count) or a `&'static RetryPolicy` (see [`SharedPolicy`]).
    pub fn new(policy: impl Into<SharedPolicy>) -> Self {
        RetryLayer {
            policy: policy.into(),
            classifier: RetryErrors,
        }
    }
}

impl<C> RetryLayer<C> {
    /// Replaces the classifier: a
    /// [`Classifier<Response, BoxError>`](crate::Classifier), e.g. a
    /// closure over [`Outcome`](crate::Outcome). Default: retry every error
    /// and timeout, accept every response.
    ///
    /// The classifier is cloned into every service the layer makes and
    /// every call: a closure that captures nothing (or only `Copy` values)
    /// costs nothing to clone; keep larger state behind an `Arc`.
    pub fn classify<C2: Clone>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            policy: self.policy,
            classifier,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_parts(inner, self.policy.clone(), self.classifier.clone())
    }
}
