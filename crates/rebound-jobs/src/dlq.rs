//! The dead-letter queue and its operations: list and filter, show, redrive
//! (rate-limited), purge, depth. The same functions serve every queue
//! backend and the `rebound dlq` command.
//!
//! Every dead-lettered job keeps its payload, its [reason](DeadLetterReason)
//! and its history: each delivery's claim time, worker, end time, result and
//! error ([`DeliveryRecord`](crate::DeliveryRecord)).
//!
//! # A redriven job gets a fresh budget
//!
//! Redrive moves a job back to its queue, due at once, with its delivery
//! counts, backoff and age **reset** (its history is kept, and its redrive
//! count goes up). An operator redrives after fixing the cause — a deploy,
//! a partner back online, a corrected row. With the old counts the redrive
//! would be useless: an exhausted job would be dead-lettered again on its
//! first failure, a poison job dead-lettered at claim without running, an
//! expired job at once. SQS moves redriven messages back as new messages
//! whose receive count starts over, and Pub/Sub republishes with fresh
//! delivery attempts; rebound does the same. The fencing token is not reset,
//! so a worker still holding a lease from before the job died can never
//! settle it.
//!
//! # Redrive is rate-limited
//!
//! Redriving ten thousand jobs that failed against a dependency that just
//! recovered would hit it with ten thousand calls at once — the retry storm
//! backoff and jitter exist to prevent. [`redrive`] moves jobs in batches at
//! most [`RedriveOptions::per_second`] a second (SQS's redrive has the same
//! "velocity" setting), waiting on the injected clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{JobId, JobRecord};
use crate::policy::DeadLetterReason;
use crate::queue::{Queue, QueueError};
use crate::time::{wall, Timestamp};

/// Which dead-lettered jobs an operation applies to. Every field narrows the
/// selection; the default selects all.
///
/// ```
/// use std::time::Duration;
/// use rebound_jobs::{DeadLetterFilter, DeadLetterReason};
///
/// let f = DeadLetterFilter::default()
///     .queue("invoices")
///     .reason(DeadLetterReason::Exhausted)
///     .error_contains("503");
/// # let _ = f;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this reason.
    pub reason: Option<DeadLetterReason>,
    /// Only jobs one of whose deliveries has an error containing this text
    /// (case-insensitive).
    pub error_contains: Option<String>,
    /// Only jobs dead-lettered at or before this time ("older than").
    pub dead_before: Option<Timestamp>,
    /// Only jobs dead-lettered at or after this time ("newer than").
    pub dead_after: Option<Timestamp>,
}

impl DeadLetterFilter {
    /// Only `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only `reason`.
    pub fn reason(mut self, reason: DeadLetterReason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Only jobs with an error containing `text` (case-insensitive).
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error_contains = Some(text.into());
        self
    }

    /// Only jobs dead-lettered at least `age` before `now`.
    pub fn older_than(mut self, age: Duration, now: Timestamp) -> Self {
        self.dead_before = Some(now.saturating_sub(age));
        self
    }

    /// Only jobs dead-lettered at most `age` before `now`.
    pub fn newer_than(mut self, age: Duration, now: Timestamp) -> Self {
        self.dead_after = Some(now.saturating_sub(age));
        self
    }

