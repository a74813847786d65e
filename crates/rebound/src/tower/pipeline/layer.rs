use tower_layer::Layer;

use super::PipelineService;
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
pub struct PipelineLayer<C = RetryErrors> {
    pipeline: Pipeline,
    classifier: C,
}

impl<C> PipelineLayer<C> {
    pub(crate) fn new(pipeline: Pipeline, classifier: C) -> Self {
        PipelineLayer {
            pipeline,
            classifier,
        }
    }

    /// Replaces the classifier (a `Classifier<Response, BoxError>`).
    /// Default: every error and timeout is transient.
    pub fn classify<C2>(self, classifier: C2) -> PipelineLayer<C2> {
        PipelineLayer {
            pipeline: self.pipeline,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for PipelineLayer<C> {
    type Service = PipelineService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        PipelineService::new(inner, self.pipeline.clone(), self.classifier.clone())
    }
}
