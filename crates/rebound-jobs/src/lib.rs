//! # rebound-jobs
//!
//! Background work that retries for hours, catches poison messages and
//! dead-letters: a worker syncing invoices with a partner API that is down
//! backs off between attempts over hours, never loses a job (at-least-once
//! delivery), isolates a job that keeps crashing its worker, and sends what
//! cannot succeed to a dead-letter queue you can list, redrive and purge.
//!
//! ```
//! use rebound_jobs::{EmbeddedQueue, JobContext, JobError, NewJob, Queue, Worker};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct SyncInvoice {
//!     invoice: u64,
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("jobs.redb");
//! // The embedded queue: one file, no server.
//! let queue = EmbeddedQueue::open(&path)?;
//! queue.enqueue(NewJob::json("invoices", &SyncInvoice { invoice: 42 })?).await?;
//!
//! let (synced_tx, mut synced) = tokio::sync::mpsc::unbounded_channel();
//! let worker = Worker::builder(queue.clone(), "invoices")
//!     .handler(move |ctx: JobContext, job: SyncInvoice| {
//!         let synced_tx = synced_tx.clone();
//!         async move {
//!             // Push the invoice to the partner, with ctx.idempotency_key()
//!             // as its Idempotency-Key. An error here is retried with
//!             // backoff for up to 25 attempts; JobError::permanent(e)
//!             // dead-letters at once.
//!             synced_tx.send((job.invoice, ctx.attempt())).ok();
//!             Ok::<_, JobError>(())
//!         }
//!     })
//!     .build()?
//!     .spawn();
//! assert_eq!(synced.recv().await, Some((42, 1)));
//! worker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## What is here
//!
//! | piece | what it does |
//! |---|---|
//! | [`DeliveryPolicy`] | sans-IO: on claim, run or dead-letter as poison; on outcome, ack, retry after a delay, hand back, or dead-letter (exhausted, expired, permanent, poison). Defaults for work that may wait hours to days, each justified in [`policy`] |
//! | [`Worker`] | the tokio driver: concurrency limit, lease renewal, per-job timeout, panics caught as failures, graceful shutdown that hands jobs back uncounted |
//! | [`Queue`] | where jobs wait, are leased and settled; every implementation passes the [conformance suite](crate::queue) |
//! | [`EmbeddedQueue`] | one redb file (the default; feature `embedded`) |
//! | `PostgresQueue` | `FOR UPDATE SKIP LOCKED` claims, enqueue inside your transaction, a lease rescuer (feature `postgres`) |
//! | `RedisStreamQueue` | a Redis stream through a consumer group: `XAUTOCLAIM` takeover, delivery counts from the pending entries list, a sorted-set schedule, a dead-letter stream (feature `redis`) |
//! | `NatsQueue` | a JetStream stream through a durable pull consumer: `Nak` with delay, in-progress acks, a dead-letter stream, the max-deliveries advisory (feature `nats`) |
//! | `AmqpQueue` | a RabbitMQ quorum queue: `x-delivery-count`, TTL retry queues, a dead-letter queue (feature `amqp`) |
//! | [`dlq`] | list and filter, show, redrive (rate-limited, fresh budget), purge, depth — also as `rebound dlq` |
//! | [`metrics`] | `dead_letter_messages_total{queue,reason}`, `retry_attempts_total`, processed, failed, dead-letter depth |
//! | `conformance` | the queue conformance suite, for adapters (feature `conformance`) |
//! | `JobContext::once` | a side effect run once per job however often it is delivered, on rebound-idempotency's stores (feature `idempotency`) |
//!
//! ## Guarantees
//!
//! * **At-least-once.** A job is deleted only when its handler succeeded and
//!   the ack was stored. A worker that dies, is killed or loses its database
//!   loses nothing: its lease runs out and the job is delivered again. Give
//!   side effects the job's [idempotency key](JobContext::idempotency_key)
//!   so a second delivery has no second effect — or run them through
//!   `JobContext::once` (below).
//! * **Exactly-once effects** (feature `idempotency`). `ctx.once(&once,
//!   "step", effect)` runs `effect` through rebound-idempotency's `Once`,
//!   keyed by the job and the step: a job delivered twice (its worker
//!   killed after the effect, a late or lost ack, a redrive) has its effect
//!   once, and the later delivery gets the stored value back.
//! * **Deliveries are counted at claim**, atomically with the claim, so a
//!   job that kills its worker still counts. Deliveries that never reported
//!   an outcome are what makes a job **poison**: after three (by default) it
//!   is dead-lettered without running again.
//! * **Fencing.** Each claim takes a new token; a worker whose lease expired
//!   and was taken over can neither renew nor settle the job
//!   ([`QueueError::LeaseLost`]).
//! * **A graceful shutdown** stops claiming, waits for running jobs, then
//!   cancels the rest and hands them back without using an attempt.
//!
//! ## Design
//!
//! The policy decides and the worker acts: [`DeliveryPolicy`] is a plain
//! state machine over what a queue persists per job ([`DeliveryState`]),
//! the time and a random generator. It reuses rebound's [`Backoff`](rebound::Backoff)
//! (its state kept with the job, so decorrelated jitter continues across
//! processes) and [`Decision`](rebound::Decision) (including a delay the
//! error asks for). The worker asks it, does the I/O, tells it. Broker
//! adapters and the simulator drive the same policy.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod dlq;
pub mod job;
pub mod metrics;
pub mod policy;
pub mod queue;
pub mod time;
pub mod worker;

pub use dlq::{DeadLetterFilter, RedriveOptions};
pub use job::{
    ClaimedJob, DeliveryRecord, JobId, JobRecord, JobStatus, Lease, NewJob, QueueCounts, RunReport,
    RunResult, Settlement,
};
pub use policy::{
    ClaimAction, DeadLetterReason, DeliveryPolicy, DeliveryPolicyBuilder, DeliveryState,
    Disposition, RunEnd,
};
#[cfg(feature = "amqp")]
pub use queue::amqp::AmqpQueue;
#[cfg(feature = "embedded")]
pub use queue::embedded::EmbeddedQueue;
#[cfg(feature = "nats")]
pub use queue::nats::NatsQueue;
#[cfg(feature = "postgres")]
pub use queue::postgres::PostgresQueue;
#[cfg(feature = "redis")]
pub use queue::redis::RedisStreamQueue;
pub use queue::{ClaimRequest, Queue, QueueError};
/// rebound-idempotency, whose [`Once`](rebound_idempotency::once::Once)
/// [`JobContext::once`] runs effects through (feature `idempotency`).
#[cfg(feature = "idempotency")]
pub use rebound_idempotency;
pub use time::Timestamp;
#[cfg(feature = "idempotency")]
pub use worker::ONCE_SCOPE;
pub use worker::{
    JobContext, JobError, JobErrors, ShutdownReport, Worker, WorkerBuilder, WorkerHandle,
};
