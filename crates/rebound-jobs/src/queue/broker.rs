//! What the broker adapters share: the job's record travels with its
//! message (an *envelope*), and the broker's own delivery count says how
//! many times the message was handed out since the envelope was written.
//!
//! A broker keeps messages, not records: it cannot update a message in
//! place. So every adapter follows the same rules, the record-level rules
//! of [`apply`](super::apply) applied to the envelope:
//!
//! * **claim**: the delivery count the broker reports for this message
//!   (the pending entries list in Redis, `num_delivered` in JetStream,
//!   `x-delivery-count` in a RabbitMQ quorum queue) minus the deliveries the
//!   envelope already accounts for gives the deliveries that never reported
//!   — each becomes a history entry without an outcome, and poison
//!   detection counts it — then this delivery is counted and leased.
//! * **settle**: the rules update the record; the adapter writes it back
//!   the broker's way (a new message carrying the envelope, a delayed
//!   redelivery, a message on the dead-letter stream or queue).
//! * the **fencing token** is the envelope's fence plus the broker's
//!   count, so a takeover by the broker (a redelivery) always raises it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{ClaimedJob, DeliveryRecord, JobId, JobRecord, JobStatus, Lease, RunResult};
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

/// Deliveries in flight in this process, by lease: the record to settle
/// and the broker's handle on the message (an entry id, an acker, a
/// delivery tag). A lease this process does not hold, or no longer holds,
/// is lost.
#[derive(Debug)]
pub(crate) struct InFlight<H> {
    map: Mutex<HashMap<JobId, Held<H>>>,
}

/// One delivery held in flight.
#[derive(Debug)]
pub(crate) struct Held<H> {
    pub(crate) token: u64,
    pub(crate) expires_at: Timestamp,
    pub(crate) record: JobRecord,
    pub(crate) handle: H,
}

impl<H> Default for InFlight<H> {
    fn default() -> Self {
        InFlight {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<H> InFlight<H> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Held<H>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a delivery just claimed (replacing an older one of the same
    /// job: the broker redelivered it, so that lease is lost).
    pub(crate) fn insert(&self, lease: &Lease, record: JobRecord, handle: H) {
        self.lock().insert(
            lease.id,
            Held {
                token: lease.token,
                expires_at: lease.expires_at,
                record,
                handle,
            },
        );
    }

    /// Takes the delivery held under `lease` if it is still held and, when
    /// `now` is given, its lease has not ended by then (brokers that
    /// redeliver on their own once a lease ends, where acting on it could
    /// settle another worker's run, pass it).
    pub(crate) fn take(
        &self,
        lease: &Lease,
        now: Option<Timestamp>,
    ) -> Result<Held<H>, QueueError> {
        let mut map = self.lock();
        match map.get(&lease.id) {
            Some(h) if h.token == lease.token && now.is_none_or(|n| n < h.expires_at) => {
                Ok(map.remove(&lease.id).expect("present"))
            }
            _ => Err(lost(lease)),
        }
    }

    /// Puts back a delivery whose settlement could not reach the broker.
    pub(crate) fn put_back(&self, held: Held<H>, id: JobId) {
        let mut map = self.lock();
        map.entry(id).or_insert(held);
    }

    /// Runs `f` on the delivery held under `lease` (to renew it); `now` as
    /// for [`take`](Self::take).
    pub(crate) fn with<T>(
        &self,
        lease: &Lease,
        now: Option<Timestamp>,
        f: impl FnOnce(&mut Held<H>) -> T,
    ) -> Result<T, QueueError> {
        let mut map = self.lock();
        match map.get_mut(&lease.id) {
            Some(h) if h.token == lease.token && now.is_none_or(|n| n < h.expires_at) => Ok(f(h)),
            _ => Err(lost(lease)),
        }
    }

    /// Removes and returns the deliveries whose lease ended by `now`.
    pub(crate) fn expired(&self, now: Timestamp, max: usize) -> Vec<Held<H>> {
        let mut map = self.lock();
        let ids: Vec<JobId> = map
            .iter()
            .filter(|(_, h)| h.expires_at <= now)
            .map(|(id, _)| *id)
            .take(max)
            .collect();
        ids.into_iter().filter_map(|id| map.remove(&id)).collect()
    }

    /// How many deliveries are held here.
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The record of job `id` if it is running here.
    pub(crate) fn record(&self, id: JobId) -> Option<JobRecord> {
        self.lock().get(&id).map(|h| {
            let mut r = h.record.clone();
            r.status = JobStatus::Running;
            r.lease_expires_at = Some(h.expires_at);
            r
        })
    }
}

/// The stale-lease error.
pub(crate) fn lost(lease: &Lease) -> QueueError {
    QueueError::LeaseLost {
        id: lease.id,
        token: lease.token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
