//! The PostgreSQL queue: one table, claims with `FOR UPDATE SKIP LOCKED`.
//!
//! * **claim** is one statement: it picks due jobs with `FOR UPDATE SKIP
//!   LOCKED` (so concurrent workers never wait on, or take, each other's
//!   rows) and, in the same `UPDATE`, counts the delivery, takes the next
//!   fencing token, sets the lease and appends the delivery record.
//! * **enqueue inside your transaction** ([`PostgresQueue::enqueue_in`]):
//!   the job is committed with your business rows or not at all — the
//!   transactional outbox, without a relay.
//! * **rescue** makes running jobs whose lease ended available again, in
//!   batches, `SKIP LOCKED`; every worker runs it on a timer.
//! * **renew** and **settle** are `UPDATE … WHERE id = $1 AND fence = $2 AND
//!   status = running`: a worker whose lease expired and was taken over
//!   changes nothing and gets [`QueueError::LeaseLost`].
//!
//! Times are milliseconds from the caller's clock in `BIGINT` columns (so
//! tests move time by hand). Workers on several machines should keep their
//! clocks synchronised to well within a lease: a fast clock rescues leases
//! early, which fencing makes safe but wasteful.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::types::Json;
use tokio_postgres::{GenericClient, NoTls, Row};

use crate::dlq::DeadLetterFilter;
use crate::job::{
    validate_queue_name, ClaimedJob, DeliveryRecord, JobId, JobRecord, JobStatus, Lease, NewJob,
    QueueCounts, Settlement,
};
use crate::policy::{DeadLetterReason, DeliveryState};
use crate::queue::{ClaimRequest, Queue, QueueError};
use crate::time::{duration_millis, wall, Timestamp};

mod sql;

use sql::Sql;

/// The default table.
pub const DEFAULT_TABLE: &str = "rebound_jobs";

const BACKEND: &str = "postgres";

/// Jobs in a PostgreSQL table (created by [`migrate`](Self::migrate)).
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_jobs::QueueError> {
/// use rebound_jobs::{NewJob, PostgresQueue, Queue};
///
/// let queue = PostgresQueue::connect("postgres://postgres@127.0.0.1:5432/test")?
///     .with_table("billing.jobs")?;
/// queue.migrate().await?;
/// queue.enqueue(NewJob::new("invoices", r#"{"invoice":42}"#)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresQueue {
    pool: Pool,
    table: Arc<str>,
    sql: Arc<Sql>,
    clock: rebound::Clock,
    op_timeout: Duration,
}

impl std::fmt::Debug for PostgresQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresQueue")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn pg_err(e: tokio_postgres::Error) -> QueueError {
    if e.as_db_error().is_some() {
        QueueError::Backend {
            backend: BACKEND,
            source: Box::new(e),
        }
    } else {
        QueueError::Unavailable {
            backend: BACKEND,
            source: Box::new(e),
        }
    }
}

fn pool_err(e: PoolError) -> QueueError {
    match e {
        PoolError::Backend(e) => pg_err(e),
        other => QueueError::Unavailable {
            backend: BACKEND,
            source: Box::new(other),
        },
    }
}

/// Checks a table name: `name` or `schema.name`, each part 1 to 50 of
/// `a-z 0-9 _`, not starting with a digit.
fn validate_table(name: &str) -> Result<(), QueueError> {
    let bad = |reason: String| QueueError::Invalid {
        field: "table",
        reason,
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 {
        return Err(bad(format!(
            "{name:?} has more than one `.`; use `table` or `schema.table`"
        )));
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.len() <= 50
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !p.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(bad(format!(
                "{name:?}: each part must be 1 to 50 of a-z, 0-9, _ and not start with a digit"
            )));
        }
    }
    Ok(())
}

