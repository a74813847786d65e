//! The RabbitMQ adapter (AMQP 0-9-1, through lapin): jobs from a quorum
//! queue.
//!
//! | the policy says | RabbitMQ does |
//! |---|---|
//! | claim | a delivery from a consumer on the quorum queue (prefetch bounds how many wait in this process); the delivery count is the queue's `x-delivery-count` header plus one |
//! | renew the lease | nothing on the wire: the delivery is this channel's until it is acked, nacked or the channel closes |
//! | ack | `basic.ack` |
//! | retry after a delay | a publish (confirmed) to the retry queue `<queue>.retry.<ms>`, whose messages expire after `<ms>` into the queue through the default exchange (a dead-letter exchange), then `basic.ack` |
//! | hand back (shutdown) | a publish (confirmed) back to the queue, then `basic.ack` |
//! | dead-letter | a publish (confirmed) to the dead-letter queue `<queue>.dead`, then `basic.ack` |
//!
//! The job's record travels in the message's `rebound-job` header, so a
//! retry is a new message carrying it; `x-delivery-count` adds the
//! deliveries that ended without an ack (a crashed consumer, a closed
//! channel), which is what poison detection counts.
//!
//! **Retry delays** go through queues whose messages all live the same
//! time (a per-queue TTL expires in order; per-message TTLs would block
//! behind a longer one). A delay is split into powers of two of 100 ms: the
//! message waits in the largest retry queue not longer than what remains,
//! and when it comes back early it goes to the next one; a 30 s delay
//! takes at most 9 hops. Retry queues are declared when first used.
//!
//! # Where RabbitMQ limits the guarantee
//!
//! * **The lease is the channel.** A delivery stays this consumer's until
//!   the channel closes (a crash, a lost connection, a missed heartbeat:
//!   set `heartbeat` in the URL) or RabbitMQ's `consumer_timeout` (30 min
//!   by default) closes it: raise that for longer jobs. A worker that let
//!   its lease run out hands the delivery back at its next rescue pass.
//!   Acks on a closed channel fail, which is the fence.
//! * **Publish then ack**: a crash between the confirmed publish of a
//!   retry (or a dead letter) and the ack of the original leaves both: the
//!   job runs again (at-least-once), or is dead-lettered and runs again.
//! * **Delays** have 100 ms resolution, plus the hops.
//! * **Ordering**: queue order for new messages; a retry comes back at the
//!   end of the queue.
//! * **Browsing the dead-letter queue** (list, show, redrive, purge) takes
//!   its messages on a channel of its own and returns the ones it keeps
//!   when done; two operators browsing at once see part of it each.
//! * **Lookups**: [`Queue::job`](crate::Queue::job) finds dead-lettered jobs and jobs running
//!   in this process; [`Queue::counts`](crate::Queue::counts) counts running jobs of this process
//!   only (AMQP does not report unacked messages), and retry queues this
//!   process declared.
//! * **Job ids** are made by the producer, since RabbitMQ numbers no
//!   messages: the enqueue time in milliseconds (never the same twice for
//!   one producer) and a 22-bit producer number, drawn at random when the
//!   adapter connects or given with [`AmqpQueue::with_producer_id`]. A
//!   producer's ids increase; two producers clash only if they have the same
//!   number (1 in 4,194,304 for random ones).
//! * **Messages from other producers** are jobs too: their job id is their
//!   `message_id` if it is a number, else a hash of it (or of the body).
//!
//! # Conformance
//!
//! The adapter runs the queue conformance suite (`rebound_jobs::conformance`)
//! on real time, declaring where it keeps a weaker rule:
//! * `Limit::OneQueue`: one adapter serves one queue.
//! * `Limit::WaitingNotLookedUp`: see *Lookups* above.
//! * `Limit::UntimedLostDeliveries`: a delivery that never reported enters the history with no claim time (`claimed_at: None`) and no worker.

mod claim;
mod connection;
mod dead;
mod ids;
mod message;
mod publish;
mod settle;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::{Channel, Connection};

use crate::job::validate_queue_name;
use crate::queue::broker::InFlight;
use crate::queue::QueueError;

const BACKEND: &str = "amqp";
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest retry queue's time.
const STEP_MS: u64 = 100;
/// The longest retry queue's time: 100 ms × 2^24 (about 19 days).
const MAX_STEPS_LOG2: u32 = 24;

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable {
        backend: BACKEND,
        source: e.to_string().into(),
    }
}

/// A connection with a confirming channel for publishing and a consuming
/// channel.
struct Conn {
    connection: Connection,
    publish: Channel,
    consuming: tokio::sync::OnceCell<()>,
}

/// Jobs on a RabbitMQ quorum queue.
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_jobs::QueueError> {
/// use rebound_jobs::{AmqpQueue, NewJob, Queue};
///
/// // The quorum queue `invoices` (declared if missing).
/// let queue = AmqpQueue::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "invoices").await?;
/// queue.enqueue(NewJob::new("invoices", r#"{"invoice":42}"#)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AmqpQueue {
    inner: Arc<Inner>,
    clock: rebound::Clock,
}

