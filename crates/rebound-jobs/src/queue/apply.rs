//! The queue rules applied to a whole [`JobRecord`]: what queues that keep
//! records as documents (the embedded queue, broker adapters) run inside
//! their atomic step. PostgreSQL runs the same rules in SQL.

use std::time::Duration;

use crate::job::{
    ClaimedJob, DeliveryRecord, JobId, JobRecord, JobStatus, Lease, NewJob, RunResult, Settlement,
};
use crate::policy::DeliveryState;
use crate::queue::QueueError;
use crate::time::Timestamp;

/// A new, available record for `job` enqueued at `now`.
#[cfg_attr(
    not(any(feature = "embedded", feature = "redis", feature = "amqp")),
    allow(dead_code)
)]
pub(crate) fn new_record(id: JobId, job: NewJob, now: Timestamp) -> JobRecord {
    let due = job.due_at(now);
    JobRecord {
        id,
        queue: job.queue,
        status: JobStatus::Available,
        payload: job.payload,
        state: DeliveryState::new(due),
        run_at: due,
        lease_expires_at: None,
        fence: 0,
        reason: None,
        dead_at: None,
        redrives: 0,
        history: Vec::new(),
    }
}

/// Claims `rec` (which must be available): counts the delivery, takes the
/// next fence, leases it and opens a delivery record.
pub(crate) fn claim(
    rec: &mut JobRecord,
    now: Timestamp,
    lease: Duration,
    worker: &str,
) -> ClaimedJob {
    let last_error = rec.last_error().map(str::to_owned);
    rec.state.deliveries = rec.state.deliveries.saturating_add(1);
    rec.fence += 1;
    rec.status = JobStatus::Running;
    let expires_at = now.saturating_add(lease);
    rec.lease_expires_at = Some(expires_at);
    rec.history.push(DeliveryRecord {
        delivery: rec.state.deliveries,
        redrive: rec.redrives,
        claimed_at: Some(now),
        worker: worker.to_owned(),
        ended_at: None,
        result: RunResult::NoOutcome,
        error: None,
    });
    ClaimedJob {
        lease: Lease {
            id: rec.id,
            token: rec.fence,
            expires_at,
        },
        queue: rec.queue.clone(),
        payload: rec.payload.clone(),
        state: rec.state,
        last_error,
    }
}

/// Whether `lease` still holds `rec`.
#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
pub(crate) fn check_lease(rec: Option<&JobRecord>, lease: &Lease) -> Result<(), QueueError> {
    match rec {
        Some(r) if r.status == JobStatus::Running && r.fence == lease.token => Ok(()),
        _ => Err(QueueError::LeaseLost {
            id: lease.id,
            token: lease.token,
        }),
    }
}

/// Applies `settlement` to a held `rec`. Returns `false` when the job is to
/// be deleted (ack).
pub(crate) fn settle(rec: &mut JobRecord, settlement: Settlement, now: Timestamp) -> bool {
    let (state, report) = match settlement {
        Settlement::Ack => return false,
        Settlement::Retry {
            state,
            run_at,
            report,
        } => {
            rec.status = JobStatus::Available;
            rec.run_at = run_at;
            (state, report)
        }
        Settlement::HandBack { state, report } => {
            rec.status = JobStatus::Available;
            rec.run_at = now;
            (state, report)
        }
        Settlement::DeadLetter {
            state,
            reason,
            report,
        } => {
            rec.status = JobStatus::Dead;
            rec.reason = Some(reason);
            rec.dead_at = Some(now);
            (state, report)
        }
    };
    rec.state = state;
    rec.lease_expires_at = None;
    if let Some(last) = rec.history.last_mut() {
        last.ended_at = Some(now);
        last.result = report.result;
        last.error = report.error;
    }
    true
}

/// Makes a running record whose lease ended available again.
#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
pub(crate) fn rescue(rec: &mut JobRecord) {
    rec.status = JobStatus::Available;
    rec.lease_expires_at = None;
}

/// Moves a dead record back to its queue with a fresh budget.
pub(crate) fn redrive(rec: &mut JobRecord, now: Timestamp) {
    rec.status = JobStatus::Available;
    rec.run_at = now;
    rec.state = DeliveryState::new(now);
    rec.reason = None;
    rec.dead_at = None;
    rec.redrives = rec.redrives.saturating_add(1);
}
