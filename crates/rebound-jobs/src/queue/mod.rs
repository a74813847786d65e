//! The [`Queue`] trait: where jobs wait, are leased and settled.
//!
//! A queue is storage with atomic steps; it decides nothing. The
//! [`DeliveryPolicy`](crate::DeliveryPolicy) decides and the
//! [`Worker`](crate::Worker) carries the answers over. Every queue follows
//! the same rules, checked by the conformance suite (`rebound_jobs::conformance`,
//! feature `conformance`):
//!
//! * **claim** takes due, available jobs of one queue in due order, and in
//!   the same atomic step counts the delivery (`deliveries + 1`), takes a new
//!   fencing token (`fence + 1`, never reused for the job), sets the lease
//!   and appends a [`DeliveryRecord`](crate::DeliveryRecord) with no outcome yet. A job is never
//!   leased to two claimers at once.
//! * **renew** and **settle** carry the [`Lease`] and succeed only while the
//!   job is still running under that token; otherwise they fail with
//!   [`QueueError::LeaseLost`] and change nothing. A worker whose lease ran
//!   out and was taken over cannot ack the job from under its new owner.
//! * **rescue** makes jobs whose lease ended available again, as they are:
//!   the lost delivery stays counted and its record stays without outcome.
//! * Times are absolute [`Timestamp`]s passed in by the caller (read from
//!   the injected clock), so tests move them by hand.
//! * Acked jobs are deleted; dead-lettered jobs stay, with payload, reason and
//!   history, until redriven or purged.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::dlq::DeadLetterFilter;
use crate::job::{ClaimedJob, JobId, JobRecord, Lease, NewJob, QueueCounts, Settlement};
use crate::time::Timestamp;

// Used by the queues that keep whole records (the embedded queue, the
// broker adapters).
#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg_attr(
    not(any(
        feature = "embedded",
        feature = "redis",
        feature = "nats",
        feature = "amqp"
    )),
    allow(dead_code)
)]
mod apply;
#[cfg(any(feature = "redis", feature = "nats", feature = "amqp"))]
mod broker;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

/// A boxed error from a queue's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue's store could not be reached or did not answer in time.
    /// Nothing is known to have changed; the operation may be retried.
    #[error("{backend} queue unavailable: {source}")]
    Unavailable {
        /// Which backend (`"embedded"`, `"postgres"`).
        backend: &'static str,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// The lease is no longer held under this token: it expired and the job
    /// was rescued or claimed again, or the job was settled, redriven or
    /// purged. The caller must not act on the job any more.
    #[error("lease on job {id} (token {token}) is no longer held: it expired and was taken over, or the job was settled since")]
    LeaseLost {
        /// The job.
        id: JobId,
        /// The stale token.
        token: u64,
    },
    /// A job or queue setting was invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was wrong (`queue`, `table`, `url`, `path`, ...).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored job could not be decoded.
    #[error("job {id}: stored record is corrupt: {reason}")]
    Corrupt {
        /// The job.
        id: JobId,
        /// What could not be read.
        reason: String,
    },
    /// Any other failure inside the backend.
    #[error("{backend} queue error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl QueueError {
    /// Whether this is a stale-lease rejection.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, QueueError::LeaseLost { .. })
    }

    /// Whether the store was unreachable (worth retrying the operation).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }
}

/// What a claim asks for.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// The queue name.
    pub queue: &'a str,
    /// The time of the claim.
    pub now: Timestamp,
    /// How long the lease lasts unless renewed.
    pub lease: Duration,
    /// At most this many jobs.
    pub max: usize,
    /// The claiming worker's id, kept in the delivery record.
    pub worker: &'a str,
}

