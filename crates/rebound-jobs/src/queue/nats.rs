//! The NATS JetStream adapter: jobs from a stream, through a durable pull
//! consumer.
//!
//! | the policy says | JetStream does |
//! |---|---|
//! | claim | a fetch from the durable pull consumer; the delivery count is the message's `num_delivered` metadata |
//! | renew the lease | an in-progress ack (`+WPI`), which restarts the consumer's ack wait |
//! | ack | `+ACK` |
//! | retry after a delay | the job's record into a key-value bucket, then `Nak` with the delay |
//! | hand back (shutdown) | the record into the bucket, then `Nak` without delay |
//! | dead-letter | a publish to the dead-letter stream `<stream>_DEAD` (acknowledged by the stream), then `Term` |
//!
//! A `Nak` keeps the message where it is, so the record of its failures
//! (counts, backoff, errors) is kept beside it, in the key-value bucket
//! `<stream>_REBOUND` (one message per subject, like a key-value bucket), keyed by stream sequence, and read back when the
//! message is delivered again (a first delivery reads nothing). A job's id
//! is the stream sequence of the message first published for it.
//!
//! **The max-deliveries advisory.** A consumer with `max_deliver` set
//! stops delivering a message after that many deliveries and says so only
//! in an advisory: without a handler the message silently stops. The
//! adapter captures those advisories in the stream `<stream>_ADVISORIES`
//! (so none is lost while no worker runs), and every rescue pass
//! dead-letters the message each one names — reason `exhausted` if runs
//! failed, `poison` if none reported — with the broker's limit in its
//! error. The adapter's own consumer has no `max_deliver` (the policy
//! decides) unless you set one.
//!
//! # Where JetStream limits the guarantee
//!
//! * **The lease is the consumer's ack wait** (30 s by default,
//!   [`with_lease`](NatsQueue::with_lease)); workers take it
//!   ([`Queue::fixed_lease`]). After it the server redelivers on its own,
//!   and the server does not tell a late ack from a current one, so the
//!   adapter refuses to settle or renew a delivery whose lease has ended on
//!   the worker's clock: fencing by time, as good as the two clocks agree.
//! * **Delays** are the server's `Nak` delays, in nanoseconds with no upper
//!   bound; a delayed message still counts against the consumer's
//!   `max_ack_pending` (set to unlimited on the consumer the adapter
//!   creates).
//! * **Ordering**: stream order for new messages; a retried message comes
//!   back when its delay ends.
//! * **A crash between writing the record and the `Nak`** leaves the
//!   record written; the redelivery after the ack wait reads it and counts
//!   the failure once. A crash between the dead-letter publish and the
//!   `Term` leaves the job dead-lettered and delivered again: the next
//!   delivery runs it (at-least-once; the dead-letter copy stays).
//! * **Redrive** publishes a fresh message (a new sequence, a fresh budget)
//!   and then deletes the dead-letter message; a crash between the two
//!   leaves a copy in the dead-letter stream.
//! * **Lookups**: [`Queue::job`] finds dead-lettered jobs and jobs running
//!   in this process. [`Queue::counts`] reports messages waiting for their
//!   `Nak` delay as running (the server counts both as pending acks), and
//!   jobs enqueued for later as due until a claim first sees them: it
//!   cannot count scheduled jobs apart.
//!
//! # Conformance
//!
//! The adapter runs the queue conformance suite (`rebound_jobs::conformance`)
//! on real time, declaring where it keeps a weaker rule:
//! * `Limit::OneQueue`: one adapter serves one stream.
//! * `Limit::WaitingNotLookedUp`: see *Lookups* above.
//! * `Limit::BrokerEnqueueTime`: a job published without a record starts its age at the server's publish time.
//! * `Limit::ScheduledNotCounted`: see *Lookups* above.
//! * `Limit::UntimedLostDeliveries`: a delivery that never reported enters the history with no claim time (`claimed_at: None`) and no worker.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_nats::HeaderMap;
use async_trait::async_trait;
use futures_util::StreamExt;

