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
//!   ([`Queue::fixed_lease`](crate::Queue::fixed_lease)). After it the server redelivers on its own,
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
//! * **Lookups**: [`Queue::job`](crate::Queue::job) finds dead-lettered jobs and jobs running
//!   in this process. [`Queue::counts`](crate::Queue::counts) reports messages waiting for their
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

mod advisories;
mod claim;
mod dead;
mod records;
mod settle;
mod setup;
mod wire;

use records::Records;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::job::validate_queue_name;
use crate::queue::broker::InFlight;
use crate::queue::QueueError;

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
}

crate::queue::broker::impl_queue_for_broker!(NatsQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }

    fn fixed_lease(&self) -> Option<Duration> {
        Some(self.inner.lease)
    }
});
