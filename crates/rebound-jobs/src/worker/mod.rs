//! The worker: a thin tokio driver over a [`Queue`] and the
//! [`DeliveryPolicy`]. It claims jobs up to its concurrency limit, asks the
//! policy whether to run each, runs the handler in its own task (so a panic
//! is caught and counted as a failure) under a per-job timeout while
//! renewing the lease, tells the policy how the run ended and settles the
//! answer with the queue under the lease's fencing token. It rescues
//! expired leases on the way.
//!
//! Graceful shutdown ([`WorkerHandle::shutdown`]): stop claiming, wait up
//! to [`shutdown_timeout`](WorkerBuilder::shutdown_timeout) for running
//! jobs, then cancel the rest and hand them back without counting an
//! attempt. (If the queue cannot be reached to hand a job back, it comes
//! back after its lease instead, as a delivery without an outcome.)
//!
//! When the queue is unreachable mid-run, the worker keeps the handler
//! running and keeps trying to renew; a settlement is retried with backoff
//! until the lease would have run out. Past that, the job is left to be
//! rescued and delivered again: at-least-once, nothing lost.
//!
//! # Defaults
//!
//! | setting | default | why |
//! |---|---|---|
//! | `concurrency` | 10 | jobs run at once by one worker; Sidekiq's default is 5 threads (10 before 7.0), River and Oban make you choose per queue |
//! | `lease` | 30 s, renewed every 10 s | SQS's default visibility timeout; renewed while the handler runs, so it bounds how long a crashed worker's job waits, not how long a job may run |
//! | `job_timeout` | 10 min | a run that hangs is cancelled and counted as a (transient) failure; River's default is 1 min, Sidekiq and Oban have none. Long enough for a sync against a slow partner API, short enough to free the slot |
//! | `poll_interval` | 1 s | River's default fetch poll interval; the embedded queue also wakes its workers on every enqueue |
//! | `shutdown_timeout` | 25 s | Sidekiq's default: fits within Kubernetes' 30 s termination grace period |
//! | `rescue_every` | 15 s | half a lease: a crashed worker's jobs are available again at most 45 s after the crash |

mod context;
mod handler;
#[cfg(feature = "idempotency")]
mod once;
mod run;
mod timer;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rebound::{Classifier, ConfigError, RandomSource};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use context::{JobContext, JobError, JobErrors};
pub use handler::MAX_ERROR_TEXT;
#[cfg(feature = "idempotency")]
pub use once::ONCE_SCOPE;

use crate::job::validate_queue_name;
use crate::metrics::JobMetrics;
use crate::policy::DeliveryPolicy;
use crate::queue::{ClaimRequest, Queue};
use crate::time::wall;
use handler::{into_job_error, ErasedHandler, FnHandler, Json, Raw};

const COMPONENT: &str = "worker";

/// The worker's settings (see the [module docs](self) for the defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) lease: Duration,
    pub(crate) renew_every: Duration,
    pub(crate) job_timeout: Option<Duration>,
    pub(crate) poll_interval: Duration,
    pub(crate) claim_batch: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) rescue_every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency: 10,
            lease: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
            job_timeout: Some(Duration::from_secs(600)),
            poll_interval: Duration::from_secs(1),
            claim_batch: 32,
            shutdown_timeout: Duration::from_secs(25),
            rescue_every: Duration::from_secs(15),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) queue_name: Arc<str>,
    pub(crate) handler: Arc<dyn ErasedHandler>,
    pub(crate) policy: DeliveryPolicy,
    pub(crate) config: Config,
    pub(crate) clock: rebound::Clock,
    pub(crate) random: RandomSource,
    pub(crate) worker_id: String,
    pub(crate) metrics: JobMetrics,
}

impl Inner {
    /// Reads the dead-letter depth into its gauge (best effort).
    pub(crate) async fn refresh_depth(&self) {
        match self.queue.dead_letter_depth(Some(&self.queue_name)).await {
            Ok(d) => self.metrics.depth(d),
            Err(e) => tracing::debug!("cannot read the dead-letter depth: {e}"),
        }
    }
}

