//! The shape of claim, settle and redrive the broker adapters share: the
//! record-level rules applied to deliveries held in this process; each
//! adapter supplies only how its broker carries the result.

use std::future::Future;

use super::{claim, Envelope, InFlight};
use crate::job::{ClaimedJob, JobId, JobRecord, Lease, Settlement};
use crate::queue::{apply, ClaimRequest, QueueError};
use crate::time::Timestamp;

/// What a settlement asks of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done: the message goes.
    Ack,
    /// Due again now (a hand-back, a retry whose time has come).
    Due,
    /// Due again at this time.
    Later(Timestamp),
    /// Onto the dead-letter stream or queue.
    Dead,
}

impl Outcome {
    /// What `settlement`, made at `now`, asks.
    pub(crate) fn of(settlement: &Settlement, now: Timestamp) -> Self {
        match settlement {
            Settlement::Ack => Outcome::Ack,
            Settlement::HandBack { .. } => Outcome::Due,
            Settlement::Retry { run_at, .. } if *run_at <= now => Outcome::Due,
            Settlement::Retry { run_at, .. } => Outcome::Later(*run_at),
            Settlement::DeadLetter { .. } => Outcome::Dead,
        }
    }
}

impl<H: Clone> InFlight<H> {
    /// Claims the job of a message the broker just delivered for the
    /// `delivered`-th time (see [`claim`]) and holds it under its lease
    /// with the broker's `handle`.
    pub(crate) fn claim(
        &self,
        envelope: &Envelope,
        payload: Vec<u8>,
        delivered: u32,
        req: &ClaimRequest<'_>,
        handle: H,
    ) -> ClaimedJob {
        let (job, rec) = claim(envelope, payload, delivered, req.now, req.lease, req.worker);
        self.insert(&job.lease, rec, handle);
        job
    }

    /// Settles the delivery held under `lease` (taken as for
    /// [`take`](Self::take) with `fence_by`): the rules update its record,
    /// and `write` carries the [`Outcome`] to the broker with the handle
    /// and, unless acked, the updated record. If the broker could not be
    /// reached, the delivery is held again as it was, so the worker can
    /// try again while its lease lasts.
    pub(crate) async fn settle<F, Fut>(
        &self,
        lease: &Lease,
        fence_by: Option<Timestamp>,
        settlement: Settlement,
        now: Timestamp,
        write: F,
    ) -> Result<(), QueueError>
    where
        F: FnOnce(H, Outcome, Option<JobRecord>) -> Fut,
        Fut: Future<Output = Result<(), QueueError>>,
    {
        let mut held = self.take(lease, fence_by)?;
        let outcome = Outcome::of(&settlement, now);
        let before = held.record.clone();
        let keep = apply::settle(&mut held.record, settlement, now);
        let record = keep.then(|| held.record.clone());
        match write(held.handle.clone(), outcome, record).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if e.is_unavailable() {
                    held.record = before;
                    self.put_back(held, lease.id);
                }
                Err(e)
            }
        }
    }
}

/// The dead entries (`key`: the broker's handle on each) whose job is
/// listed in `ids`.
pub(crate) fn listed<'a, K: 'a>(
    dead: Vec<(K, JobRecord)>,
    ids: &'a [JobId],
) -> impl Iterator<Item = (K, JobRecord)> + 'a {
    dead.into_iter().filter(move |(_, r)| ids.contains(&r.id))
}

/// The record of job `id` among dead entries.
pub(crate) fn find<K>(dead: Vec<(K, JobRecord)>, id: JobId) -> Option<JobRecord> {
    dead.into_iter().find(|(_, r)| r.id == id).map(|(_, r)| r)
}

/// Redrives the dead entries listed in `ids` at `now`: the rules give each
/// record a fresh budget, and `move_back` writes it to the queue and
/// removes the dead entry, answering whether it moved (a dead entry
/// already gone did not). Stops at the first error.
pub(crate) async fn redrive<K, F, Fut>(
    dead: Vec<(K, JobRecord)>,
    ids: &[JobId],
    now: Timestamp,
    mut move_back: F,
) -> Result<usize, QueueError>
where
    F: FnMut(K, JobRecord) -> Fut,
    Fut: Future<Output = Result<bool, QueueError>>,
{
    let mut moved = 0;
    for (key, mut rec) in listed(dead, ids) {
        apply::redrive(&mut rec, now);
        if move_back(key, rec).await? {
            moved += 1;
        }
    }
    Ok(moved)
}
