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
//! * **Lookups**: [`Queue::job`] finds dead-lettered jobs and jobs running
//!   in this process; [`Queue::counts`] counts running jobs of this process
//!   only (AMQP does not report unacked messages), and retry queues this
//!   process declared.
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

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::dlq::DeadLetterFilter;
use crate::job::{
    validate_queue_name, ClaimedJob, JobId, JobRecord, JobStatus, Lease, NewJob, QueueCounts,
    Settlement,
};
use crate::queue::broker::{self, Envelope, InFlight, ENVELOPE_HEADER};
use crate::queue::{apply, ClaimRequest, Queue, QueueError};
use crate::time::Timestamp;

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
    next_id: std::sync::atomic::AtomicU64,
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

fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<Vec<u8>> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.as_bytes().to_vec()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes().to_vec()),
        _ => None,
    }
}

fn header_count(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    match headers?.inner().get(name)? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::Timestamp(n) => Some(*n),
        _ => None,
    }
}

/// FNV-1a: a stable id for a message that brings none.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The envelope a message carries, or a fresh one for a message from
/// another producer.
fn envelope_of(
    queue: &str,
    props: &BasicProperties,
    body: &[u8],
    now: Timestamp,
) -> Result<Envelope, QueueError> {
    let headers = props.headers().as_ref();
    let message_id = props.message_id().as_ref().map(|m| m.as_str().to_owned());
    let id = match &message_id {
        Some(m) => m
            .parse::<u64>()
            .map(JobId)
            .unwrap_or(JobId(fnv(m.as_bytes()))),
        None => JobId(fnv(body)),
    };
    if let Some(e) = header_str(headers, ENVELOPE_HEADER) {
        return Envelope::decode(&e, id);
    }
    let published = props
        .timestamp()
        .map(|s| Timestamp::from_millis(s.saturating_mul(1000)))
        .unwrap_or(now);
    Ok(Envelope::fresh(id, queue, published))
}

/// The retry queue for what remains of a delay: the largest power of two
/// of 100 ms not longer than it (at least 100 ms).
fn retry_step(remaining: Duration) -> u64 {
    let steps = (crate::time::duration_millis(remaining) / STEP_MS).max(1);
    let log2 = (63 - steps.leading_zeros()).min(MAX_STEPS_LOG2);
    STEP_MS << log2
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
                next_id: std::sync::atomic::AtomicU64::new(0),
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

    /// The live connection, reconnecting (and restarting the consumer) if
    /// it was lost.
    async fn conn(&self) -> Result<Arc<Conn>, QueueError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.connection.status().connected() && c.publish.status().connected() {
                return Ok(c.clone());
            }
        }
        let c = tokio::time::timeout(OP_TIMEOUT, self.open())
            .await
            .map_err(|_| unavailable("connecting to RabbitMQ took longer than 5 s"))??;
        let c = Arc::new(c);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn open(&self) -> Result<Conn, QueueError> {
        let i = &self.inner;
        let connection = Connection::connect(&i.url, ConnectionProperties::default())
            .await
            .map_err(unavailable)?;
        let publish = connection.create_channel().await.map_err(unavailable)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        let mut quorum = FieldTable::default();
        quorum.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        publish
            .queue_declare(
                i.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                quorum,
            )
            .await
            .map_err(unavailable)?;
        publish
            .queue_declare(
                self.dead_letter_queue().as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        self.inner
            .retry_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(Conn {
            connection,
            publish,
            consuming: tokio::sync::OnceCell::new(),
        })
    }

    /// Starts the consumer on `conn` once: only a queue that claims takes
    /// deliveries (a producer's connection never holds any).
    async fn consume(&self, conn: &Conn) -> Result<(), QueueError> {
        let start = conn.consuming.get_or_try_init(|| async {
            let i = &self.inner;
            let consume = conn
                .connection
                .create_channel()
                .await
                .map_err(unavailable)?;
            consume
                .basic_qos(i.prefetch, BasicQosOptions::default())
                .await
                .map_err(unavailable)?;
            let mut consumer = consume
                .basic_consume(
                    i.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
            let (tx, wake) = (i.deliveries_tx.clone(), i.wake.clone());
            i.runtime.spawn(async move {
                // Ends when the channel closes; the next claim
                // reconnects.
                let _keep = consume;
                while let Some(Ok(d)) = consumer.next().await {
                    if tx.send(d).is_err() {
                        return;
                    }
                    wake.notify_waiters();
                }
            });
            Ok(())
        });
        tokio::time::timeout(OP_TIMEOUT, start)
            .await
            .map_err(|_| unavailable("starting the consumer took longer than 5 s"))?
            .map(|_| ())
    }

    /// Publishes `rec` to `queue` through the default exchange and waits
    /// for the broker's confirm.
    async fn publish(&self, queue: &str, rec: &JobRecord) -> Result<(), QueueError> {
        let conn = self.conn().await?;
        let mut headers = FieldTable::default();
        headers.insert(
            ENVELOPE_HEADER.into(),
            AMQPValue::LongString(LongString::from(Envelope::of(rec).encode())),
        );
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(rec.id.0.to_string()))
            .with_headers(headers);
        let confirm = conn
            .publish
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &rec.payload,
                props,
            )
            .await
            .map_err(unavailable)?;
        let confirmed = tokio::time::timeout(OP_TIMEOUT, confirm)
            .await
            .map_err(|_| unavailable("no publisher confirm from RabbitMQ in 5 s"))?
            .map_err(unavailable)?;
        if confirmed.is_nack() {
            return Err(unavailable(format!(
                "RabbitMQ refused a message for {queue:?} (publisher nack)"
            )));
        }
        Ok(())
    }

    /// Publishes `rec` to wait until its `run_at` (from `now`): into the
    /// queue if due, else into a retry queue.
    async fn publish_due(&self, rec: &JobRecord, now: Timestamp) -> Result<(), QueueError> {
        if rec.run_at <= now {
            return self.publish(&self.inner.queue, rec).await;
        }
        let ms = retry_step(rec.run_at.saturating_since(now));
        let name = format!("{}.retry.{ms}", self.inner.queue);
        let declared = self
            .inner
            .retry_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ms);
        if !declared {
            let conn = self.conn().await?;
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms as i64));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.inner.queue.as_str().into()),
            );
            conn.publish
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    args,
                )
                .await
                .map_err(unavailable)?;
            self.inner
                .retry_queues
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ms);
        }
        self.publish(&name, rec).await
    }

    /// Takes every message of the dead-letter queue on a channel of its
    /// own, and returns them with the channel (closing it returns the
    /// unacked ones to the queue, in order).
    async fn browse(
        &self,
    ) -> Result<(Channel, Vec<(lapin::message::Delivery, JobRecord)>), QueueError> {
        let conn = self.conn().await?;
        let ch = conn
            .connection
            .create_channel()
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let now = crate::time::wall(&self.clock);
        while let Some(m) = ch
            .basic_get(
                self.dead_letter_queue().as_str().into(),
                BasicGetOptions::default(),
            )
            .await
            .map_err(unavailable)?
        {
            let d = m.delivery;
            let env = envelope_of(&self.inner.queue, &d.properties, &d.data, now)?;
            let rec = env.record(d.data.clone(), JobStatus::Dead);
            out.push((d, rec));
        }
        Ok((ch, out))
    }
}

