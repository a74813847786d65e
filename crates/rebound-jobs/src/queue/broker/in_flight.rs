//! Deliveries in flight in this process: the fence of the broker
//! adapters.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::job::{JobId, JobRecord, JobStatus, Lease};
use crate::queue::QueueError;
use crate::time::Timestamp;

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