/// Runs the jobs of one queue. Build with [`Worker::builder`], then
/// [`spawn`](Self::spawn) it or [`run`](Self::run) it until a signal.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rebound_jobs::{EmbeddedQueue, JobContext, JobError, NewJob, Queue, Worker};
///
/// let dir = tempfile::tempdir()?;
/// let queue = EmbeddedQueue::open(dir.path().join("jobs.redb"))?;
/// queue.enqueue(NewJob::json("emails", &"ada@example.com")?).await?;
///
/// let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
/// let worker = Worker::builder(queue.clone(), "emails")
///     .handler(move |_ctx: JobContext, to: String| {
///         let sent_tx = sent_tx.clone();
///         async move { sent_tx.send(to).map_err(JobError::permanent) }
///     })
///     .build()?
///     .spawn();
/// assert_eq!(sent.recv().await.as_deref(), Some("ada@example.com"));
/// worker.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.inner.queue_name)
            .field("worker_id", &self.inner.worker_id)
            .field("policy", &self.inner.policy)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Worker`]. Every setting's default is in the
/// [module docs](self).
pub struct WorkerBuilder {
    queue: Arc<dyn Queue>,
    name: String,
    handler: Option<Arc<dyn ErasedHandler>>,
    policy: DeliveryPolicy,
    config: Config,
    clock: Option<rebound::Clock>,
    random: RandomSource,
    worker_id: Option<String>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("queue", &self.name)
            .field("policy", &self.policy)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A builder for a worker running the jobs of queue `name` from `queue`.
    pub fn builder(queue: impl Queue, name: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            queue: Arc::new(queue),
            name: name.into(),
            handler: None,
            policy: DeliveryPolicy::default(),
            config: Config::default(),
            clock: None,
            random: RandomSource::entropy(),
            worker_id: None,
        }
    }

    /// This worker's id, as written into each delivery record.
    pub fn id(&self) -> &str {
        &self.inner.worker_id
    }

    /// Runs in a task of its own until [`WorkerHandle::shutdown`].
    pub fn spawn(self) -> WorkerHandle {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = rx.await;
        }));
        WorkerHandle {
            stop: Some(tx),
            task,
        }
    }

    /// Runs until `shutdown` completes, then shuts down gracefully (see the
    /// [module docs](self)).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let w = self.inner;
        let sem = Arc::new(Semaphore::new(w.config.concurrency));
        let (abort_tx, abort_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut next_rescue = w.clock.now();
        let notifier = w.queue.notifier();
        tokio::pin!(shutdown);
        tracing::info!(queue = &*w.queue_name, worker = %w.worker_id, "worker started");

        loop {
            while tasks.try_join_next().is_some() {}
            if w.clock.now() >= next_rescue {
                match w.queue.rescue(wall(&w.clock), 1000).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        queue = &*w.queue_name,
                        "rescued {n} jobs whose lease expired"
                    ),
                    Err(e) => tracing::warn!(queue = &*w.queue_name, "rescue failed: {e}"),
                }
                w.refresh_depth().await;
                next_rescue = w.clock.now() + w.config.rescue_every;
            }
            let notified = notifier.as_ref().map(|n| n.notified());
            tokio::pin!(notified);
            if let Some(n) = notified.as_mut().as_pin_mut() {
                n.enable();
            }
            let free = sem.available_permits();
            let want = free.min(w.config.claim_batch);
            let mut more = false;
            let mut failed = false;
            if want > 0 {
                let req = ClaimRequest {
                    queue: &w.queue_name,
                    now: wall(&w.clock),
                    lease: w.config.lease,
                    max: want,
                    worker: &w.worker_id,
                };
                match w.queue.claim(req).await {
                    Ok(jobs) => {
                        more = jobs.len() == want;
                        for job in jobs {
                            let permit = sem
                                .clone()
                                .try_acquire_owned()
                                .expect("claimed no more than the free permits");
                            let w = w.clone();
                            let (a, s) = (abort_rx.clone(), stop_rx.clone());
                            tasks.spawn(async move {
                                run::run_job(w, job, a, s).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => {
                        failed = true;
                        tracing::warn!(queue = &*w.queue_name, "claim failed: {e}");
                    }
                }
            }
            if more && sem.available_permits() > 0 {
                continue;
            }
            let poll = !failed && sem.available_permits() > 0;
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = timer::after(&w.clock, w.config.poll_interval) => {}
                Some(()) = async { match notified.as_mut().as_pin_mut() { Some(n) => { n.await; Some(()) } None => None } }, if poll => {}
            }
        }

        // Graceful shutdown: no more claims; let running jobs finish for a
        // while, then hand the rest back uncounted.
        let _ = stop_tx.send(true);
        let running = tasks.len();
        tracing::info!(queue = &*w.queue_name, running, "worker stopping");
        let deadline = w.clock.now().checked_add(w.config.shutdown_timeout);
        let mut handed_back = false;
        while !tasks.is_empty() {
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = timer::until(&w.clock, deadline) => {
                    handed_back = true;
                    break;
                }
            }
        }
        let interrupted = tasks.len();
        if handed_back {
            let _ = abort_tx.send(true);
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!(queue = &*w.queue_name, interrupted, "worker stopped");
        ShutdownReport {
            running_at_shutdown: running,
            handed_back: interrupted,
        }
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs running when the shutdown began.
    pub running_at_shutdown: usize,
    /// Of those, jobs still running when the wait ran out: cancelled and
    /// handed back without counting an attempt.
    pub handed_back: usize,
}

/// A running worker (from [`Worker::spawn`]).
#[derive(Debug)]
pub struct WorkerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<ShutdownReport>,
}

impl WorkerHandle {
    /// Shuts the worker down gracefully and waits for it.
    pub async fn shutdown(mut self) -> ShutdownReport {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Stops the worker at once, like a crash: running handlers are
    /// cancelled, no job is settled, and those jobs are delivered again
    /// after their lease ends (counted as deliveries without an outcome).
    pub fn abort(self) {
        self.task.abort();
    }
}

impl WorkerBuilder {
    /// The handler: receives the context and the payload decoded from JSON
    /// as `P`, returns `Ok(())` or an error convertible into a
    /// [`JobError`] (any `std::error::Error` is transient; use
    /// [`JobError::permanent`] and [`JobError::retry_after`] to say more).
    /// A payload that does not decode is dead-lettered as permanent.
    pub fn handler<F, Fut, P, E>(mut self, f: F) -> Self
    where
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        E: Into<JobError> + 'static,
    {
        self.handler = Some(Arc::new(FnHandler::<_, P, Json, _, JobError> {
            f: into_job_error(f),
            classifier: JobErrors,
            _p: PhantomData,
        }));
        self
    }

    /// A handler given the raw payload bytes.
    pub fn raw_handler<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(JobContext, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<JobError> + 'static,
    {
        self.handler = Some(Arc::new(FnHandler::<_, Vec<u8>, Raw, _, JobError> {
            f: into_job_error(f),
            classifier: JobErrors,
            _p: PhantomData,
        }));
        self
    }

    /// A JSON handler with its own error type, classified by a rebound
    /// [`Classifier`] (transient, permanent, or a requested delay; the
    /// classifier also sees timeouts as `Outcome::Timeout`).
    pub fn handler_classified<F, Fut, P, E, C>(mut self, f: F, classifier: C) -> Self
    where
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        C: Classifier<(), E> + Clone + Send + Sync + 'static,
    {
        self.handler = Some(Arc::new(FnHandler::<_, P, Json, _, E> {
            f,
            classifier,
            _p: PhantomData,
        }));
        self
    }

    /// The delivery policy. Default [`DeliveryPolicy::default`].
    pub fn policy(mut self, policy: DeliveryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Jobs run at once (at least 1). Default 10.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    /// The lease taken at claim, renewed every third of it while the
    /// handler runs. Default 30 s (renewed every 10 s). A queue whose
    /// broker fixes the lease ([`Queue::fixed_lease`], a JetStream
    /// consumer's ack wait) overrides it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self.config.renew_every = lease / 3;
        self
    }

    /// The per-job timeout, `None` for none. Default 10 min.
    pub fn job_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.job_timeout = timeout;
        self
    }

    /// How often an idle worker looks for due jobs. Default 1 s.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.config.poll_interval = every;
        self
    }

    /// At most this many jobs per claim (at least 1). Default 32.
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.config.claim_batch = n;
        self
    }

    /// How long a graceful shutdown waits for running jobs before handing
    /// them back. Default 25 s.
    pub fn shutdown_timeout(mut self, wait: Duration) -> Self {
        self.config.shutdown_timeout = wait;
        self
    }

    /// How often the worker makes expired leases available again. Default
    /// 15 s.
    pub fn rescue_every(mut self, every: Duration) -> Self {
        self.config.rescue_every = every;
        self
    }

    /// The clock. Default: the queue's clock.
    pub fn clock(mut self, clock: rebound::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Where jitter draws from. Default fresh entropy; seed it in tests.
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// The id written into each delivery record. Default
    /// `<hostname>/<pid>/<queue>`.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Checks every setting and registers the metric descriptions.
    pub fn build(self) -> Result<Worker, ConfigError> {
        validate_queue_name(&self.name).map_err(|m| ConfigError::new(COMPONENT, "queue", m))?;
        let handler = self.handler.ok_or_else(|| {
            ConfigError::new(
                COMPONENT,
                "handler",
                "no handler: call .handler(|ctx, payload| async { .. })",
            )
        })?;
        let mut c = self.config;
        if let Some(lease) = self.queue.fixed_lease() {
            c.lease = lease;
            c.renew_every = lease / 3;
        }
        if c.concurrency == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "concurrency",
                "must be at least 1",
            ));
        }
        if c.claim_batch == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "claim_batch",
                "must be at least 1",
            ));
        }
        if c.lease < Duration::from_millis(30) {
            return Err(ConfigError::new(
                COMPONENT,
                "lease",
                format!(
                    "must be at least 30 ms (got {:?}); leases are kept in milliseconds",
                    c.lease
                ),
            ));
        }
        if c.job_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                COMPONENT,
                "job_timeout",
                "must be longer than zero, or None for no timeout",
            ));
        }
        for (field, d) in [
            ("poll_interval", c.poll_interval),
            ("rescue_every", c.rescue_every),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(
                    COMPONENT,
                    field,
                    "must be longer than zero",
                ));
            }
        }
        crate::metrics::describe();
        let clock = self.clock.unwrap_or_else(|| self.queue.clock().clone());
        let worker_id = self
            .worker_id
            .unwrap_or_else(|| format!("{}/{}/{}", hostname(), std::process::id(), self.name));
        Ok(Worker {
            inner: Arc::new(Inner {
                metrics: JobMetrics::new(&self.name),
                queue_name: Arc::from(self.name),
                queue: self.queue,
                handler,
                policy: self.policy,
                config: c,
                clock,
                random: self.random,
                worker_id,
            }),
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
