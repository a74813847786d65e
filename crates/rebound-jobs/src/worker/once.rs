//! Exactly-once effects on at-least-once delivery (feature `idempotency`):
//! [`JobContext::once`] runs a handler's side effect through
//! rebound-idempotency's [`Once`], keyed by the job.

use std::future::Future;

use rebound_idempotency::once::{Once, OnceContext, OnceError, Ran};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::context::{JobContext, JobError};

/// The scope of every key [`JobContext::once`] claims: records of jobs
/// never meet records of the HTTP layer or of other `Once` users sharing
/// the store.
pub const ONCE_SCOPE: &str = "rebound-jobs";

impl JobContext {
    /// Runs `effect` at most once to completion for this job's `step`, on
    /// every delivery and attempt of the job: a later delivery (the worker
    /// crashed or lost its lease after the effect, its ack was late or
    /// lost, the job was redriven) gets [`Ran::Replayed`] with the value
    /// the first completed run stored, and `effect` does not run again.
    ///
    /// The key is `(`[`ONCE_SCOPE`]`, `[`idempotency_key`](Self::idempotency_key)`:step)`,
    /// fingerprinted with the job's payload: a job id reused with another
    /// payload (two queue stores sharing one idempotency store) is refused
    /// rather than replayed. Name each effect of a job with its own `step`
    /// (`"charge"`, `"email"`), so that a job that failed after its first
    /// effect runs only the ones still missing on its next attempt.
    ///
    /// How [`Once`]'s answers become the job's outcome:
    ///
    /// | [`Once::run`] | `once` returns | the worker |
    /// |---|---|---|
    /// | the effect ran, or had run | `Ok(Ran::First(v))` / `Ok(Ran::Replayed(v))` | goes on with the handler |
    /// | the effect failed with `e` | `Err(e)` (the claim is released) | retries, or not, as `e` says |
    /// | another delivery is running the effect | `Err(`[`JobError::retry_after`]`(its lease left))` | retries once that lease would have run out |
    /// | the store failed before the effect | a transient `Err` | retries with backoff |
    /// | the key was used with another payload | a permanent `Err` | dead-letters (`permanent`) |
    /// | the value cannot be encoded or decoded as JSON | a permanent `Err` | dead-letters: retrying would run the effect again |
    ///
    /// What it cannot do: an effect whose run was cut off midway (the
    /// process killed inside `effect`) runs again on the next delivery,
    /// after the [`Once`] lease; [`OnceContext::previous_attempts`] tells
    /// it so, and [`OnceContext::fence`] can fence the downstream write.
    /// Keep the `Once` retention ([`ttl`](rebound_idempotency::once::OnceBuilder::ttl))
    /// longer than a job can live, retries and redrives included (the
    /// policy's maximum age plus the time a job may sit dead-lettered).
    ///
    /// ```
    /// use rebound_idempotency::{once::Once, MemoryStore};
    /// use rebound_jobs::{JobContext, JobError};
    ///
    /// async fn sync_invoice(ctx: JobContext, once: Once, invoice: u64) -> Result<(), JobError> {
    ///     // Pushed once, however often the job is delivered.
    ///     let receipt: String = ctx
    ///         .once(&once, "push", |run| async move {
    ///             // ... push the invoice, passing run.fence() along if the
    ///             // partner can refuse a stale writer.
    ///             Ok(format!("pushed {invoice} (fence {})", run.fence()))
    ///         })
    ///         .await?
    ///         .into_inner();
    ///     tracing::info!(%receipt, "invoice synced");
    ///     Ok(())
    /// }
    /// let once = Once::builder(MemoryStore::new()).name("invoices").build().unwrap();
    /// # let _ = (sync_invoice, once);
    /// ```
    pub async fn once<T, F, Fut>(
        &self,
        once: &Once,
        step: &str,
        effect: F,
    ) -> Result<Ran<T>, JobError>
    where
        F: FnOnce(OnceContext) -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
        T: Serialize + DeserializeOwned,
    {
        let key = format!("{}:{step}", self.idempotency_key);
        match once.run(ONCE_SCOPE, &key, &self.payload, effect).await {
            Ok(ran) => Ok(ran),
            Err(e) => Err(into_job_error(e, &key)),
        }
    }
}

fn into_job_error(e: OnceError<JobError>, key: &str) -> JobError {
    match e {
        OnceError::Failed(e) => e,
        OnceError::InProgress { retry_after } => JobError::retry_after(
            retry_after,
            format!("another delivery is running the effect {key} (its lease ends in {retry_after:?})"),
        ),
        OnceError::Store(e) => JobError::transient(format!(
            "the idempotency store failed before the effect {key} ran: {e}"
        )),
        OnceError::Mismatch => JobError::permanent(format!(
            "the effect key {key} was used before with another payload (do two queue stores share an idempotency store? scope their queue names apart)"
        )),
        other => JobError::permanent(format!("the effect {key}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_errors_become_job_errors_that_say_what_to_do() {
        use rebound::Decision;
        use std::time::Duration;
        let key = "rebound-jobs:q:7:push";
        let e = into_job_error(
            OnceError::InProgress {
                retry_after: Duration::from_secs(12),
            },
            key,
        );
        assert_eq!(e.decision(), Decision::RetryAfter(Duration::from_secs(12)));
        assert!(e.to_string().contains(key), "{e}");
        let e = into_job_error(OnceError::Mismatch, key);
        assert_eq!(e.decision(), Decision::DoNotRetry);
        assert!(e.to_string().contains("another payload"), "{e}");
        let e = into_job_error(OnceError::Failed(JobError::msg("503")), key);
        assert_eq!(
            (e.decision(), e.to_string()),
            (Decision::Retry, "503".into())
        );
        let bad = serde_json::from_str::<u8>("x").unwrap_err();
        let e = into_job_error(
            OnceError::Codec {
                what: "decoded",
                source: bad,
            },
            key,
        );
        assert_eq!(e.decision(), Decision::DoNotRetry);
        assert!(e.to_string().contains("decoded"), "{e}");
    }
}