    /// One page of dead records for queues that list them in memory (the
    /// broker adapters): one record per job id (the last one seen), in id
    /// order, after the id `after`, matching, at most `limit`.
    #[cfg_attr(
        not(any(feature = "redis", feature = "nats", feature = "amqp")),
        allow(dead_code)
    )]
    pub(crate) fn page(
        &self,
        records: impl IntoIterator<Item = JobRecord>,
        after: Option<JobId>,
        limit: usize,
    ) -> Vec<JobRecord> {
        let by_id: std::collections::BTreeMap<JobId, JobRecord> =
            records.into_iter().map(|r| (r.id, r)).collect();
        by_id
            .into_values()
            .filter(|r| after.is_none_or(|a| r.id > a) && self.matches(r))
            .take(limit)
            .collect()
    }

    /// Whether a dead record matches (queues that filter in memory use this;
    /// PostgreSQL runs the same test in SQL).
    pub fn matches(&self, rec: &JobRecord) -> bool {
        if self.queue.as_deref().is_some_and(|q| q != rec.queue) {
            return false;
        }
        if self.reason.is_some() && self.reason != rec.reason {
            return false;
        }
        let dead_at = rec.dead_at.unwrap_or(Timestamp::EPOCH);
        if self.dead_before.is_some_and(|t| dead_at > t) {
            return false;
        }
        if self.dead_after.is_some_and(|t| dead_at < t) {
            return false;
        }
        if let Some(text) = &self.error_contains {
            let needle = text.to_lowercase();
            if !rec
                .history
                .iter()
                .filter_map(|r| r.error.as_deref())
                .any(|e| e.to_lowercase().contains(&needle))
            {
                return false;
            }
        }
        true
    }
}

/// Lists dead-lettered jobs matching `filter`, oldest id first, at most
/// `limit`.
pub async fn list(
    queue: &dyn Queue,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<JobRecord>, QueueError> {
    let mut out = Vec::new();
    let mut after = None;
    while out.len() < limit {
        let page = queue
            .dead_letters(filter, after, (limit - out.len()).min(500))
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let short = page.len() < (limit - out.len()).min(500);
        out.extend(page);
        if short {
            break;
        }
    }
    Ok(out)
}

/// How [`redrive`] paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveOptions {
    /// At most this many jobs a second (at least 1). Default 100.
    pub per_second: u32,
    /// Stop after this many jobs (`None`: every match). Default `None`.
    pub limit: Option<u64>,
}

impl Default for RedriveOptions {
    fn default() -> Self {
        RedriveOptions {
            per_second: 100,
            limit: None,
        }
    }
}

/// Moves every dead-lettered job matching `filter` back to its queue with a
/// fresh budget (see the [module docs](self)), at most
/// `options.per_second` a second, pacing on `queue`'s clock. Returns how
/// many moved.
pub async fn redrive(
    queue: &dyn Queue,
    filter: &DeadLetterFilter,
    options: RedriveOptions,
) -> Result<u64, QueueError> {
    let clock = queue.clock().clone();
    let per_second = options.per_second.max(1);
    // Batches of a tenth of a second's worth, at least one job.
    let batch = (per_second / 10).max(1) as usize;
    let pause = Duration::from_secs_f64(batch as f64 / f64::from(per_second));
    let mut moved = 0u64;
    let mut after = None;
    loop {
        let want = match options.limit {
            Some(l) if moved >= l => break,
            Some(l) => batch.min((l - moved) as usize),
            None => batch,
        };
        let page = queue.dead_letters(filter, after, want).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let ids: Vec<JobId> = page.iter().map(|r| r.id).collect();
        let started = clock.now();
        moved += queue.redrive(&ids, wall(&clock)).await? as u64;
        if page.len() < want {
            break;
        }
        let spent = clock.now().saturating_duration_since(started);
        if let Some(rest) = pause.checked_sub(spent) {
            clock.sleep(rest).await;
        }
    }
    Ok(moved)
}

/// Deletes every dead-lettered job matching `filter` (typically
/// [`older_than`](DeadLetterFilter::older_than)); returns how many.
pub async fn purge(queue: &dyn Queue, filter: &DeadLetterFilter) -> Result<u64, QueueError> {
    let mut purged = 0u64;
    let mut after = None;
    loop {
        let page = queue.dead_letters(filter, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let ids: Vec<JobId> = page.iter().map(|r| r.id).collect();
        purged += queue.purge(&ids).await? as u64;
        if page.len() < 500 {
            break;
        }
    }
    Ok(purged)
}
