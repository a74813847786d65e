use std::sync::Arc;

use tower_layer::Layer;

use super::Hedge;
use crate::hedge::HedgePolicy;

/// Applies [`Hedge`] to a service: requests for which the predicate is
/// true (the idempotent ones) are hedged under the policy.
///
/// ```
/// use rebound::{hedge::HedgePolicy, tower::hedge::HedgeLayer};
/// let layer = HedgeLayer::new(HedgePolicy::builder().build()?, |_: &u32| true);
/// # let _ = layer;
/// # Ok::<(), rebound::ConfigError>(())
/// ```
pub struct HedgeLayer<P> {
    policy: Arc<HedgePolicy>,
    idempotent: P,
}

impl<P: Clone> Clone for HedgeLayer<P> {
    fn clone(&self) -> Self {
        HedgeLayer {
            policy: Arc::clone(&self.policy),
            idempotent: self.idempotent.clone(),
        }
    }
}

impl<P> std::fmt::Debug for HedgeLayer<P> {
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
    /// honours their idempotency).
    pub fn new(policy: HedgePolicy, idempotent: P) -> Self {
        HedgeLayer {
            policy: Arc::new(policy),
            idempotent,
        }
    }
}

impl<S, P: Clone> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_shared(inner, Arc::clone(&self.policy), self.idempotent.clone())
    }
}
