//! The Redis Streams adapter: jobs from a stream, through a consumer group.
//!
//! | the policy says | Redis does |
//! |---|---|
//! | claim | `XAUTOCLAIM` entries idle past the lease (a crashed consumer's), then `XREADGROUP` new ones; the delivery count comes from the pending entries list |
//! | renew the lease | `XCLAIM … IDLE 0 JUSTID` (resets the idle time, counts nothing) |
//! | ack | `XACK` + `XDEL` |
//! | retry after a delay | `XACK` + `XDEL`, the job into a sorted set scored by its due time; a claim moves due jobs back into the stream |
//! | hand back (shutdown) | `XACK` + `XDEL` + `XADD` back into the stream |
//! | dead-letter | `XACK` + `XDEL` + `XADD` to the dead-letter stream `<stream>:rebound:dead` |
//!
//! Each of those is one Lua script, so it is atomic, and each checks the
//! **fence** first: the entry must still be pending with the delivery count
//! it was claimed with. A worker whose lease ran out and whose entry was
//! taken over by `XAUTOCLAIM` (which raises the count) can neither renew,
//! ack, retry nor dead-letter it.
//!
//! The job's record (its delivery counts, backoff and history) travels in
//! the entry's `rebound-job` field; the delivery count Redis keeps in the
//! pending entries list adds the deliveries that crashed before they could
//! report, which is what poison detection counts.
//!
//! # Where Redis limits the guarantee
//!
//! * **The stream belongs to one consumer group.** Retries and hand-backs
//!   are written back into the stream as new entries, and acked entries are
//!   deleted: another group reading the same stream would see retried jobs
//!   again and miss acked ones. Give each job queue its own stream.
//! * **Leases follow Redis's clock**: an entry is taken over when Redis has
//!   seen it idle for longer than the claimer's lease. Give every worker of
//!   a stream the same lease.
//! * **Delays** are kept in milliseconds with no upper bound, and are due
//!   when a claim runs after their time: a worker's poll interval (1 s by
//!   default) is their resolution.
//! * **Ordering**: new entries are read in stream order; a retry goes to the
//!   end of the stream when it is due.
//! * **Durability** is Redis's: with `appendfsync everysec` (or no AOF), a
//!   Redis crash can lose the last second of writes — acks and enqueues
//!   alike.
//! * **Entries from other producers** are jobs too: their `payload` field
//!   is the payload if they have one, else their fields as a JSON object;
//!   their job id is derived from the entry id (milliseconds × 65536 +
//!   sequence).
//! * **Lookups**: [`Queue::job`](crate::Queue::job) finds dead-lettered jobs, scheduled
//!   retries, and jobs running in this process; a job waiting in the stream
//!   is not looked up. Listing the dead-letter stream reads it whole.
//!
//! # Conformance
//!
//! The adapter runs the queue conformance suite (`rebound_jobs::conformance`)
//! on real time, declaring where it keeps a weaker rule:
//! * `Limit::OneQueue`: one adapter serves one stream.
//! * `Limit::WaitingNotLookedUp`: see *Lookups* above.
//! * `Limit::UntimedLostDeliveries`: a delivery that never reported enters the history with no claim time (`claimed_at: None`) and no worker.

mod claim;
mod dead;
mod entry;
mod scripts;
mod settle;
mod setup;

use entry::{map_err, Entry};

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::job::validate_queue_name;
use crate::queue::broker::InFlight;
use crate::queue::QueueError;

const BACKEND: &str = "redis";

/// Jobs on a Redis stream, read through a consumer group.
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_jobs::QueueError> {
/// use rebound_jobs::{NewJob, Queue, RedisStreamQueue};
///
/// // The stream `invoices`, through the consumer group `rebound`.
/// let queue = RedisStreamQueue::connect("redis://127.0.0.1:6379", "invoices").await?;
/// queue.enqueue(NewJob::new("invoices", r#"{"invoice":42}"#)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStreamQueue {
    inner: Arc<Inner>,
    clock: rebound::Clock,
}

struct Inner {
    conn: ConnectionManager,
    stream: String,
    group: String,
    scripts: Scripts,
    in_flight: InFlight<Entry>,
    ready: tokio::sync::OnceCell<()>,
}

struct Scripts {
    claim: Script,
    settle: Script,
    renew: Script,
    enqueue: Script,
    redrive: Script,
}

impl std::fmt::Debug for RedisStreamQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamQueue")
            .field("stream", &self.inner.stream)
            .field("group", &self.inner.group)
            .finish_non_exhaustive()
    }
}

impl RedisStreamQueue {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`) for the jobs of
    /// `stream` (also the queue name workers and jobs use), read through
    /// the consumer group `rebound` (see [`with_group`](Self::with_group)).
    /// The connection reconnects by itself; connecting and each command
    /// time out after 2 s.
    pub async fn connect(url: &str, stream: &str) -> Result<Self, QueueError> {
        validate_queue_name(stream).map_err(|reason| QueueError::Invalid {
            field: "stream",
            reason,
        })?;
        let client = redis::Client::open(url).map_err(|e| QueueError::Invalid {
            field: "url",
            reason: format!("{url:?} is not a Redis URL: {e}"),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(map_err)?;
        Ok(RedisStreamQueue {
            inner: Arc::new(Inner {
                conn,
                stream: stream.to_owned(),
                group: "rebound".to_owned(),
                scripts: Scripts {
                    claim: Script::new(scripts::CLAIM),
                    settle: Script::new(scripts::SETTLE),
                    renew: Script::new(scripts::RENEW),
                    enqueue: Script::new(scripts::ENQUEUE),
                    redrive: Script::new(scripts::REDRIVE),
                },
                in_flight: InFlight::default(),
                ready: tokio::sync::OnceCell::new(),
            }),
            clock: rebound::Clock::default(),
        })
    }

    /// Reads through consumer group `group` (created at the start of the
    /// stream if missing, so jobs already in it run). Default `rebound`.
    pub fn with_group(mut self, group: &str) -> Result<Self, QueueError> {
        validate_queue_name(group).map_err(|reason| QueueError::Invalid {
            field: "group",
            reason: reason.replace("queue name", "group name"),
        })?;
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| QueueError::Invalid {
            field: "group",
            reason: "set the group before cloning the queue".into(),
        })?;
        inner.group = group.to_owned();
        Ok(self)
    }

    /// The clock read for the times recorded with jobs (enqueue, delivery,
    /// dead-letter times) and by workers. Default: the system clock through
    /// tokio. Leases expire on Redis's own clock.
    pub fn with_clock(mut self, clock: rebound::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The stream.
    pub fn stream(&self) -> &str {
        &self.inner.stream
    }

    /// The dead-letter stream: `<stream>:rebound:dead`.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}:rebound:dead", self.inner.stream)
    }
}

crate::queue::broker::impl_queue_for_broker!(RedisStreamQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }
});