use crate::dlq::DeadLetterFilter;
use crate::job::{
    validate_queue_name, ClaimedJob, JobId, JobRecord, JobStatus, Lease, NewJob, QueueCounts,
    Settlement,
};
use crate::policy::DeadLetterReason;
use crate::queue::broker::{self, Envelope, InFlight, ENVELOPE_HEADER};
use crate::queue::{apply, ClaimRequest, Queue, QueueError};
use crate::time::Timestamp;

const BACKEND: &str = "nats";
/// The header naming when a job enqueued for later is first due (ms).
const DUE_HEADER: &str = "rebound-due";
/// How long a server answer may take.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetch may go without a message before it is given up. A
/// fetch is `no_wait` (the server answers at once with what is due), but
/// a server can hold one open anyway: after `max_deliver` stops a message
/// it can still count as pending, and the fetch would wait for it forever
/// — and with it the worker's loop, rescues (which drain the
/// max-deliveries advisories) included. (A server-side `expires` would
/// hold every fetch that finds fewer messages than it asked for until it
/// runs out.)
const FETCH_STALL: Duration = Duration::from_secs(1);

/// A delivery in flight: where to ack it, and whether the bucket holds a
/// record for it.
#[derive(Debug, Clone)]
struct Delivery {
    reply: async_nats::Subject,
    sequence: u64,
    delivered: u32,
    recorded: bool,
}

/// Jobs on a JetStream stream, through a durable pull consumer.
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_jobs::QueueError> {
/// use rebound_jobs::{NatsQueue, NewJob, Queue};
///
/// // The stream INVOICES (created with the subject INVOICES if missing),
/// // through the durable consumer `rebound`.
/// let queue = NatsQueue::connect("nats://127.0.0.1:4222", "INVOICES").await?;
/// queue.enqueue(NewJob::new("INVOICES", r#"{"invoice":42}"#)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsQueue {
    inner: Arc<Inner>,
    clock: rebound::Clock,
}

struct Inner {
    js: jetstream::Context,
    stream: String,
    subject: String,
    consumer_name: String,
    lease: Duration,
    max_deliver: i64,
    in_flight: InFlight<Delivery>,
    ready: tokio::sync::OnceCell<Ready>,
}

struct Ready {
    subject: String,
    consumer: consumer::Consumer<consumer::pull::Config>,
    advisories: consumer::Consumer<consumer::pull::Config>,
    records: Records,
    dead: stream::Stream,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsQueue")
            .field("stream", &self.inner.stream)
            .field("consumer", &self.inner.consumer_name)
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable {
        backend: BACKEND,
        source: e.to_string().into(),
    }
}

fn setup(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> QueueError {
    move |e| unavailable(format!("{what}: {e}"))
}

fn backend_err(e: impl std::fmt::Display) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        source: e.to_string().into(),
    }
}

fn name_check(field: &'static str, name: &str) -> Result<(), QueueError> {
    validate_queue_name(name).map_err(|reason| QueueError::Invalid {
        field,
        reason: reason.replace("queue name", &format!("{field} name")),
    })?;
    if name.contains(['.', ':']) {
        return Err(QueueError::Invalid {
            field,
            reason: format!(
                "{field} name {name:?} contains `.` or `:`, which JetStream names may not"
            ),
        });
    }
    Ok(())
}

