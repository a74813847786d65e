//! What a queue persists about each job's deliveries.

use std::time::Duration;

use rebound::BackoffState;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Everything the [`DeliveryPolicy`](super::DeliveryPolicy) needs to know
/// about a job's past, as a queue persists it with the job.
///
/// Counting rules (every queue and broker adapter follows them):
///
/// * `deliveries` is incremented **when the job is claimed**, in the same
///   atomic step as the claim, before any handler code runs. A job that
///   kills its worker process therefore still counts.
/// * `failures` counts runs that ended with an outcome the worker reported
///   as a failure: an error, a panic, a timeout.
/// * `interrupts` counts runs handed back by a graceful shutdown; they do
///   not use up an attempt.
/// * A delivery with no reported outcome — the worker crashed, was killed,
///   or lost its lease — is the difference: `deliveries - failures -
///   interrupts`, minus the run in progress. Those are what poison detection
///   counts.
///
/// ```
/// use rebound_jobs::{DeliveryState, Timestamp};
///
/// let mut s = DeliveryState::new(Timestamp::from_millis(0));
/// s.deliveries = 3; // claimed three times (the third is running now)
/// s.failures = 1;   // one run returned an error
/// assert_eq!(s.attempt(), 3);
/// assert_eq!(s.unreported(), 1); // one run vanished without an outcome
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// Times the job was claimed, counted at claim.
    pub deliveries: u32,
    /// Runs that ended in a reported failure (error, panic, timeout).
    pub failures: u32,
    /// Runs handed back by a graceful shutdown (not counted as attempts).
    pub interrupts: u32,
    /// When the job was first due: its enqueue time, or its scheduled time
    /// if it was enqueued to run later. Its maximum age counts from here.
    pub enqueued_at: Timestamp,
    /// Backoff delays handed out so far (the retry number of the next one).
    pub backoff_retries: u32,
    /// The last backoff delay, in nanoseconds (decorrelated jitter grows
    /// from it).
    pub backoff_previous_nanos: Option<u64>,
}

impl DeliveryState {
    /// A job never delivered, first due at `enqueued_at`.
    pub const fn new(enqueued_at: Timestamp) -> Self {
        DeliveryState {
            deliveries: 0,
            failures: 0,
            interrupts: 0,
            enqueued_at,
            backoff_retries: 0,
            backoff_previous_nanos: None,
        }
    }

    /// The attempt number of the current (latest) delivery, counting the
    /// first: deliveries that ran, whatever their end, excluding runs
    /// handed back by a shutdown.
    pub const fn attempt(&self) -> u32 {
        self.deliveries.saturating_sub(self.interrupts)
    }

    /// Earlier deliveries that never reported an outcome (crashed or lost
    /// their lease), not counting the delivery in progress.
    pub const fn unreported(&self) -> u32 {
        self.deliveries
            .saturating_sub(self.failures)
            .saturating_sub(self.interrupts)
            .saturating_sub(1)
    }

    /// The backoff state, restored.
    pub fn backoff(&self) -> BackoffState {
        BackoffState::from_parts(
            self.backoff_retries,
            self.backoff_previous_nanos.map(Duration::from_nanos),
        )
    }

    /// Saves `b` into this state.
    pub fn set_backoff(&mut self, b: BackoffState) {
        self.backoff_retries = b.retries();
        self.backoff_previous_nanos = b
            .previous()
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
}
