//! The envelope: a job's record as it travels with its message, and the
//! claim of a delivered message.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{ClaimedJob, DeliveryRecord, JobId, JobRecord, JobStatus, RunResult};
use crate::policy::DeliveryState;
use crate::queue::{apply, QueueError};
use crate::time::Timestamp;
/// The header (or stream field) holding the envelope.
pub(crate) const ENVELOPE_HEADER: &str = "rebound-job";

/// The longest error text an envelope keeps per delivery: brokers cap
/// header sizes (RabbitMQ's frame size, NATS's maximum payload).
pub(crate) const MAX_ENVELOPE_ERROR: usize = 1024;

/// A job's record without its payload, as it travels in a message header,
/// and how many of the broker's deliveries of that message it accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) id: JobId,
    pub(crate) queue: String,
    pub(crate) state: DeliveryState,
    pub(crate) fence: u64,
    #[serde(default)]
    pub(crate) redrives: u32,
    #[serde(default)]
    pub(crate) history: Vec<DeliveryRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<crate::DeadLetterReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dead_at: Option<Timestamp>,
    /// When the message is due (a retry's time; what a redrive set).
    pub(crate) run_at: Timestamp,
    /// Broker deliveries of the message this envelope already counts.
    #[serde(default)]
    pub(crate) seen: u32,
}

impl Envelope {
    /// The envelope of a message published without one (by another
    /// producer, or by `enqueue`): never delivered, first due at `due`.
    pub(crate) fn fresh(id: JobId, queue: &str, due: Timestamp) -> Self {
        Envelope {
            id,
            queue: queue.to_owned(),
            state: DeliveryState::new(due),
            fence: 0,
            redrives: 0,
            history: Vec::new(),
            reason: None,
            dead_at: None,
            run_at: due,
            seen: 0,
        }
    }

    /// The envelope of `rec` (whose payload travels as the message body).
    pub(crate) fn of(rec: &JobRecord) -> Self {
        let mut history = rec.history.clone();
        for h in &mut history {
            if let Some(e) = &mut h.error {
                if e.len() > MAX_ENVELOPE_ERROR {
                    let mut cut = MAX_ENVELOPE_ERROR;
                    while !e.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    e.truncate(cut);
                    e.push_str("… (truncated)");
                }
            }
        }
        Envelope {
            id: rec.id,
            queue: rec.queue.clone(),
            state: rec.state,
            fence: rec.fence,
            redrives: rec.redrives,
            history,
            reason: rec.reason,
            dead_at: rec.dead_at,
            run_at: rec.run_at,
            seen: 0,
        }
    }

    /// The record of this envelope with `payload`, in `status`.
    pub(crate) fn record(&self, payload: Vec<u8>, status: JobStatus) -> JobRecord {
        JobRecord {
            id: self.id,
            queue: self.queue.clone(),
            status,
            payload,
            state: self.state,
            run_at: self.run_at,
            lease_expires_at: None,
            fence: self.fence,
            reason: self.reason,
            dead_at: self.dead_at,
            redrives: self.redrives,
            history: self.history.clone(),
        }
    }

    /// As header text.
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("an envelope serializes")
    }

    /// From header text; `id` names the message in the error.
    pub(crate) fn decode(text: &[u8], id: JobId) -> Result<Self, QueueError> {
        serde_json::from_slice(text).map_err(|e| QueueError::Corrupt {
            id,
            reason: format!("its `{ENVELOPE_HEADER}` header is not a rebound-jobs envelope: {e}"),
        })
    }
}

/// Claims the job of a message the broker just delivered for the
/// `delivered`-th time (counting from 1; brokers that count only
/// redeliveries pass theirs plus one): the deliveries the envelope does not
/// account for never reported and enter the history without an outcome
/// (time and worker unknown: the broker does not record them), then this
/// delivery is counted and leased under the next fence. Returns the claimed
/// job and the record to keep while it runs.
pub(crate) fn claim(
    envelope: &Envelope,
    payload: Vec<u8>,
    delivered: u32,
    now: Timestamp,
    lease: Duration,
    worker: &str,
) -> (ClaimedJob, JobRecord) {
    let mut rec = envelope.record(payload, JobStatus::Available);
    let unreported = delivered.saturating_sub(envelope.seen).saturating_sub(1);
    for _ in 0..unreported {
        rec.state.deliveries = rec.state.deliveries.saturating_add(1);
        rec.fence += 1;
        rec.history.push(DeliveryRecord {
            delivery: rec.state.deliveries,
            redrive: rec.redrives,
            claimed_at: None,
            worker: String::new(),
            ended_at: None,
            result: RunResult::NoOutcome,
            error: None,
        });
    }
    let job = apply::claim(&mut rec, now, lease, worker);
    (job, rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn undelivered_broker_counts_become_history_without_outcome() {
        let t = Timestamp::from_millis(1_000);
        let env = Envelope::fresh(JobId(7), "q", t);
        let (job, rec) = claim(&env, b"p".to_vec(), 3, t, Duration::from_secs(1), "w");
        assert_eq!(job.state.deliveries, 3);
        assert_eq!(job.state.unreported(), 2);
        assert_eq!(job.lease.token, 3);
        let results: Vec<_> = rec.history.iter().map(|h| h.result).collect();
        assert_eq!(results, [RunResult::NoOutcome; 3]);
        assert_eq!(rec.history[2].worker, "w");
        assert_eq!(rec.history[0].worker, "");
    }

    #[test]
    fn an_envelope_counts_the_deliveries_it_has_seen() {
        let t = Timestamp::from_millis(1_000);
        let mut env = Envelope::fresh(JobId(7), "q", t);
        env.state.deliveries = 2;
        env.state.failures = 2;
        env.fence = 2;
        env.seen = 4;
        let (job, _) = claim(&env, Vec::new(), 5, t, Duration::from_secs(1), "w");
        assert_eq!((job.state.deliveries, job.state.unreported()), (3, 0));
        assert_eq!(job.lease.token, 3);
        let back = Envelope::decode(env.encode().as_bytes(), JobId(7)).unwrap();
        assert_eq!(back, env);
        let bad = Envelope::decode(b"{", JobId(7)).unwrap_err();
        assert!(
            bad.to_string().contains("not a rebound-jobs envelope"),
            "{bad}"
        );
    }
}