/// Where jobs wait, are leased and settled. See the [module docs](self) for
/// the rules every implementation follows.
#[async_trait]
pub trait Queue: Send + Sync + fmt::Debug + 'static {
    /// The backend's name (`"embedded"`, `"postgres"`).
    fn backend(&self) -> &'static str;

    /// The clock this queue's convenience methods and workers read by
    /// default.
    fn clock(&self) -> &rebound::Clock;

    /// Adds `job` at `now`; returns its id.
    async fn enqueue_at(&self, job: NewJob, now: Timestamp) -> Result<JobId, QueueError>;

    /// Adds every job of `jobs` at `now` in one step where the backend
    /// allows it (one transaction, one statement); returns their ids in
    /// order. The default enqueues them one by one.
    async fn enqueue_many_at(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<JobId>, QueueError> {
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            ids.push(self.enqueue_at(job, now).await?);
        }
        Ok(ids)
    }

    /// Claims up to `req.max` due jobs (see the module rules).
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, QueueError>;

    /// Extends `lease` to `now + lease_for`; returns the new expiry.
    async fn renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        lease_for: Duration,
    ) -> Result<Timestamp, QueueError>;

    /// Settles the delivery held under `lease`.
    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError>;

    /// Makes up to `max` running jobs whose lease ended at or before `now`
    /// available again; returns how many.
    async fn rescue(&self, now: Timestamp, max: usize) -> Result<usize, QueueError>;

    /// Where the jobs of `queue` are, at `now`.
    async fn counts(&self, queue: &str, now: Timestamp) -> Result<QueueCounts, QueueError>;

    /// One job that is not acked (available, running or dead).
    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError>;

    /// Dead-lettered jobs matching `filter` with an id above `after`, in id
    /// order, at most `limit`.
    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError>;

    /// Moves the listed jobs that are still dead back to their queue, due at
    /// `now`, with a fresh attempt budget and maximum age (see
    /// [`dlq`](crate::dlq)); returns how many moved.
    async fn redrive(&self, ids: &[JobId], now: Timestamp) -> Result<usize, QueueError>;

    /// Deletes the listed jobs that are still dead; returns how many.
    async fn purge(&self, ids: &[JobId]) -> Result<usize, QueueError>;

    /// Dead-lettered jobs in `queue` (all queues when `None`).
    async fn dead_letter_depth(&self, queue: Option<&str>) -> Result<u64, QueueError>;

    /// A signal raised whenever jobs may have become due in this process
    /// (an enqueue, a retry, a redrive), so idle workers claim at once
    /// instead of at their next poll. `None` (the default): workers poll.
    fn notifier(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// A lease the backend fixes itself (a JetStream consumer's ack wait):
    /// workers on this queue take it instead of their own
    /// [`lease`](crate::WorkerBuilder::lease), so that they renew before
    /// the broker redelivers. `None` (the default): the worker's setting.
    fn fixed_lease(&self) -> Option<Duration> {
        None
    }

    /// Adds `job` now, on this queue's clock.
    async fn enqueue(&self, job: NewJob) -> Result<JobId, QueueError> {
        let now = crate::time::wall(self.clock());
        self.enqueue_at(job, now).await
    }
}

#[async_trait]
impl<Q: Queue + ?Sized> Queue for std::sync::Arc<Q> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn clock(&self) -> &rebound::Clock {
        (**self).clock()
    }
    fn notifier(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        (**self).notifier()
    }
    fn fixed_lease(&self) -> Option<Duration> {
        (**self).fixed_lease()
    }
    async fn enqueue_at(&self, job: NewJob, now: Timestamp) -> Result<JobId, QueueError> {
        (**self).enqueue_at(job, now).await
    }
    async fn enqueue_many_at(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<JobId>, QueueError> {
        (**self).enqueue_many_at(jobs, now).await
    }
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, QueueError> {
        (**self).claim(req).await
    }
    async fn renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        lease_for: Duration,
    ) -> Result<Timestamp, QueueError> {
        (**self).renew(lease, now, lease_for).await
    }
    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        (**self).settle(lease, settlement, now).await
    }
    async fn rescue(&self, now: Timestamp, max: usize) -> Result<usize, QueueError> {
        (**self).rescue(now, max).await
    }
    async fn counts(&self, queue: &str, now: Timestamp) -> Result<QueueCounts, QueueError> {
        (**self).counts(queue, now).await
    }
    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        (**self).job(id).await
    }
    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        (**self).dead_letters(filter, after, limit).await
    }
    async fn redrive(&self, ids: &[JobId], now: Timestamp) -> Result<usize, QueueError> {
        (**self).redrive(ids, now).await
    }
    async fn purge(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        (**self).purge(ids).await
    }
    async fn dead_letter_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        (**self).dead_letter_depth(queue).await
    }
}
