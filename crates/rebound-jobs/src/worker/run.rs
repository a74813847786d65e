//! One delivery, driven: ask the policy, run the handler under its lease and
//! timeout, tell the policy, settle.

use std::sync::Arc;
use std::time::Duration;

use rebound::Backoff;
use tokio::sync::watch;
use tracing::Instrument;

use super::context::JobContext;
use super::handler::{error_text, Ran};
use super::{timer, Inner};
use crate::job::{ClaimedJob, Lease, RunReport, RunResult, Settlement};
use crate::policy::{ClaimAction, Disposition, RunEnd};
use crate::queue::QueueError;
use crate::time::wall;

/// Drives one claimed job to its settlement.
pub(crate) async fn run_job(
    w: Arc<Inner>,
    job: ClaimedJob,
    mut abort: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let lease = job.lease;
    let id = job.id();
    let now = wall(&w.clock);
    let attempt = match w.policy.on_claim(&job.state, now) {
        ClaimAction::Run { attempt } => attempt,
        ClaimAction::DeadLetter(reason) => {
            let why = match reason {
                crate::DeadLetterReason::Poison => format!(
                    "not run: {} earlier deliveries ended without an outcome (the worker crashed or lost its lease each time)",
                    job.state.unreported()
                ),
                crate::DeadLetterReason::Expired => "not run: older than the maximum age".into(),
                _ => "not run: no attempts left".into(),
            };
            tracing::warn!(queue = &*w.queue_name, job_id = %id, reason = reason.as_str(), "dead-lettering at claim: {why}");
            let s = Settlement::DeadLetter {
                state: job.state,
                reason,
                report: RunReport {
                    result: RunResult::NotRun,
                    error: Some(why),
                },
            };
            if settle(&w, &lease, s, w.clock.now() + w.config.lease)
                .await
                .is_ok()
            {
                w.metrics.dead_lettered(reason);
                w.refresh_depth().await;
            }
            return;
        }
    };

    let span = tracing::info_span!("job", queue = &*w.queue_name, job_id = %id, attempt);
    let ctx = JobContext {
        id,
        queue: w.queue_name.clone(),
        attempt,
        max_attempts: w.policy.max_attempts(),
        previous_error: job.last_error.as_deref().map(Arc::from),
        idempotency_key: Arc::from(format!("rebound-jobs:{}:{}", w.queue_name, id)),
        shutdown: stop,
        #[cfg(feature = "idempotency")]
        payload: Arc::from(job.payload.as_slice()),
    };
    let mut handle = tokio::spawn(w.handler.call(ctx, job.payload).instrument(span.clone()));
    // If this driver is dropped (the worker aborted), the run stops too.
    let _abort_run = AbortOnDrop(handle.abort_handle());
    let started = w.clock.now();
    let timeout_at = w.config.job_timeout.and_then(|t| started.checked_add(t));
    // The lease holds until this instant on our clock, unless renewed.
    let mut held_until = started + w.config.lease;
    let mut next_renew = started + w.config.renew_every;

    let (end, report) = loop {
        tokio::select! {
            biased;
            r = &mut handle => break match r {
                Ok(Ran::Ok) => (RunEnd::Succeeded, None),
                Ok(Ran::Err { decision, error }) => (
                    RunEnd::Failed(decision),
                    Some(RunReport { result: RunResult::Failed, error: Some(error) }),
                ),
                Err(e) if e.is_panic() => {
                    let msg = panic_message(e.into_panic());
                    (
                        RunEnd::Panicked,
                        Some(RunReport { result: RunResult::Panicked, error: Some(format!("panicked: {msg}")) }),
                    )
                }
                Err(e) => (
                    RunEnd::Failed(rebound::Decision::Retry),
                    Some(RunReport { result: RunResult::Failed, error: Some(error_text(&e)) }),
                ),
            },
            _ = async { let _ = abort.wait_for(|a| *a).await.is_ok(); } => {
                handle.abort();
                break (
                    RunEnd::Interrupted,
                    Some(RunReport {
                        result: RunResult::Interrupted,
                        error: Some("handed back: the worker shut down before the run finished".into()),
                    }),
                );
            }
            _ = timer::until(&w.clock, timeout_at) => {
                handle.abort();
                let after = w.config.job_timeout.unwrap_or_default();
                break (
                    RunEnd::TimedOut(w.handler.classify_timeout(after)),
                    Some(RunReport {
                        result: RunResult::TimedOut,
                        error: Some(format!("timed out after {after:?}")),
                    }),
                );
            }
            _ = timer::until(&w.clock, Some(next_renew)) => {
                let asked = w.clock.now();
                match w.queue.renew(&lease, wall(&w.clock), w.config.lease).await {
                    Ok(_) => {
                        held_until = asked + w.config.lease;
                        next_renew = asked + w.config.renew_every;
                    }
                    Err(e) if e.is_lease_lost() => {
                        // Someone else owns the job now: stop working on it.
                        handle.abort();
                        w.metrics.lease_lost();
                        tracing::warn!(parent: &span, "lease lost while running; cancelled the run: {e}");
                        return;
                    }
                    Err(e) => {
                        // Keep running and keep trying: the store may come back
                        // before the lease runs out.
                        tracing::warn!(parent: &span, "cannot renew the lease: {e}");
                        next_renew = w.clock.now() + w.config.renew_every.min(Duration::from_secs(1));
                    }
                }
            }
        }
    };

    let now = wall(&w.clock);
    let mut state = job.state;
    let disposition = {
        let mut rng = w.random.rng();
        w.policy.on_outcome(&mut state, end, now, &mut rng)
    };
    let report = report.unwrap_or(RunReport {
        result: RunResult::Failed,
        error: None,
    });
    let settlement = match disposition {
        Disposition::Ack => Settlement::Ack,
        Disposition::Retry { at, .. } => Settlement::Retry {
            state,
            run_at: at,
            report,
        },
        Disposition::HandBack => Settlement::HandBack { state, report },
        Disposition::DeadLetter(reason) => Settlement::DeadLetter {
            state,
            reason,
            report,
        },
    };
    match settle(&w, &lease, settlement, held_until)
        .instrument(span.clone())
        .await
    {
        Ok(()) => {}
        Err(e) => {
            if e.is_lease_lost() {
                w.metrics.lease_lost();
            }
            tracing::warn!(parent: &span, "result not recorded ({e}); the job will be delivered again after its lease");
            return;
        }
    }
    let failed = matches!(
        end,
        RunEnd::Failed(_) | RunEnd::Panicked | RunEnd::TimedOut(_)
    );
    if failed {
        w.metrics.failed();
    }
    match disposition {
        Disposition::Ack => {
            w.metrics.processed();
            tracing::debug!(parent: &span, "succeeded");
        }
        Disposition::Retry { delay, .. } => {
            w.metrics.retried();
            tracing::info!(parent: &span, ?delay, "failed; retrying later");
        }
        Disposition::HandBack => {
            w.metrics.handed_back();
            tracing::info!(parent: &span, "handed back at shutdown");
        }
        Disposition::DeadLetter(reason) => {
            w.metrics.dead_lettered(reason);
            tracing::warn!(parent: &span, reason = reason.as_str(), "dead-lettered");
            w.refresh_depth().await;
        }
    }
}

/// Settles under `lease`, retrying while the store is unreachable and the
/// lease still holds (`held_until` on the worker's clock). Past that, the
/// job will be rescued and delivered again: nothing is lost.
async fn settle(
    w: &Inner,
    lease: &Lease,
    settlement: Settlement,
    held_until: std::time::Instant,
) -> Result<(), QueueError> {
    let backoff =
        Backoff::exponential(Duration::from_millis(50)).with_max_delay(Duration::from_secs(2));
    let mut state = rebound::BackoffState::new();
    let mut rng = w.random.rng();
    loop {
        match w
            .queue
            .settle(lease, settlement.clone(), wall(&w.clock))
            .await
        {
            Err(e) if e.is_unavailable() => {
                let delay = backoff.next_delay(&mut state, &mut rng);
                if w.clock.now() + delay >= held_until {
                    return Err(e);
                }
                tracing::debug!("cannot settle yet ({e}); trying again in {delay:?}");
                timer::after(&w.clock, delay).await;
            }
            other => return other,
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        error_text(s)
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
