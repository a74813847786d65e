//! # rebound-jobs
//!
//! Background work that retries for hours, catches poison messages and
//! dead-letters.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

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
    ClaimedJob, DeliveryRecord, JobId, JobRecord, JobStatus, Lease, NewJob, QueueCounts,
    RunReport, RunResult, Settlement,
};
pub use policy::{
    ClaimAction, DeadLetterReason, DeliveryPolicy, DeliveryPolicyBuilder, DeliveryState,
    Disposition, RunEnd,
};
#[cfg(feature = "embedded")]
pub use queue::embedded::EmbeddedQueue;
#[cfg(feature = "postgres")]
pub use queue::postgres::PostgresQueue;
pub use queue::{ClaimRequest, Queue, QueueError};
pub use time::Timestamp;
pub use worker::{
    JobContext, JobError, JobErrors, ShutdownReport, Worker, WorkerBuilder, WorkerHandle,
};
