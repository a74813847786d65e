use tower_layer::Layer;

use super::{AllRequests, PipelineService};
use crate::classify::RetryErrors;
use crate::pipeline::Pipeline;

/// Applies a [`Pipeline`] to a service; from
/// [`Pipeline::layer`](crate::pipeline::Pipeline::layer).
///
/// ```
/// use rebound::pipeline::Pipeline;
/// let layer = Pipeline::standard().build()?.layer();
/// # let _ = layer;
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PipelineLayer<C = RetryErrors, P = AllRequests> {
    pipeline: Pipeline,
    classifier: C,
    idempotent: P,
}

impl<C> PipelineLayer<C> {
    pub(crate) fn new(pipeline: Pipeline, classifier: C) -> Self {
        PipelineLayer {
            pipeline,
            classifier,
            idempotent: AllRequests,
        }
    }
}

impl<C, P> PipelineLayer<C, P> {
    /// Replaces the classifier (a `Classifier<Response, BoxError>`).
    /// Default: every error and timeout is transient.
    pub fn classify<C2>(self, classifier: C2) -> PipelineLayer<C2, P> {
        PipelineLayer {
            pipeline: self.pipeline,
            classifier,
            idempotent: self.idempotent,
        }
    }

    /// Says which requests may be sent more than once: a request for which
    /// `idempotent(&req)` is false goes through the pipeline once — its
    /// retry stages make one attempt (a transient failure stops with
    /// [`Stop::NotRetryable`](crate::Stop::NotRetryable)) and its hedge
    /// stages send no copy — under the same timeouts, breaker, bulkhead
    /// and throttle. Default: every request may be (the pipeline's own
    /// declaration). For HTTP: GET, HEAD, OPTIONS, and writes that carry an
    /// idempotency key.
    ///
    /// ```
    /// use rebound::pipeline::Pipeline;
    /// let layer = Pipeline::standard()
    ///     .build()?
    ///     .layer()
    ///     .idempotent_if(|req: &(&str, &str)| req.0 == "GET");
    /// # let _ = layer;
    /// # Ok::<(), rebound::ConfigError>(())
    /// ```
    pub fn idempotent_if<P2>(self, idempotent: P2) -> PipelineLayer<C, P2> {
        PipelineLayer {
            pipeline: self.pipeline,
            classifier: self.classifier,
            idempotent,
        }
    }
}

impl<S, C: Clone, P: Clone> Layer<S> for PipelineLayer<C, P> {
    type Service = PipelineService<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        PipelineService::with_idempotent(
            inner,
            self.pipeline.clone(),
            self.classifier.clone(),
            self.idempotent.clone(),
        )
    }
}
