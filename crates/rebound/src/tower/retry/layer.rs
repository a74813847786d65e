use std::sync::Arc;

use tower_layer::Layer;

use super::{Retry, Shared};
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
pub struct RetryLayer<C = RetryErrors> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for RetryLayer<C> {
    fn clone(&self) -> Self {
        RetryLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C> std::fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A layer retrying under `policy`, every error and timeout (the
    /// default classifier).
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            shared: Arc::new(Shared::new(policy, RetryErrors)),
        }
    }
}

impl<C> RetryLayer<C> {
    /// Replaces the classifier: a
    /// [`Classifier<Response, BoxError>`](crate::Classifier), e.g. a
    /// closure over [`Outcome`](crate::Outcome). Default: retry every error
    /// and timeout, accept every response.
    pub fn classify<C2>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            shared: Arc::new(Shared::new(self.shared.policy.clone(), classifier)),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }
}

impl<S, C> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_shared(inner, Arc::clone(&self.shared))
    }
}
