//! Jobs as queues hand them out and keep them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::{DeadLetterReason, DeliveryState};
use crate::time::Timestamp;

/// A job's identity within its queue store: assigned at enqueue, never
/// reused, printed as a plain number (`rebound dlq show 42`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<u64>()
            .map(JobId)
            .map_err(|_| format!("`{s}` is not a job id (a job id is a whole number, like 42)"))
    }
}

/// The longest queue name (bytes).
pub const MAX_QUEUE_NAME: usize = 64;

/// Checks a queue name: 1 to 64 of `a-z A-Z 0-9 _ - . :`.
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_QUEUE_NAME {
        return Err(format!(
            "queue name {name:?} must be 1 to {MAX_QUEUE_NAME} bytes long"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(format!(
            "queue name {name:?} contains {c:?}; use letters, digits, `_`, `-`, `.` and `:`"
        ));
    }
    Ok(())
}

/// A job to enqueue: a queue name and an opaque payload (JSON is
/// conventional; the typed handlers decode it with serde).
///
/// ```
/// use rebound_jobs::NewJob;
///
/// #[derive(serde::Serialize)]
/// struct SyncInvoice { invoice: u64 }
///
/// let job = NewJob::json("invoices", &SyncInvoice { invoice: 42 })?;
/// assert_eq!(job.payload(), br#"{"invoice":42}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub(crate) queue: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) run_at: Option<Timestamp>,
    pub(crate) delay: Option<Duration>,
}

impl NewJob {
    /// A job for `queue` with raw `payload` bytes, due at once.
    pub fn new(queue: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        NewJob {
            queue: queue.into(),
            payload: payload.into(),
            run_at: None,
            delay: None,
        }
    }

    /// A job whose payload is `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(
        queue: impl Into<String>,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::new(queue, serde_json::to_vec(value)?))
    }

    /// Not due before `at` (its maximum age then counts from `at`).
    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self.delay = None;
        self
    }

    /// Not due before `delay` after it is enqueued.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self.run_at = None;
        self
    }

    /// The queue name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// When the job is first due if enqueued at `now`.
    pub fn due_at(&self, now: Timestamp) -> Timestamp {
        match (self.run_at, self.delay) {
            (Some(at), _) => at.max(now),
            (None, Some(d)) => now.saturating_add(d),
            (None, None) => now,
        }
    }
}

/// The right to settle one delivery of a job: the fencing token taken at
/// claim. Renewals and settlements carry it, and the queue accepts them only
/// while the job is still leased under that token — a worker whose lease
/// ran out and was taken over can no longer ack, retry or dead-letter it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub id: JobId,
    /// The fencing token: one more than the job's previous claim's, never
    /// reused for the job, even after a redrive.
    pub token: u64,
    /// When the lease ends unless renewed.
    pub expires_at: Timestamp,
}

/// A job handed to a worker by a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The lease on this delivery.
    pub lease: Lease,
    /// The queue it came from.
    pub queue: String,
    /// The payload, as enqueued.
    pub payload: Vec<u8>,
    /// Its delivery state, with this claim already counted.
    pub state: DeliveryState,
    /// The error of the last run that reported one, if any.
    pub last_error: Option<String>,
}

impl ClaimedJob {
    /// The job id.
    pub fn id(&self) -> JobId {
        self.lease.id
    }
}

/// How one delivery of a job ended, as kept in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Still running, or the worker vanished (crash, kill, lost lease)
    /// without reporting: the record was never completed.
    NoOutcome,
    /// The handler returned an error.
    Failed,
    /// The handler panicked.
    Panicked,
    /// The handler ran past the per-job timeout.
    TimedOut,
    /// A graceful shutdown handed the job back (not counted).
    Interrupted,
    /// The policy dead-lettered the job at claim, without running it.
    NotRun,
}

impl RunResult {
    /// `no_outcome`, `failed`, `panicked`, `timed_out`, `interrupted`, `not_run`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunResult::NoOutcome => "no_outcome",
            RunResult::Failed => "failed",
            RunResult::Panicked => "panicked",
            RunResult::TimedOut => "timed_out",
            RunResult::Interrupted => "interrupted",
            RunResult::NotRun => "not_run",
        }
    }
}

/// One delivery in a job's history: written when the job is claimed,
/// completed when the run reports. A record that stays
/// [`RunResult::NoOutcome`] is a run that crashed or lost its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Which delivery (1 for the first claim; counting starts again after
    /// a redrive).
    pub delivery: u32,
    /// How many times the job had been redriven when this delivery was
    /// claimed (0: before any redrive).
    #[serde(default)]
    pub redrive: u32,
    /// When it was claimed; `None` when unknown: a broker counted a
    /// delivery that never reported, and the broker does not record when
    /// (or by whom) it was made.
    ///
    /// Records written before this was optional (a number, `0` where a
    /// broker adapter did not know the time) still load: `0` as `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "claimed_at_compat"
    )]
    pub claimed_at: Option<Timestamp>,
    /// Who claimed it (the worker's id: host, process, worker name).
    pub worker: String,
    /// When the run reported, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// How it ended.
    pub result: RunResult,
    /// The error text, if the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads `claimed_at` as written by any version: a time, `null`, or the