struct Inner {
    url: String,
    queue: String,
    prefetch: u16,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    deliveries_tx: tokio::sync::mpsc::UnboundedSender<lapin::message::Delivery>,
    deliveries: Mutex<tokio::sync::mpsc::UnboundedReceiver<lapin::message::Delivery>>,
    wake: Arc<tokio::sync::Notify>,
    in_flight: InFlight<lapin::Acker>,
    retry_queues: Mutex<BTreeSet<u64>>,
    /// Ids for the jobs this producer enqueues (see `ids`).
    ids: ids::IdSource,
    /// The runtime the queue was connected on: the consumer task runs
    /// there, not on whichever runtime happens to claim first (which may
    /// block, like a worker on a current-thread runtime).
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("queue", &self.inner.queue)
            .field("prefetch", &self.inner.prefetch)
            .finish_non_exhaustive()
    }
}

impl AmqpQueue {
    /// Connects to `url` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`;
    /// add `?heartbeat=10` to notice a dead connection within 20 s) for the
    /// jobs of the quorum queue `queue` (declared if missing, with its
    /// dead-letter queue `<queue>.dead`).
    pub async fn connect(url: &str, queue: &str) -> Result<Self, QueueError> {
        validate_queue_name(queue).map_err(|reason| QueueError::Invalid {
            field: "queue",
            reason,
        })?;
        url.parse::<lapin::uri::AMQPUri>()
            .map_err(|e| QueueError::Invalid {
                field: "url",
                reason: format!("{url:?} is not an AMQP URL: {e}"),
            })?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let q = AmqpQueue {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                queue: queue.to_owned(),
                prefetch: 10,
                conn: tokio::sync::Mutex::new(None),
                deliveries_tx: tx,
                deliveries: Mutex::new(rx),
                wake: Arc::new(tokio::sync::Notify::new()),
                in_flight: InFlight::default(),
                retry_queues: Mutex::new(BTreeSet::new()),
                ids: ids::IdSource::random(&mut rebound::RandomSource::entropy().rng()),
                runtime: tokio::runtime::Handle::current(),
            }),
            clock: rebound::Clock::default(),
        };
        q.conn().await?;
        Ok(q)
    }

    /// Deliveries the consumer may hold unacked in this process (at least
    /// 1). Default 10: set it to the worker's concurrency, since a delivery
    /// waiting here when the process dies counts as a delivery without an
    /// outcome.
    pub fn with_prefetch(mut self, n: u16) -> Result<Self, QueueError> {
        if n == 0 {
            return Err(QueueError::Invalid {
                field: "prefetch",
                reason: "must be at least 1".into(),
            });
        }
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| QueueError::Invalid {
            field: "prefetch",
            reason: "set the prefetch before cloning the queue".into(),
        })?;
        inner.prefetch = n;
        Ok(self)
    }

    /// Numbers this producer (at most 4,194,303) in the ids of the jobs it
    /// enqueues, instead of a number drawn at random when it connects.
    ///
    /// RabbitMQ numbers no messages, so each producer makes its jobs' ids:
    /// the enqueue time in milliseconds and the producer's number. Random
    /// numbers of two producers are the same with probability 1 in
    /// 4,194,304; give each producer of a queue its own number (a replica's
    /// ordinal, say) to rule that out.
    pub fn with_producer_id(mut self, id: u32) -> Result<Self, QueueError> {
        if id > ids::MAX_PRODUCER {
            return Err(QueueError::Invalid {
                field: "producer_id",
                reason: format!("{id} is larger than {}", ids::MAX_PRODUCER),
            });
        }
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| QueueError::Invalid {
            field: "producer_id",
            reason: "set the producer id before cloning the queue".into(),
        })?;
        inner.ids = ids::IdSource::new(id);
        Ok(self)
    }

    /// This producer's number in the ids it makes (see
    /// [`with_producer_id`](Self::with_producer_id)).
    pub fn producer_id(&self) -> u32 {
        self.inner.ids.producer()
    }

    /// The clock read for the times recorded with jobs and by workers.
    /// Default: the system clock through tokio. Delays run on RabbitMQ's
    /// clock.
    pub fn with_clock(mut self, clock: rebound::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The dead-letter queue: `<queue>.dead`.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.inner.queue)
    }

    fn check(&self, queue: &str) -> Result<(), QueueError> {
        if queue == self.inner.queue {
            return Ok(());
        }
        validate_queue_name(queue).map_err(|reason| QueueError::Invalid {
            field: "queue",
            reason,
        })?;
        Err(QueueError::Invalid {
            field: "queue",
            reason: format!(
                "this RabbitMQ adapter serves the queue {:?}, not {queue:?}; connect one AmqpQueue per queue",
                self.inner.queue
            ),
        })
    }
}

crate::queue::broker::impl_queue_for_broker!(AmqpQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }

    fn notifier(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.inner.wake.clone())
    }
});
