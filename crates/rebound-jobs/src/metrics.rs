//! Metric names and their descriptions.
//!
//! Everything goes through the [`metrics`] facade (install the exporter you
//! already use). Every series carries a `queue` label; the descriptions
//! (name, unit, help) are registered when a [`Worker`](crate::Worker) is
//! built.
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `dead_letter_messages_total` | counter | `queue`, `reason` | jobs moved to the dead-letter queue; `reason` = `exhausted`, `poison`, `permanent`, `expired` |
//! | `retry_attempts_total` | counter | `queue` | job retries scheduled (runs after the first, as in the core's retry policy) |
//! | `jobs_processed_total` | counter | `queue` | jobs that succeeded and were acked |
//! | `jobs_failed_total` | counter | `queue` | runs that failed: an error, a panic or a timeout |
//! | `jobs_handed_back_total` | counter | `queue` | runs handed back by a graceful shutdown (not counted as attempts) |
//! | `jobs_lease_lost_total` | counter | `queue` | runs whose lease was taken over before they settled (their result was rejected by fencing) |
//! | `dead_letter_depth` | gauge | `queue` | jobs in the dead-letter queue, read from the queue at every rescue pass and after each dead-letter |

use metrics::Unit;

use crate::policy::DeadLetterReason;

/// `dead_letter_messages_total{queue,reason}`.
pub const DEAD_LETTER_MESSAGES_TOTAL: &str = rebound::telemetry::DEAD_LETTER_MESSAGES_TOTAL;
/// `retry_attempts_total{queue}`.
pub const RETRY_ATTEMPTS_TOTAL: &str = rebound::telemetry::RETRY_ATTEMPTS_TOTAL;
/// `jobs_processed_total{queue}`.
pub const JOBS_PROCESSED_TOTAL: &str = "jobs_processed_total";
/// `jobs_failed_total{queue}`.
pub const JOBS_FAILED_TOTAL: &str = "jobs_failed_total";
/// `jobs_handed_back_total{queue}`.
pub const JOBS_HANDED_BACK_TOTAL: &str = "jobs_handed_back_total";
/// `jobs_lease_lost_total{queue}`.
pub const JOBS_LEASE_LOST_TOTAL: &str = "jobs_lease_lost_total";
/// `dead_letter_depth{queue}` (gauge).
pub const DEAD_LETTER_DEPTH: &str = "dead_letter_depth";

/// The label naming the queue.
pub const QUEUE_LABEL: &str = "queue";

/// Registers the description of every job metric with the installed
/// recorder (the worker builder calls it).
pub fn describe() {
    metrics::describe_counter!(
        DEAD_LETTER_MESSAGES_TOTAL,
        Unit::Count,
        "Messages moved to a dead-letter queue, by queue and reason (exhausted, poison, permanent, expired)."
    );
    metrics::describe_counter!(
        RETRY_ATTEMPTS_TOTAL,
        Unit::Count,
        "Retries made: attempts after the first."
    );
    metrics::describe_counter!(
        JOBS_PROCESSED_TOTAL,
        Unit::Count,
        "Jobs that succeeded and were acknowledged."
    );
    metrics::describe_counter!(
        JOBS_FAILED_TOTAL,
        Unit::Count,
        "Job runs that failed: an error, a panic or a timeout."
    );
    metrics::describe_counter!(
        JOBS_HANDED_BACK_TOTAL,
        Unit::Count,
        "Job runs handed back by a graceful shutdown, not counted as attempts."
    );
    metrics::describe_counter!(
        JOBS_LEASE_LOST_TOTAL,
        Unit::Count,
        "Job runs whose lease was taken over before they settled; their result was rejected."
    );
    metrics::describe_gauge!(
        DEAD_LETTER_DEPTH,
        Unit::Count,
        "Jobs waiting in the dead-letter queue."
    );
}

/// The series of one worker's queue, labels fixed when it is built.
#[derive(Debug, Clone)]
pub(crate) struct JobMetrics {
    queue: metrics::SharedString,
}

impl JobMetrics {
    pub(crate) fn new(queue: &str) -> Self {
        JobMetrics {
            queue: metrics::SharedString::from(queue.to_owned()),
        }
    }

    fn counter(&self, name: &'static str) -> metrics::Counter {
        metrics::counter!(name, QUEUE_LABEL => self.queue.clone())
    }

    pub(crate) fn dead_lettered(&self, reason: DeadLetterReason) {
        metrics::counter!(
            DEAD_LETTER_MESSAGES_TOTAL,
            QUEUE_LABEL => self.queue.clone(),
            "reason" => reason.as_str()
        )
        .increment(1);
    }
    pub(crate) fn retried(&self) {
        self.counter(RETRY_ATTEMPTS_TOTAL).increment(1);
    }
    pub(crate) fn processed(&self) {
        self.counter(JOBS_PROCESSED_TOTAL).increment(1);
    }
    pub(crate) fn failed(&self) {
        self.counter(JOBS_FAILED_TOTAL).increment(1);
    }
    pub(crate) fn handed_back(&self) {
        self.counter(JOBS_HANDED_BACK_TOTAL).increment(1);
    }
    pub(crate) fn lease_lost(&self) {
        self.counter(JOBS_LEASE_LOST_TOTAL).increment(1);
    }
    pub(crate) fn depth(&self, depth: u64) {
        metrics::gauge!(DEAD_LETTER_DEPTH, QUEUE_LABEL => self.queue.clone()).set(depth as f64);
    }
}
