use std::sync::Arc;

use tower_layer::Layer;

use super::Hedge;
use crate::classify::RetryErrors;
use crate::hedge::HedgePolicy;

/// Applies [`Hedge`] to a service: requests for which the predicate is
/// true (the idempotent ones) are hedged under the policy, and the first
/// response the classifier accepts wins.
///
/// ```
/// use rebound::{hedge::HedgePolicy, tower::hedge::HedgeLayer};
/// let layer = HedgeLayer::new(HedgePolicy::builder().build()?, |_: &u32| true);
/// # let _ = layer;
/// # Ok::<(), rebound::ConfigError>(())
/// ```
pub struct HedgeLayer<P, C = RetryErrors> {
    policy: Arc<HedgePolicy>,
    idempotent: P,
    classifier: C,
}

impl<P: Clone, C: Clone> Clone for HedgeLayer<P, C> {
    fn clone(&self) -> Self {
        HedgeLayer {
            policy: Arc::clone(&self.policy),
            idempotent: self.idempotent.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<P, C> std::fmt::Debug for HedgeLayer<P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<P> HedgeLayer<P> {
    /// A layer hedging the requests `idempotent` accepts. There is no
    /// default predicate: which requests may be sent twice is the caller's
    /// call (for HTTP: GET, HEAD, OPTIONS, and PUT/DELETE when the server
    /// honours their idempotency). Every response is acceptable and every
    /// error transient until [`classify`](Self::classify) says otherwise.
    pub fn new(policy: HedgePolicy, idempotent: P) -> Self {
        HedgeLayer {
            policy: Arc::new(policy),
            idempotent,
            classifier: RetryErrors,
        }
    }
}

impl<P, C> HedgeLayer<P, C> {
    /// Replaces the classifier (a `Classifier<Response, BoxError>`): a
    /// response it would retry (a 503) does not win, and an error it would
    /// not retry is permanent and ends the call at once. Default
    /// [`RetryErrors`]: every response wins, every error is transient.
    pub fn classify<C2>(self, classifier: C2) -> HedgeLayer<P, C2> {
        HedgeLayer {
            policy: self.policy,
            idempotent: self.idempotent,
            classifier,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &HedgePolicy {
        &self.policy
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for HedgeLayer<P, C> {
    type Service = Hedge<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_shared(
            inner,
            Arc::clone(&self.policy),
            self.idempotent.clone(),
            self.classifier.clone(),
        )
    }
}
