//! Handlers, erased to one shape the worker drives.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use rebound::{Classifier, Decision, Outcome};
use serde::de::DeserializeOwned;

use super::context::{JobContext, JobError};

/// The longest error text kept per delivery (bytes); longer texts are cut at
/// a character boundary and marked.
pub const MAX_ERROR_TEXT: usize = 4096;

/// What a run reported, classified.
#[derive(Debug)]
pub(crate) enum Ran {
    Ok,
    Err { decision: Decision, error: String },
}

pub(crate) type BoxRun = Pin<Box<dyn Future<Output = Ran> + Send + 'static>>;

/// A handler with its classifier, erased.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn call(&self, ctx: JobContext, payload: Vec<u8>) -> BoxRun;
    fn classify_timeout(&self, after: Duration) -> Decision;
}

pub(crate) fn error_text(e: &dyn fmt::Display) -> String {
    let mut s = e.to_string();
    if s.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("… (truncated)");
    }
    s
}

/// How a payload becomes the handler's argument.
pub(crate) trait Decode<P>: Send + Sync + 'static {
    fn decode(payload: Vec<u8>) -> Result<P, String>;
}

pub(crate) struct Json;
impl<P: DeserializeOwned> Decode<P> for Json {
    fn decode(payload: Vec<u8>) -> Result<P, String> {
        serde_json::from_slice(&payload)
            .map_err(|e| format!("payload is not a valid {}: {e}", std::any::type_name::<P>()))
    }
}

pub(crate) struct Raw;
impl Decode<Vec<u8>> for Raw {
    fn decode(payload: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(payload)
    }
}

/// The handler's argument, decoder and error types, for the compiler only.
pub(crate) type Marker<P, D, E> = fn() -> (P, D, E);

pub(crate) struct FnHandler<F, P, D, C, E> {
    pub(crate) f: F,
    pub(crate) classifier: C,
    pub(crate) _p: PhantomData<Marker<P, D, E>>,
}

impl<F, Fut, P, D, C, E> ErasedHandler for FnHandler<F, P, D, C, E>
where
    F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    P: Send + 'static,
    D: Decode<P>,
    C: Classifier<(), E> + Clone + Send + Sync + 'static,
    E: fmt::Display + Send + 'static,
{
    fn call(&self, ctx: JobContext, payload: Vec<u8>) -> BoxRun {
        let p = match D::decode(payload) {
            Ok(p) => p,
            Err(error) => {
                // A payload that cannot be read will not read better later.
                return Box::pin(async move {
                    Ran::Err {
                        decision: Decision::DoNotRetry,
                        error,
                    }
                });
            }
        };
        let fut = (self.f)(ctx, p);
        let classifier = self.classifier.clone();
        Box::pin(async move {
            match fut.await {
                Ok(()) => Ran::Ok,
                Err(e) => Ran::Err {
                    decision: classifier.classify(Outcome::Err(&e)),
                    error: error_text(&e),
                },
            }
        })
    }

    fn classify_timeout(&self, after: Duration) -> Decision {
        self.classifier.classify(Outcome::Timeout(after))
    }
}

/// Adapts a handler returning any `E: Into<JobError>` to [`JobErrors`].
pub(crate) fn into_job_error<F, Fut, P, E>(
    f: F,
) -> impl Fn(JobContext, P) -> futures_util::future::MapErr<Fut, fn(E) -> JobError> + Send + Sync + 'static
where
    F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<JobError>,
{
    use futures_util::TryFutureExt;
    move |ctx, p| f(ctx, p).map_err(Into::into as fn(E) -> JobError)
}