#[async_trait]
impl Queue for AmqpQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }

    fn notifier(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.inner.wake.clone())
    }

    async fn enqueue_at(&self, job: NewJob, now: Timestamp) -> Result<JobId, QueueError> {
        self.check(&job.queue)?;
        // Ids by time: milliseconds × 65536 + a counter of this process.
        let n = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = JobId(now.as_millis().saturating_mul(65_536) + (n & 0xFFFF));
        let rec = apply::new_record(id, job, now);
        self.publish_due(&rec, now).await?;
        Ok(id)
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, QueueError> {
        self.check(req.queue)?;
        let conn = self.conn().await?;
        self.consume(&conn).await?;
        let mut got = Vec::new();
        {
            let mut rx = self
                .inner
                .deliveries
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while got.len() < req.max {
                match rx.try_recv() {
                    Ok(d) => got.push(d),
                    Err(_) => break,
                }
            }
        }
        let mut jobs = Vec::new();
        for d in got {
            let env = match envelope_of(&self.inner.queue, &d.properties, &d.data, req.now) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(queue = %self.inner.queue, "dead-lettering a message whose envelope cannot be read: {e}");
                    let mut rec = Envelope::fresh(JobId(fnv(&d.data)), &self.inner.queue, req.now)
                        .record(d.data.clone(), JobStatus::Dead);
                    rec.reason = Some(crate::DeadLetterReason::Permanent);
                    rec.dead_at = Some(req.now);
                    if self.publish(&self.dead_letter_queue(), &rec).await.is_ok() {
                        let _ = d.acker.ack(BasicAckOptions::default()).await;
                    }
                    continue;
                }
            };
            if env.run_at > req.now {
                // Came back from a retry queue before its time: wait in the
                // next one.
                let rec = env.record(d.data.clone(), JobStatus::Available);
                match self.publish_due(&rec, req.now).await {
                    Ok(()) => {
                        let _ = d.acker.ack(BasicAckOptions::default()).await;
                    }
                    Err(_) => {
                        let _ = d
                            .acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            })
                            .await;
                    }
                }
                continue;
            }
            let delivered = header_count(d.properties.headers().as_ref(), "x-delivery-count")
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX - 1) + 1);
            let (job, rec) = broker::claim(&env, d.data, delivered, req.now, req.lease, req.worker);
            self.inner.in_flight.insert(&job.lease, rec, d.acker);
            jobs.push(job);
        }
        Ok(jobs)
    }

    async fn renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        lease_for: Duration,
    ) -> Result<Timestamp, QueueError> {
        let until = now.saturating_add(lease_for);
        let alive = {
            let conn = self.inner.conn.lock().await;
            conn.as_ref()
                .is_some_and(|c| c.connection.status().connected())
        };
        if !alive {
            // The channel that holds the delivery is gone: RabbitMQ has
            // returned the message to the queue.
            let _ = self.inner.in_flight.take(lease, None);
            return Err(broker::lost(lease));
        }
        self.inner
            .in_flight
            .with(lease, None, |h| h.expires_at = until)?;
        Ok(until)
    }

    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let mut held = self.inner.in_flight.take(lease, None)?;
        let dead = matches!(settlement, Settlement::DeadLetter { .. });
        let before = held.record.clone();
        let keep = apply::settle(&mut held.record, settlement, now);
        if keep {
            let r = if dead {
                self.publish(&self.dead_letter_queue(), &held.record).await
            } else {
                self.publish_due(&held.record, now).await
            };
            if let Err(e) = r {
                // Not written: hold the delivery again so the worker can
                // try while its lease lasts.
                held.record = before;
                self.inner.in_flight.put_back(held, lease.id);
                return Err(e);
            }
        }
        // Bounded: an ack on the channel of a connection that was cut can
        // stay unanswered; the message is back in the queue either way.
        match tokio::time::timeout(OP_TIMEOUT, held.handle.ack(BasicAckOptions::default())).await {
            Ok(Ok(_)) => Ok(()),
            // The channel closed: the message is back in the queue.
            Ok(Err(_)) | Err(_) => Err(broker::lost(lease)),
        }
    }

    async fn rescue(&self, now: Timestamp, max: usize) -> Result<usize, QueueError> {
        // Deliveries whose lease ran out in this process go back to the
        // queue (RabbitMQ counts the return in x-delivery-count).
        let expired = self.inner.in_flight.expired(now, max);
        let n = expired.len();
        for h in expired {
            // Bounded, as in settle: the channel may be a cut connection's.
            let nack = h.handle.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            });
            let _ = tokio::time::timeout(OP_TIMEOUT, nack).await;
        }
        Ok(n)
    }

    async fn counts(&self, queue: &str, _now: Timestamp) -> Result<QueueCounts, QueueError> {
        self.check(queue)?;
        let conn = self.conn().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let count = |name: String| {
            let ch = conn.publish.clone();
            async move {
                ch.queue_declare(name.as_str().into(), passive, FieldTable::default())
                    .await
                    .map(|q| u64::from(q.message_count()))
                    .map_err(unavailable)
            }
        };
        let due = count(self.inner.queue.clone()).await?;
        let dead = count(self.dead_letter_queue()).await?;
        let steps: Vec<u64> = self
            .inner
            .retry_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        let mut scheduled = 0;
        for ms in steps {
            scheduled += count(format!("{}.retry.{ms}", self.inner.queue)).await?;
        }
        // Deliveries that reached this process but were not claimed yet
        // are due; claimed ones run here.
        let buffered = self
            .inner
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
        Ok(QueueCounts {
            due: due + buffered,
            scheduled,
            running: self.inner.in_flight.len() as u64,
            dead,
        })
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        if let Some(r) = self.inner.in_flight.record(id) {
            return Ok(Some(r));
        }
        let (ch, all) = self.browse().await?;
        let found = all.into_iter().find(|(_, r)| r.id == id).map(|(_, r)| r);
        let _ = ch.close(200, "done".into()).await;
        Ok(found)
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let (ch, all) = self.browse().await?;
        let _ = ch.close(200, "done".into()).await;
        Ok(filter.page(all.into_iter().map(|(_, r)| r), after, limit))
    }

    async fn redrive(&self, ids: &[JobId], now: Timestamp) -> Result<usize, QueueError> {
        let (ch, all) = self.browse().await?;
        let mut moved = 0;
        let mut result = Ok(());
        for (d, mut rec) in all {
            if !ids.contains(&rec.id) {
                continue;
            }
            apply::redrive(&mut rec, now);
            if let Err(e) = self.publish(&self.inner.queue, &rec).await {
                result = Err(e);
                break;
            }
            if d.acker.ack(BasicAckOptions::default()).await.is_ok() {
                moved += 1;
            }
        }
        let _ = ch.close(200, "done".into()).await;
        result.map(|()| moved)
    }

    async fn purge(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let (ch, all) = self.browse().await?;
        let mut purged = 0;
        for (d, rec) in all {
            if ids.contains(&rec.id) && d.acker.ack(BasicAckOptions::default()).await.is_ok() {
                purged += 1;
            }
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(purged)
    }

    async fn dead_letter_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        if queue.is_some_and(|q| q != self.inner.queue) {
            return Ok(0);
        }
        let conn = self.conn().await?;
        conn.publish
            .queue_declare(
                self.dead_letter_queue().as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| u64::from(q.message_count()))
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_split_into_powers_of_two_of_100_ms() {
        assert_eq!(retry_step(Duration::from_millis(10)), 100);
        assert_eq!(retry_step(Duration::from_millis(250)), 200);
        assert_eq!(retry_step(Duration::from_secs(3)), 1600);
        assert_eq!(retry_step(Duration::from_secs(30 * 86_400)), 100 << 24);
    }
}