impl NatsQueue {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`) for the jobs of the
    /// JetStream stream `stream` (also the queue name workers and jobs
    /// use). The stream is created with the subject `<stream>` if it does
    /// not exist; new jobs are published to its first subject. Read
    /// through the durable consumer `rebound`
    /// ([`with_consumer`](Self::with_consumer)).
    pub async fn connect(url: &str, stream: &str) -> Result<Self, QueueError> {
        name_check("stream", stream)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| match e.kind() {
                async_nats::ConnectErrorKind::ServerParse => QueueError::Invalid {
                    field: "url",
                    reason: format!("{url:?} is not a NATS URL: {e}"),
                },
                _ => unavailable(e),
            })?;
        let js = jetstream::new(client);
        Ok(NatsQueue {
            inner: Arc::new(Inner {
                js,
                stream: stream.to_owned(),
                subject: stream.to_owned(),
                consumer_name: "rebound".to_owned(),
                lease: Duration::from_secs(30),
                max_deliver: -1,
                in_flight: InFlight::default(),
                ready: tokio::sync::OnceCell::new(),
            }),
            clock: rebound::Clock::default(),
        })
    }

    fn inner_mut(&mut self, field: &'static str) -> Result<&mut Inner, QueueError> {
        Arc::get_mut(&mut self.inner).ok_or_else(|| QueueError::Invalid {
            field,
            reason: format!("set the {field} before cloning the queue or using it"),
        })
    }

    /// Reads through the durable pull consumer `name` (created if
    /// missing). Default `rebound`.
    pub fn with_consumer(mut self, name: &str) -> Result<Self, QueueError> {
        name_check("consumer", name)?;
        self.inner_mut("consumer")?.consumer_name = name.to_owned();
        Ok(self)
    }

    /// The consumer's ack wait: the lease workers take (at least 1 s).
    /// Default 30 s.
    pub fn with_lease(mut self, lease: Duration) -> Result<Self, QueueError> {
        if lease < Duration::from_secs(1) {
            return Err(QueueError::Invalid {
                field: "lease",
                reason: format!(
                    "must be at least 1 s (got {lease:?}): it is the consumer's ack wait"
                ),
            });
        }
        self.inner_mut("lease")?.lease = lease;
        Ok(self)
    }

    /// Sets `max_deliver` on the consumer the adapter creates: the server
    /// stops delivering a message after `n` deliveries, and the adapter
    /// dead-letters it from the advisory. Default: none (the delivery
    /// policy decides).
    pub fn with_max_deliver(mut self, n: u32) -> Result<Self, QueueError> {
        if n == 0 {
            return Err(QueueError::Invalid {
                field: "max_deliver",
                reason: "must be at least 1".into(),
            });
        }
        self.inner_mut("max_deliver")?.max_deliver = i64::from(n);
        Ok(self)
    }

    /// The clock read for the times recorded with jobs and by workers.
    /// Default: the system clock through tokio. Leases and delays run on
    /// the server's clock.
    pub fn with_clock(mut self, clock: rebound::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The dead-letter stream: `<stream>_DEAD`.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DEAD", self.inner.stream)
    }

    fn check(&self, queue: &str) -> Result<(), QueueError> {
        if queue == self.inner.stream {
            return Ok(());
        }
        validate_queue_name(queue).map_err(|reason| QueueError::Invalid {
            field: "queue",
            reason,
        })?;
        Err(QueueError::Invalid {
            field: "queue",
            reason: format!(
                "this NATS queue serves the stream {:?}, not {queue:?}; connect one NatsQueue per stream",
                self.inner.stream
            ),
        })
    }

    /// Creates (or finds) the stream, consumer, bucket, dead-letter and
    /// advisory streams once.
    async fn ready(&self) -> Result<&Ready, QueueError> {
        self.inner
            .ready
            .get_or_try_init(|| async {
                let i = &self.inner;
                let js = &i.js;
                let mut main = js
                    .get_or_create_stream(stream::Config {
                        name: i.stream.clone(),
                        subjects: vec![i.subject.clone()],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the stream")(&e))?;
                // Publish where an existing stream listens.
                let subject = main
                    .info()
                    .await
                    .map_err(|e| setup("reading the stream info")(&e))?
                    .config
                    .subjects
                    .first()
                    .cloned()
                    .unwrap_or_else(|| i.subject.clone());
                let consumer = main
                    .get_or_create_consumer(
                        &i.consumer_name,
                        consumer::pull::Config {
                            durable_name: Some(i.consumer_name.clone()),
                            ack_policy: consumer::AckPolicy::Explicit,
                            ack_wait: i.lease,
                            max_deliver: i.max_deliver,
                            max_ack_pending: -1,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| setup("creating the durable consumer")(&e))?;
                // A key-value stream: one message per subject, the last.
                let records = js
                    .get_or_create_stream(stream::Config {
                        name: format!("{}_REBOUND", i.stream),
                        subjects: vec![format!("{}_REBOUND.>", i.stream)],
                        max_messages_per_subject: 1,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the record stream")(&e))?;
                let records = Records {
                    js: js.clone(),
                    stream: records,
                    prefix: format!("{}_REBOUND", i.stream),
                };
                let dead = js
                    .get_or_create_stream(stream::Config {
                        name: self.dead_letter_stream(),
                        subjects: vec![self.dead_letter_stream()],
                        allow_direct: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the dead-letter stream")(&e))?;
                let adv = js
                    .get_or_create_stream(stream::Config {
                        name: format!("{}_ADVISORIES", i.stream),
                        subjects: vec![format!(
                            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                            i.stream, i.consumer_name
                        )],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup("creating the advisory stream")(&e))?;
                let advisories = adv
                    .get_or_create_consumer(
                        "rebound",
                        consumer::pull::Config {
                            durable_name: Some("rebound".into()),
                            ack_policy: consumer::AckPolicy::Explicit,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| setup("creating the advisory consumer")(&e))?;
                Ok(Ready {
                    subject,
                    consumer,
                    advisories,
                    records,
                    dead,
                })
            })
            .await
    }
}

/// The records of jobs that failed or were handed back, by stream
/// sequence: a stream keeping the last message per subject
/// `<stream>_REBOUND.<sequence>` (what a JetStream key-value bucket is).
struct Records {
    js: jetstream::Context,
    stream: stream::Stream,
    prefix: String,
}

impl Records {
    fn subject(&self, sequence: u64) -> String {
        format!("{}.{sequence}", self.prefix)
    }

    async fn get(&self, sequence: u64) -> Result<Option<Vec<u8>>, QueueError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.subject(sequence))
            .await
        {
            Ok(m) => Ok(Some(m.payload.to_vec())),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put(&self, sequence: u64, envelope: String) -> Result<(), QueueError> {
        let ack = self
            .js
            .publish(self.subject(sequence), envelope.into())
            .await
            .map_err(unavailable)?;
        tokio::time::timeout(OP_TIMEOUT, ack)
            .await
            .map_err(|_| unavailable("no publish ack from JetStream in 5 s"))?
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, sequence: u64) {
        if let Err(e) = self.stream.purge().filter(self.subject(sequence)).await {
            tracing::debug!("cannot delete the record of message {sequence}: {e}");
        }
    }
}

/// The envelope a message carries in its headers, or a fresh one.
fn envelope_of(
    headers: Option<&HeaderMap>,
    sequence: u64,
    stream: &str,
    published: Timestamp,
) -> Result<Envelope, QueueError> {
    let id = JobId(sequence);
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    if let Some(e) = header(ENVELOPE_HEADER) {
        return Envelope::decode(e.as_bytes(), id);
    }
    let due = header(DUE_HEADER)
        .and_then(|d| d.parse::<u64>().ok())
        .map(Timestamp::from_millis)
        .unwrap_or(published);
    Ok(Envelope::fresh(id, stream, due))
}

/// A server time (nanoseconds since the epoch) as a timestamp.
fn system_time(unix_nanos: i128) -> Timestamp {
    Timestamp::from_millis(u64::try_from(unix_nanos / 1_000_000).unwrap_or(0))
}

impl NatsQueue {
    /// Sends an ack of `kind` to `reply` and waits for the server's answer.
    async fn ack(&self, reply: &async_nats::Subject, kind: AckKind) -> Result<(), QueueError> {
        let client = self.inner.js.client();
        tokio::time::timeout(OP_TIMEOUT, client.request(reply.clone(), kind.into()))
            .await
            .map_err(|_| unavailable("no answer from the NATS server to an ack in 5 s"))?
            .map_err(unavailable)?;
        Ok(())
    }

    /// Publishes `rec` (payload and envelope) to `subject`, acknowledged
    /// by its stream; returns the sequence.
    async fn publish(
        &self,
        subject: String,
        rec: &JobRecord,
        extra: Option<(&str, String)>,
    ) -> Result<u64, QueueError> {
        let mut headers = HeaderMap::new();
        headers.insert(ENVELOPE_HEADER, Envelope::of(rec).encode().as_str());
        if let Some((k, v)) = extra {
            headers.insert(k, v.as_str());
        }
        self.publish_raw(subject, headers, rec.payload.clone())
            .await
    }

    async fn publish_raw(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<u64, QueueError> {
        let ack = self
            .inner
            .js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(unavailable)?;
        let ack = tokio::time::timeout(OP_TIMEOUT, ack)
            .await
            .map_err(|_| unavailable("no publish ack from JetStream in 5 s"))?
            .map_err(unavailable)?;
        Ok(ack.sequence)
    }

    /// Every message of the dead-letter stream: (sequence, record).
    async fn dead_entries(&self) -> Result<Vec<(u64, JobRecord)>, QueueError> {
        let ready = self.ready().await?;
        let mut dead = ready.dead.clone();
        let state = dead.info().await.map_err(unavailable)?.state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            let msg = match dead.get_raw_message(seq).await {
                Ok(m) => m,
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
                {
                    continue
                }
                Err(e) => return Err(unavailable(e)),
            };
            let env = envelope_of(
                Some(&msg.headers),
                seq,
                &self.inner.stream,
                system_time(msg.time.unix_timestamp_nanos()),
            )?;
            out.push((seq, env.record(msg.payload.to_vec(), JobStatus::Dead)));
        }
        Ok(out)
    }

    /// Dead-letters the messages named by max-deliveries advisories.
    async fn drain_advisories(&self, now: Timestamp, max: usize) -> Result<usize, QueueError> {
        #[derive(serde::Deserialize)]
        struct Advisory {
            stream_seq: u64,
            deliveries: u32,
        }
        let ready = self.ready().await?;
        let mut batch = ready
            .advisories
            .fetch()
            .max_messages(max.max(1))
            .messages()
            .await
            .map_err(unavailable)?;
        let mut done = 0;
        while let Ok(Some(msg)) = tokio::time::timeout(FETCH_STALL, batch.next()).await {
            let msg = msg.map_err(unavailable)?;
            let Ok(adv) = serde_json::from_slice::<Advisory>(&msg.payload) else {
                tracing::warn!(stream = %self.inner.stream, "ignoring an unreadable max-deliveries advisory");
                msg.ack().await.map_err(unavailable)?;
                continue;
            };
            let main = self
                .inner
                .js
                .get_stream(&self.inner.stream)
                .await
                .map_err(unavailable)?;
            match main.get_raw_message(adv.stream_seq).await {
                Ok(m) => {
                    let stored = ready.records.get(adv.stream_seq).await?;
                    let env = match stored {
                        Some(b) => Envelope::decode(&b, JobId(adv.stream_seq))?,
                        None => envelope_of(
                            Some(&m.headers),
                            adv.stream_seq,
                            &self.inner.stream,
                            system_time(m.time.unix_timestamp_nanos()),
                        )?,
                    };
                    let (_, mut rec) = broker::claim(
                        &env,
                        m.payload.to_vec(),
                        adv.deliveries + 1,
                        now,
                        Duration::ZERO,
                        "",
                    );
                    // The broker's last delivery was not a claim of ours:
                    // drop the record claim() opened for it.
                    rec.history.pop();
                    rec.state.deliveries = rec.state.deliveries.saturating_sub(1);
                    let reason = if rec.state.failures > 0 {
                        DeadLetterReason::Exhausted
                    } else {
                        DeadLetterReason::Poison
                    };
                    if let Some(last) = rec.history.last_mut() {
                        last.error.get_or_insert_with(|| format!(
                            "the consumer's max_deliver limit ({} deliveries) stopped the message before the delivery policy decided",
                            adv.deliveries
                        ));
                    }
                    rec.status = JobStatus::Dead;
                    rec.reason = Some(reason);
                    rec.dead_at = Some(now);
                    self.publish(self.dead_letter_stream(), &rec, None).await?;
                    ready.records.delete(adv.stream_seq).await;
                    crate::metrics::JobMetrics::new(&self.inner.stream).dead_lettered(reason);
                    tracing::warn!(stream = %self.inner.stream, job_id = adv.stream_seq, reason = reason.as_str(), "dead-lettered after the consumer's max_deliver limit");
                    done += 1;
                }
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(unavailable(e)),
            }
            msg.ack().await.map_err(unavailable)?;
        }
        Ok(done)
    }
}

#[async_trait]
impl Queue for NatsQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }

    fn fixed_lease(&self) -> Option<Duration> {
        Some(self.inner.lease)
    }

    async fn enqueue_at(&self, job: NewJob, now: Timestamp) -> Result<JobId, QueueError> {
        self.check(&job.queue)?;
        let ready = self.ready().await?;
        let due = job.due_at(now);
        let mut headers = HeaderMap::new();
        if due > now {
            headers.insert(DUE_HEADER, due.as_millis().to_string().as_str());
        }
        let seq = self
            .publish_raw(ready.subject.clone(), headers, job.payload)
            .await?;
        Ok(JobId(seq))
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, QueueError> {
        self.check(req.queue)?;
        let ready = self.ready().await?;
        let mut batch = ready
            .consumer
            .fetch()
            .max_messages(req.max.max(1))
            .messages()
            .await
            .map_err(unavailable)?;
        let mut jobs = Vec::new();
        while let Ok(Some(msg)) = tokio::time::timeout(FETCH_STALL, batch.next()).await {
            let msg = msg.map_err(unavailable)?;
            let (sequence, delivered, published) = {
                let info = msg.info().map_err(backend_err)?;
                (
                    info.stream_sequence,
                    u32::try_from(info.delivered).unwrap_or(u32::MAX),
                    system_time(info.published.unix_timestamp_nanos()),
                )
            };
            let reply = msg
                .reply
                .clone()
                .ok_or_else(|| backend_err("a JetStream message without a reply subject"))?;
            let mut recorded = false;
            let env = if delivered > 1 {
                match ready.records.get(sequence).await? {
                    Some(b) => {
                        recorded = true;
                        Envelope::decode(&b, JobId(sequence))?
                    }
                    None => envelope_of(
                        msg.headers.as_ref(),
                        sequence,
                        &self.inner.stream,
                        published,
                    )?,
                }
            } else {
                envelope_of(
                    msg.headers.as_ref(),
                    sequence,
                    &self.inner.stream,
                    published,
                )?
            };
            if env.run_at > req.now && env.state.deliveries == 0 && env.history.is_empty() {
                // Enqueued for later: not a run. Account for this delivery
                // and come back when it is due.
                let mut later = env.clone();
                later.seen = delivered;
                ready.records.put(sequence, later.encode()).await?;
                self.ack(
                    &reply,
                    AckKind::Nak(Some(env.run_at.saturating_since(req.now))),
                )
                .await?;
                continue;
            }
            let (job, rec) = broker::claim(
                &env,
                msg.payload.to_vec(),
                delivered,
                req.now,
                req.lease,
                req.worker,
            );
            self.inner.in_flight.insert(
                &job.lease,
                rec,
                Delivery {
                    reply,
                    sequence,
                    delivered,
                    recorded,
                },
            );
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
        let d = self
            .inner
            .in_flight
            .with(lease, Some(now), |h| h.handle.clone())?;
        self.ack(&d.reply, AckKind::Progress).await?;
        // The server restarted its ack wait: the lease now ends one ack
        // wait from now, whatever the worker asked.
        let until = now.saturating_add(lease_for.min(self.inner.lease));
        self.inner
            .in_flight
            .with(lease, Some(now), |h| h.expires_at = until)?;
        Ok(until)
    }

    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let ready = self.ready().await?;
        let mut held = self.inner.in_flight.take(lease, Some(now))?;
        let d = held.handle.clone();
        let delay = match &settlement {
            Settlement::Retry { run_at, .. } => Some(run_at.saturating_since(now)),
            _ => None,
        };
        let kind = match &settlement {
            Settlement::Ack => "ack",
            Settlement::Retry { .. } | Settlement::HandBack { .. } => "nak",
            Settlement::DeadLetter { .. } => "dead",
        };
        let before = held.record.clone();
        apply::settle(&mut held.record, settlement, now);
        let r: Result<(), QueueError> = async {
            match kind {
                "ack" => {
                    self.ack(&d.reply, AckKind::Ack).await?;
                    if d.recorded {
                        ready.records.delete(d.sequence).await;
                    }
                }
                "nak" => {
                    let mut env = Envelope::of(&held.record);
                    env.seen = d.delivered;
                    ready.records.put(d.sequence, env.encode()).await?;
                    self.ack(&d.reply, AckKind::Nak(delay.filter(|d| !d.is_zero())))
                        .await?;
                }
                _ => {
                    self.publish(self.dead_letter_stream(), &held.record, None)
                        .await?;
                    self.ack(&d.reply, AckKind::Term).await?;
                    if d.recorded {
                        ready.records.delete(d.sequence).await;
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            if e.is_unavailable() {
                held.record = before;
                self.inner.in_flight.put_back(held, lease.id);
            }
            return Err(e);
        }
        Ok(())
    }

    async fn rescue(&self, now: Timestamp, max: usize) -> Result<usize, QueueError> {
        // The server redelivers after the ack wait by itself; here, this
        // process forgets the deliveries whose lease ended, and
        // dead-letters what the consumer's max_deliver stopped.
        let forgotten = self.inner.in_flight.expired(now, max).len();
        Ok(forgotten + self.drain_advisories(now, max).await?)
    }

    async fn counts(&self, queue: &str, _now: Timestamp) -> Result<QueueCounts, QueueError> {
        self.check(queue)?;
        let ready = self.ready().await?;
        let mut consumer = ready.consumer.clone();
        let info = consumer.info().await.map_err(unavailable)?;
        let (due, running) = (info.num_pending, info.num_ack_pending as u64);
        Ok(QueueCounts {
            due,
            scheduled: 0,
            running,
            dead: self.dead_letter_depth(None).await?,
        })
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        if let Some(r) = self.inner.in_flight.record(id) {
            return Ok(Some(r));
        }
        Ok(self
            .dead_entries()
            .await?
            .into_iter()
            .find(|(_, r)| r.id == id)
            .map(|(_, r)| r))
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let dead = self.dead_entries().await?;
        Ok(filter.page(dead.into_iter().map(|(_, r)| r), after, limit))
    }

    async fn redrive(&self, ids: &[JobId], now: Timestamp) -> Result<usize, QueueError> {
        let ready = self.ready().await?;
        let mut moved = 0;
        for (seq, mut rec) in self.dead_entries().await? {
            if !ids.contains(&rec.id) {
                continue;
            }
            apply::redrive(&mut rec, now);
            self.publish(ready.subject.clone(), &rec, None).await?;
            if ready.dead.delete_message(seq).await.map_err(unavailable)? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    async fn purge(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let ready = self.ready().await?;
        let mut purged = 0;
        for (seq, rec) in self.dead_entries().await? {
            if ids.contains(&rec.id) && ready.dead.delete_message(seq).await.map_err(unavailable)? {
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn dead_letter_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        if queue.is_some_and(|q| q != self.inner.stream) {
            return Ok(0);
        }
        let ready = self.ready().await?;
        let mut dead = ready.dead.clone();
        Ok(dead.info().await.map_err(unavailable)?.state.messages)
    }
}