fn check_queue(name: &str) -> Result<(), QueueError> {
    validate_queue_name(name).map_err(|reason| QueueError::Invalid {
        field: "queue",
        reason,
    })
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn u32_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn corrupt(id: i64, reason: impl std::fmt::Display) -> QueueError {
    QueueError::Corrupt {
        id: JobId(id as u64),
        reason: reason.to_string(),
    }
}

fn record_of(row: &Row) -> Result<JobRecord, QueueError> {
    let id: i64 = row.get(0);
    let status: i16 = row.get(2);
    let status =
        JobStatus::from_code(status).ok_or_else(|| corrupt(id, format!("status {status}")))?;
    let reason: Option<i16> = row.get(13);
    let reason = match reason {
        Some(c) => {
            Some(DeadLetterReason::from_code(c).ok_or_else(|| corrupt(id, format!("reason {c}")))?)
        }
        None => None,
    };
    let Json(history): Json<Vec<DeliveryRecord>> = row
        .try_get(16)
        .map_err(|e| corrupt(id, format!("history: {e}")))?;
    Ok(JobRecord {
        id: JobId(id as u64),
        queue: row.get(1),
        status,
        payload: row.get(3),
        run_at: Timestamp::from_i64(row.get(4)),
        state: DeliveryState {
            deliveries: u32_of(row.get(6)),
            failures: u32_of(row.get(7)),
            interrupts: u32_of(row.get(8)),
            enqueued_at: Timestamp::from_i64(row.get(5)),
            backoff_retries: u32_of(row.get(9)),
            backoff_previous_nanos: row.get::<_, Option<i64>>(10).map(|n| n.max(0) as u64),
        },
        fence: row.get::<_, i64>(11) as u64,
        lease_expires_at: row.get::<_, Option<i64>>(12).map(Timestamp::from_i64),
        reason,
        dead_at: row.get::<_, Option<i64>>(14).map(Timestamp::from_i64),
        redrives: u32_of(row.get(15)),
        history,
    })
}

impl PostgresQueue {
    /// A queue in the database at `url` (e.g.
    /// `postgres://postgres@127.0.0.1:5432/test`), pooled (16 connections,
    /// 2 s to get or open one). Connects lazily: a database that is down
    /// shows up as [`QueueError::Unavailable`] on the first operation.
    pub fn connect(url: &str) -> Result<Self, QueueError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| QueueError::Invalid {
            field: "url",
            reason: format!("not a PostgreSQL URL: {e}"),
        })?;
        config.connect_timeout(Duration::from_secs(2));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(2)))
            .create_timeout(Some(Duration::from_secs(2)))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| QueueError::Invalid {
                field: "pool",
                reason: e.to_string(),
            })?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing deadpool pool (share your application's).
    pub fn from_pool(pool: Pool) -> Self {
        PostgresQueue {
            pool,
            table: Arc::from(DEFAULT_TABLE),
            sql: Arc::new(Sql::new(DEFAULT_TABLE)),
            clock: rebound::Clock::default(),
            op_timeout: Duration::from_secs(5),
        }
    }

    /// Keeps jobs in `table` (`name` or `schema.name`). Default
    /// `rebound_jobs`.
    pub fn with_table(mut self, table: &str) -> Result<Self, QueueError> {
        validate_table(table)?;
        self.table = Arc::from(table);
        self.sql = Arc::new(Sql::new(table));
        Ok(self)
    }

    /// Reads time from `clock` (default: [`rebound::Clock::default`]).
    pub fn with_clock(mut self, clock: rebound::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Gives up on one statement after `timeout` (a connection that hangs
    /// reports [`QueueError::Unavailable`]). Default 5 s.
    pub fn with_op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates the table and its indexes if missing.
    pub async fn migrate(&self) -> Result<(), QueueError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .batch_execute(&self.sql.migrate)
            .await
            .map_err(pg_err)
    }

    /// Enqueues `job` on `client` — typically your own open
    /// [`Transaction`](tokio_postgres::Transaction), so the job commits or
    /// rolls back with your business rows (a transactional outbox).
    ///
    /// ```no_run
    /// # async fn f(queue: rebound_jobs::PostgresQueue) -> Result<(), Box<dyn std::error::Error>> {
    /// use rebound_jobs::NewJob;
    ///
    /// let mut client = queue.pool().get().await?;
    /// let tx = client.transaction().await?;
    /// tx.execute("UPDATE invoices SET state = 'issued' WHERE id = $1", &[&42i64]).await?;
    /// // A deadpool transaction derefs to tokio-postgres's: pass `&*tx`.
    /// queue.enqueue_in(&*tx, NewJob::new("invoices", r#"{"invoice":42}"#)).await?;
    /// tx.commit().await?; // the job exists only if the invoice was issued
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_in(
        &self,
        client: &impl GenericClient,
        job: NewJob,
    ) -> Result<JobId, QueueError> {
        check_queue(&job.queue)?;
        let now = wall(&self.clock);
        let due = job.due_at(now);
        let row = client
            .query_one(
                &self.sql.enqueue,
                &[&job.queue, &job.payload, &due.as_i64()],
            )
            .await
            .map_err(pg_err)?;
        Ok(JobId(row.get::<_, i64>(0) as u64))
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        match tokio::time::timeout(self.op_timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(QueueError::Unavailable {
                backend: BACKEND,
                source: format!("no answer within {:?}", self.op_timeout).into(),
            }),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, QueueError> {
        self.pool.get().await.map_err(pool_err)
    }
}

#[async_trait]
impl Queue for PostgresQueue {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> &rebound::Clock {
        &self.clock
    }

    async fn enqueue_at(&self, job: NewJob, now: Timestamp) -> Result<JobId, QueueError> {
        check_queue(&job.queue)?;
        let due = job.due_at(now);
        self.timed(async {
            let c = self.client().await?;
            let st = c.prepare_cached(&self.sql.enqueue).await.map_err(pg_err)?;
            let row = c
                .query_one(&st, &[&job.queue, &job.payload, &due.as_i64()])
                .await
                .map_err(pg_err)?;
            Ok(JobId(row.get::<_, i64>(0) as u64))
        })
        .await
    }

    async fn enqueue_many_at(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<JobId>, QueueError> {
        for job in &jobs {
            check_queue(&job.queue)?;
        }
        let due: Vec<i64> = jobs.iter().map(|j| j.due_at(now).as_i64()).collect();
        let (queues, payloads): (Vec<String>, Vec<Vec<u8>>) =
            jobs.into_iter().map(|j| (j.queue, j.payload)).unzip();
        self.timed(async {
            let c = self.client().await?;
            let st = c
                .prepare_cached(&self.sql.enqueue_many)
                .await
                .map_err(pg_err)?;
            let rows = c
                .query(&st, &[&queues, &payloads, &due])
                .await
                .map_err(pg_err)?;
            let mut ids: Vec<JobId> = rows
                .iter()
                .map(|r| JobId(r.get::<_, i64>(0) as u64))
                .collect();
            // Ids come from one sequence in insertion order.
            ids.sort();
            Ok(ids)
        })
        .await
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, QueueError> {
        check_queue(req.queue)?;
        if req.max == 0 {
            return Ok(Vec::new());
        }
        let lease_ms = i64_of(duration_millis(req.lease));
        self.timed(async {
            let c = self.client().await?;
            let st = c.prepare_cached(&self.sql.claim).await.map_err(pg_err)?;
            let rows = c
                .query(
                    &st,
                    &[
                        &req.queue,
                        &req.now.as_i64(),
                        &i64_of(req.max as u64),
                        &lease_ms,
                        &req.worker,
                    ],
                )
                .await
                .map_err(pg_err)?;
            let mut out: Vec<(i64, ClaimedJob)> = rows
                .iter()
                .map(|r| {
                    let id: i64 = r.get(0);
                    let job = ClaimedJob {
                        lease: Lease {
                            id: JobId(id as u64),
                            token: r.get::<_, i64>(9) as u64,
                            expires_at: Timestamp::from_i64(
                                r.get::<_, Option<i64>>(10).unwrap_or(0),
                            ),
                        },
                        queue: r.get(1),
                        payload: r.get(2),
                        state: DeliveryState {
                            deliveries: u32_of(r.get(3)),
                            failures: u32_of(r.get(4)),
                            interrupts: u32_of(r.get(5)),
                            enqueued_at: Timestamp::from_i64(r.get(6)),
                            backoff_retries: u32_of(r.get(7)),
                            backoff_previous_nanos: r
                                .get::<_, Option<i64>>(8)
                                .map(|n| n.max(0) as u64),
                        },
                        last_error: r.get(11),
                    };
                    (r.get::<_, i64>(12), job)
                })
                .collect();
            // UPDATE … RETURNING does not keep the picked order.
            out.sort_by_key(|(run_at, j)| (*run_at, j.lease.id));
            Ok(out.into_iter().map(|(_, j)| j).collect())
        })
        .await
    }

    async fn renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        lease_for: Duration,
    ) -> Result<Timestamp, QueueError> {
        let until = now.saturating_add(lease_for);
        self.timed(async {
            let c = self.client().await?;
            let st = c.prepare_cached(&self.sql.renew).await.map_err(pg_err)?;
            let n = c
                .execute(
                    &st,
                    &[&(lease.id.0 as i64), &(lease.token as i64), &until.as_i64()],
                )
                .await
                .map_err(pg_err)?;
            if n == 0 {
                return Err(QueueError::LeaseLost {
                    id: lease.id,
                    token: lease.token,
                });
            }
            Ok(until)
        })
        .await
    }

    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let id = lease.id.0 as i64;
        let token = lease.token as i64;
        let n = self
            .timed(async {
                let c = self.client().await?;
                if let Settlement::Ack = settlement {
                    let st = c.prepare_cached(&self.sql.ack).await.map_err(pg_err)?;
                    return c.execute(&st, &[&id, &token]).await.map_err(pg_err);
                }
                let (status, run_at, state, reason, dead_at, report) = match &settlement {
                    Settlement::Ack => unreachable!("handled above"),
                    Settlement::Retry {
                        state,
                        run_at,
                        report,
                    } => (
                        JobStatus::Available,
                        Some(*run_at),
                        state,
                        None,
                        None,
                        report,
                    ),
                    Settlement::HandBack { state, report } => {
                        (JobStatus::Available, Some(now), state, None, None, report)
                    }
                    Settlement::DeadLetter {
                        state,
                        reason,
                        report,
                    } => (
                        JobStatus::Dead,
                        None,
                        state,
                        Some(*reason),
                        Some(now),
                        report,
                    ),
                };
                let patch = serde_json::json!({
                    "ended_at": now,
                    "result": report.result,
                    "error": report.error,
                });
                let st = c.prepare_cached(&self.sql.settle).await.map_err(pg_err)?;
                c.execute(
                    &st,
                    &[
                        &id,
                        &token,
                        &status.code(),
                        &run_at.map(Timestamp::as_i64),
                        &i32_of(state.deliveries),
                        &i32_of(state.failures),
                        &i32_of(state.interrupts),
                        &state.enqueued_at.as_i64(),
                        &i32_of(state.backoff_retries),
                        &state.backoff_previous_nanos.map(i64_of),
                        &reason.map(DeadLetterReason::code),
                        &dead_at.map(Timestamp::as_i64),
                        &report.error,
                        &Json(&patch),
                    ],
                )
                .await
                .map_err(pg_err)
            })
            .await?;
        if n == 0 {
            return Err(QueueError::LeaseLost {
                id: lease.id,
                token: lease.token,
            });
        }
        Ok(())
    }

    async fn rescue(&self, now: Timestamp, max: usize) -> Result<usize, QueueError> {
        self.timed(async {
            let c = self.client().await?;
            let st = c.prepare_cached(&self.sql.rescue).await.map_err(pg_err)?;
            let n = c
                .execute(&st, &[&now.as_i64(), &i64_of(max as u64)])
                .await
                .map_err(pg_err)?;
            Ok(n as usize)
        })
        .await
    }

    async fn counts(&self, queue: &str, now: Timestamp) -> Result<QueueCounts, QueueError> {
        self.timed(async {
            let c = self.client().await?;
            let row = c
                .query_one(&self.sql.counts, &[&queue, &now.as_i64()])
                .await
                .map_err(pg_err)?;
            let n = |i: usize| row.get::<_, i64>(i).max(0) as u64;
            Ok(QueueCounts {
                due: n(0),
                scheduled: n(1),
                running: n(2),
                dead: n(3),
            })
        })
        .await
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        self.timed(async {
            let c = self.client().await?;
            let row = c
                .query_opt(&self.sql.job, &[&(id.0 as i64)])
                .await
                .map_err(pg_err)?;
            row.as_ref().map(record_of).transpose()
        })
        .await
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, QueueError> {
        self.timed(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    &self.sql.dead_letters,
                    &[
                        &after.map_or(0, |a| a.0 as i64),
                        &filter.queue,
                        &filter.reason.map(DeadLetterReason::code),
                        &filter.dead_before.map(Timestamp::as_i64),
                        &filter.dead_after.map(Timestamp::as_i64),
                        &filter.error_contains,
                        &i64_of(limit as u64),
                    ],
                )
                .await
                .map_err(pg_err)?;
            rows.iter().map(record_of).collect()
        })
        .await
    }

    async fn redrive(&self, ids: &[JobId], now: Timestamp) -> Result<usize, QueueError> {
        let ids: Vec<i64> = ids.iter().map(|i| i.0 as i64).collect();
        self.timed(async {
            let c = self.client().await?;
            let n = c
                .execute(&self.sql.redrive, &[&ids, &now.as_i64()])
                .await
                .map_err(pg_err)?;
            Ok(n as usize)
        })
        .await
    }

    async fn purge(&self, ids: &[JobId]) -> Result<usize, QueueError> {
        let ids: Vec<i64> = ids.iter().map(|i| i.0 as i64).collect();
        self.timed(async {
            let c = self.client().await?;
            let n = c.execute(&self.sql.purge, &[&ids]).await.map_err(pg_err)?;
            Ok(n as usize)
        })
        .await
    }

    async fn dead_letter_depth(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        self.timed(async {
            let c = self.client().await?;
            let row = c
                .query_one(&self.sql.depth, &[&queue])
                .await
                .map_err(pg_err)?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
        .await
    }
}
