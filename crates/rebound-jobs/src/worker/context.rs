//! What a handler sees, and the error it can return.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rebound::{Classifier, Decision, Outcome};

use crate::job::JobId;

/// What a handler knows about the run it is in.
///
/// ```
/// use rebound_jobs::{JobContext, JobError};
///
/// async fn sync_invoice(ctx: JobContext, invoice: u64) -> Result<(), JobError> {
///     if let Some(previous) = ctx.previous_error() {
///         tracing::info!(attempt = ctx.attempt(), previous, "retrying invoice {invoice}");
///     }
///     // Side effects keyed by the job, so a second delivery is harmless:
///     let _key = ctx.idempotency_key();
///     Ok(())
/// }
/// # let _ = sync_invoice;
/// ```
#[derive(Debug, Clone)]
pub struct JobContext {
    pub(crate) id: JobId,
    pub(crate) queue: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) previous_error: Option<Arc<str>>,
    pub(crate) idempotency_key: Arc<str>,
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
    /// The payload as enqueued: the fingerprint of [`JobContext::once`].
    #[cfg(feature = "idempotency")]
    pub(crate) payload: Arc<[u8]>,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The queue the job came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// This run's attempt number, counting the first run as 1 (runs that
    /// crashed count; runs handed back by a shutdown do not).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The attempts the policy allows.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether this is the last attempt the policy allows.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The error the last failed run reported, if any.
    pub fn previous_error(&self) -> Option<&str> {
        self.previous_error.as_deref()
    }

    /// A key for this job's side effects, the same on every delivery and
    /// every attempt of the job (and after a redrive):
    /// `rebound-jobs:<queue>:<id>`. Pass it as an `Idempotency-Key` header,
    /// or to an idempotency store, so that a job delivered twice (at-least-once
    /// delivery) has its effect once. Ids are unique within one queue store;
    /// scope the key further if several stores share one idempotency store.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// Whether the worker is shutting down. A long handler can check it at a
    /// safe point and return early; the worker cancels it anyway when its
    /// shutdown wait runs out, and hands the job back uncounted.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A handler's error, carrying whether it is worth retrying.
///
/// Any `std::error::Error` converts into a **transient** `JobError` with
/// `?`; mark the others:
///
/// ```
/// use std::time::Duration;
/// use rebound::Decision;
/// use rebound_jobs::JobError;
///
/// let e = JobError::permanent(std::io::Error::other("invoice 42 does not exist"));
/// assert_eq!(e.decision(), Decision::DoNotRetry);
/// let e = JobError::retry_after(Duration::from_secs(3600), std::io::Error::other("429"));
/// assert_eq!(e.decision(), Decision::RetryAfter(Duration::from_secs(3600)));
/// let e = JobError::msg("partner API said 503");
/// assert_eq!(e.decision(), Decision::Retry);
/// ```
pub struct JobError {
    decision: Decision,
    error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl JobError {
    /// A transient failure: retry after the backoff delay.
    pub fn transient(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        JobError {
            decision: Decision::Retry,
            error: e.into(),
        }
    }

    /// A permanent failure: dead-letter at once (reason `permanent`).
    pub fn permanent(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        JobError {
            decision: Decision::DoNotRetry,
            error: e.into(),
        }
    }

    /// A transient failure whose cause asked for a delay (a `Retry-After`):
    /// retry no sooner than `delay` (longer if the backoff says so).
    pub fn retry_after(
        delay: Duration,
        e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        JobError {
            decision: Decision::RetryAfter(delay),
            error: e.into(),
        }
    }

    /// A transient failure with a message.
    pub fn msg(text: impl fmt::Display) -> Self {
        JobError::transient(text.to_string())
    }

    /// What the worker does about it.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// The error.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::transient(e)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("decision", &self.decision)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for JobError {
    /// The error and its sources, `: `-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        let mut source = self.error.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// The classifier of [`JobError`]s: the decision each error carries; a
/// timeout is transient.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobErrors;

impl Classifier<(), JobError> for JobErrors {
    fn classify(&self, outcome: Outcome<'_, (), JobError>) -> Decision {
        match outcome {
            Outcome::Ok(()) => Decision::DoNotRetry,
            Outcome::Err(e) => e.decision,
            Outcome::Timeout(_) => Decision::Retry,
        }
    }
}