/// `0` (the epoch) older broker adapters wrote for an unknown time.
fn claimed_at_compat<'de, D>(d: D) -> Result<Option<Timestamp>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let t = Option::<Timestamp>::deserialize(d)?;
    Ok(t.filter(|t| *t != Timestamp::EPOCH))
}

/// What a run reports when it settles, kept in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// How it ended.
    pub result: RunResult,
    /// The error text, if any.
    pub error: Option<String>,
}

/// What the worker asks the queue to do with a delivery, under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Done: delete the job.
    Ack,
    /// Due again at `run_at`, with the updated state.
    Retry {
        /// The state after this run (failures and backoff updated).
        state: DeliveryState,
        /// When it is due again.
        run_at: Timestamp,
        /// This run, for the history.
        report: RunReport,
    },
    /// Due again at once, this run not counted.
    HandBack {
        /// The state after this run (interrupts updated).
        state: DeliveryState,
        /// This run, for the history.
        report: RunReport,
    },
    /// Into the dead-letter queue.
    DeadLetter {
        /// The state after this run.
        state: DeliveryState,
        /// Why.
        reason: DeadLetterReason,
        /// This run (or [`RunResult::NotRun`] when dead-lettered at claim).
        report: RunReport,
    },
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting to be claimed (due now or later).
    Available,
    /// Claimed, under a lease.
    Running,
    /// In the dead-letter queue.
    Dead,
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
impl JobStatus {
    pub(crate) const fn code(self) -> i16 {
        match self {
            JobStatus::Available => 0,
            JobStatus::Running => 1,
            JobStatus::Dead => 2,
        }
    }
    pub(crate) fn from_code(c: i16) -> Option<Self> {
        match c {
            0 => Some(JobStatus::Available),
            1 => Some(JobStatus::Running),
            2 => Some(JobStatus::Dead),
            _ => None,
        }
    }
}

/// Everything a queue keeps about a job that is not yet acked: what
/// [`Queue::job`](crate::Queue::job) and the dead-letter operations return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Where it is.
    pub status: JobStatus,
    /// The payload as enqueued.
    #[serde(with = "payload_text")]
    pub payload: Vec<u8>,
    /// Its delivery state.
    pub state: DeliveryState,
    /// When it is next due (available jobs).
    pub run_at: Timestamp,
    /// When its lease ends (running jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// The fencing token of its latest claim (0: never claimed).
    pub fence: u64,
    /// Why it was dead-lettered (dead jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DeadLetterReason>,
    /// When it was dead-lettered (dead jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<Timestamp>,
    /// Times it was redriven out of the dead-letter queue.
    pub redrives: u32,
    /// Every delivery: when, by whom, how it ended, its error.
    pub history: Vec<DeliveryRecord>,
}

impl JobRecord {
    /// The error of the last delivery that reported one.
    pub fn last_error(&self) -> Option<&str> {
        self.history.iter().rev().find_map(|r| r.error.as_deref())
    }

    /// The payload as text if it is UTF-8.
    pub fn payload_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

/// Payloads serialize as text when they are UTF-8 (JSON payloads stay
/// readable in `rebound dlq show --json`), else as a byte array.
mod payload_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(p: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(p) {
            Ok(t) => s.serialize_str(t),
            Err(_) => p.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Text(t) => t.into_bytes(),
            Repr::Bytes(b) => b,
        })
    }
}

/// How many jobs of a queue are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    /// Available and due now.
    pub due: u64,
    /// Available but scheduled later (retries waiting out their backoff).
    pub scheduled: u64,
    /// Claimed, under a lease.
    pub running: u64,
    /// In the dead-letter queue.
    pub dead: u64,
}

impl QueueCounts {
    /// Jobs not yet acked or dead-lettered.
    pub fn pending(&self) -> u64 {
        self.due + self.scheduled + self.running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_at_reads_every_stored_form() {
        let read = |claimed: &str| -> DeliveryRecord {
            serde_json::from_str(&format!(
                r#"{{"delivery":1,{claimed}"worker":"w","result":"no_outcome"}}"#
            ))
            .unwrap()
        };
        // A record stored before the field was optional: a number.
        assert_eq!(
            read(r#""claimed_at":1700000000000,"#).claimed_at,
            Some(Timestamp::from_millis(1_700_000_000_000))
        );
        // What older broker adapters wrote for "unknown".
        assert_eq!(read(r#""claimed_at":0,"#).claimed_at, None);
        assert_eq!(read(r#""claimed_at":null,"#).claimed_at, None);
        assert_eq!(read("").claimed_at, None);
        let unknown = read("");
        let text = serde_json::to_string(&unknown).unwrap();
        assert!(!text.contains("claimed_at"), "{text}");
        let known = read(r#""claimed_at":5,"#);
        let back: DeliveryRecord =
            serde_json::from_str(&serde_json::to_string(&known).unwrap()).unwrap();
        assert_eq!(back, known);
    }
}
