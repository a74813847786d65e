//! A PostgreSQL store: one row per record in a table with the scoped key as
//! primary key. A claim is one `INSERT … ON CONFLICT … DO UPDATE … WHERE
//! <claimable> RETURNING` statement that also reads the existing row when it
//! cannot claim, so a claim, a replay and a duplicate are each one round
//! trip. Completion, release and renewal are fenced `UPDATE … WHERE fence =
//! $n AND state = in-progress`.
//!
//! Times are absolute milliseconds from the layer's clock (`BIGINT`
//! columns), so tests can move time by hand. [`Store::sweep`] deletes expired
//! rows in batches using an index on `expires_at`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use bytes::Bytes;

use crate::record::{ClaimOutcome, ClaimRequest};
use crate::store::{Store, StoreError};
use crate::time::{duration_millis, Timestamp};

/// Default table name.
pub const DEFAULT_TABLE: &str = "rebound_idempotency";

/// Records in a PostgreSQL table (created by [`migrate`](Self::migrate)).
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_idempotency::StoreError> {
/// use rebound_idempotency::PostgresStore;
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test")?
///     .with_table("shop.idempotency_keys")?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    table: String,
    sql: Arc<Sql>,
    op_timeout: Duration,
    round_trips: Arc<AtomicU64>,
}

struct Sql {
    claim: String,
    complete: String,
    release: String,
    renew: String,
    sweep: String,
}

impl Sql {
    fn new(t: &str) -> Sql {
        Sql {
            claim: format!(
                "WITH claimed AS (
                   INSERT INTO {t} AS r (key, state, fence, fingerprint, lease_expires_at, expires_at, response)
                   VALUES ($1::text, 0, 1, $2::bytea, $3::bigint + $4::bigint, $3::bigint + GREATEST($4::bigint, $5::bigint), NULL)
                   ON CONFLICT (key) DO UPDATE
                     SET state = 0, fence = r.fence + 1, fingerprint = EXCLUDED.fingerprint,
                         lease_expires_at = EXCLUDED.lease_expires_at,
                         expires_at = EXCLUDED.expires_at, response = NULL
                     WHERE r.expires_at <= $3::bigint OR r.state = 2
                        OR (r.state = 0 AND r.lease_expires_at <= $3::bigint)
                   RETURNING r.fence
                 )
                 SELECT TRUE AS claimed, fence, NULL::smallint AS state, NULL::bytea AS fingerprint,
                        NULL::bigint AS lease_expires_at, NULL::bigint AS expires_at, NULL::bytea AS response
                   FROM claimed
                 UNION ALL
                 SELECT FALSE, fence, state, fingerprint, lease_expires_at, expires_at, response
                   FROM {t} WHERE key = $1::text AND NOT EXISTS (SELECT 1 FROM claimed)"
            ),
            complete: format!(
                "UPDATE {t} SET state = 1, response = $3::bytea, expires_at = $4::bigint + $5::bigint
                  WHERE key = $1::text AND fence = $2::bigint AND state = 0"
            ),
            release: format!(
                "UPDATE {t} SET state = 2, response = NULL
                  WHERE key = $1::text AND fence = $2::bigint AND state = 0"
            ),
            renew: format!(
                "UPDATE {t} SET lease_expires_at = $3::bigint + $4::bigint,
                                expires_at = GREATEST(expires_at, $3::bigint + $4::bigint)
                  WHERE key = $1::text AND fence = $2::bigint AND state = 0"
            ),
            sweep: format!(
                "DELETE FROM {t} WHERE expires_at <= $1::bigint AND key IN (
                   SELECT key FROM {t} WHERE expires_at <= $1::bigint
                   ORDER BY expires_at LIMIT $2::bigint FOR UPDATE SKIP LOCKED)"
            ),
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if e.as_db_error().is_some() {
        StoreError::Backend {
            store: "postgres",
            source: Box::new(e),
        }
    } else {
        StoreError::Unavailable {
            store: "postgres",
            source: Box::new(e),
        }
    }
}

fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_err(e),
        other => StoreError::Unavailable {
            store: "postgres",
            source: Box::new(other),
        },
    }
}

/// Check a table name: `name` or `schema.name`, each part lower-case ASCII
/// letters, digits and `_`, not starting with a digit, at most 50 characters.
fn validate_table(name: &str) -> Result<(), StoreError> {
    let bad = |reason: String| StoreError::InvalidConfig {
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

impl PostgresStore {
    /// A store for the database at `url` (e.g.
    /// `postgres://postgres@127.0.0.1:5432/test`), pooled (16 connections,
    /// 2 s to get or open one). Connects lazily: a database that is down
    /// shows up as [`StoreError::Unavailable`] on the first operation.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::InvalidConfig {
                field: "url",
                reason: format!("not a PostgreSQL URL: {e}"),
            })?;
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
            .map_err(|e| StoreError::InvalidConfig {
                field: "pool",
                reason: e.to_string(),
            })?;
        Ok(Self::from_pool(pool))
    }

    /// Use an existing deadpool pool.
    pub fn from_pool(pool: Pool) -> Self {
        PostgresStore {
            pool,
            table: DEFAULT_TABLE.to_owned(),
            sql: Arc::new(Sql::new(DEFAULT_TABLE)),
            op_timeout: Duration::from_secs(5),
            round_trips: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The table (optionally `schema.table`). Default: `rebound_idempotency`.
    pub fn with_table(mut self, table: &str) -> Result<Self, StoreError> {
        validate_table(table)?;
        self.table = table.to_owned();
        self.sql = Arc::new(Sql::new(table));
        Ok(self)
    }

    /// The longest one statement may take before the store counts as
    /// unavailable. Default: 5 s.
    pub fn with_op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The table this store uses.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// How many statements this store has executed (each one round trip;
    /// statement preparation, once per pooled connection, is not counted).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Create the table and its index if they do not exist. Safe to run
    /// concurrently and repeatedly (serialized by an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let t = &self.table;
        let index = format!("{}_expires_at_idx", t.rsplit('.').next().unwrap_or(t));
        let ddl = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(7395047211);
             CREATE TABLE IF NOT EXISTS {t} (
               key TEXT PRIMARY KEY,
               state SMALLINT NOT NULL,
               fence BIGINT NOT NULL,
               fingerprint BYTEA NOT NULL,
               lease_expires_at BIGINT NOT NULL,
               expires_at BIGINT NOT NULL,
               response BYTEA
             );
             CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_at);
             COMMIT;"
        );
        let client = self.pool.get().await.map_err(pool_err)?;
        client.batch_execute(&ddl).await.map_err(pg_err)
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.op_timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable {
                store: "postgres",
                source: format!("no answer within {:?}", self.op_timeout).into(),
            }),
        }
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.timed(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            client.execute(&stmt, params).await.map_err(pg_err)
        })
        .await
    }

    async fn fenced(
        &self,
        sql: &str,
        fence: u64,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        match self.execute(sql, params).await? {
            1 => Ok(()),
            _ => Err(StoreError::FenceRejected { fence }),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(duration_millis(d)).unwrap_or(i64::MAX)
}

fn ts(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn fence_i64(fence: u64) -> i64 {
    i64::try_from(fence).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for PostgresStore {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        let now = ts(req.now);
        let (lease, ttl) = (ms(req.lease), ms(req.ttl));
        let fp = &req.fingerprint.0[..];
        self.timed(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let stmt = client
                .prepare_cached(&self.sql.claim)
                .await
                .map_err(pg_err)?;
            // Under READ COMMITTED the fallback SELECT reads the snapshot
            // taken when the statement began; if a concurrent claim committed
            // in between, it shows no row (or a stale claimable one). Running
            // the statement again sees the new row. This only happens under
            // contention on one key, and a few tries always settle it.
            for _ in 0..8 {
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                let rows = client
                    .query(&stmt, &[&req.key, &fp, &now, &lease, &ttl])
                    .await
                    .map_err(pg_err)?;
                let Some(row) = rows.first() else { continue };
                let fence: i64 = row.try_get(1).map_err(pg_err)?;
                if row.try_get::<_, bool>(0).map_err(pg_err)? {
                    return Ok(ClaimOutcome::Claimed {
                        fence: u64::try_from(fence).unwrap_or(0),
                    });
                }
                let state: i16 = row.try_get(2).map_err(pg_err)?;
                let fingerprint: &[u8] = row.try_get(3).map_err(pg_err)?;
                let lease_at: i64 = row.try_get(4).map_err(pg_err)?;
                let expires_at: i64 = row.try_get(5).map_err(pg_err)?;
                let claimable = expires_at <= now || state == 2 || (state == 0 && lease_at <= now);
                if claimable {
                    continue; // stale snapshot, see above
                }
                if fingerprint != req.fingerprint.0 {
                    return Ok(ClaimOutcome::Mismatch);
                }
                return match state {
                    0 => Ok(ClaimOutcome::InProgress {
                        retry_after: Duration::from_millis(
                            u64::try_from(lease_at - now).unwrap_or(0),
                        ),
                    }),
                    _ => {
                        let resp: Option<&[u8]> = row.try_get(6).map_err(pg_err)?;
                        Ok(ClaimOutcome::Completed(Bytes::copy_from_slice(
                            resp.unwrap_or_default(),
                        )))
                    }
                };
            }
            // Still racing after several tries: someone else holds it.
            Ok(ClaimOutcome::InProgress {
                retry_after: Duration::from_millis(10),
            })
        })
        .await
    }

    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let (f, n, l) = (fence_i64(fence), ts(now), ms(lease));
        self.fenced(&self.sql.renew, fence, &[&key, &f, &n, &l])
            .await
    }

    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (f, n, t) = (fence_i64(fence), ts(now), ms(ttl));
        let body: &[u8] = &result;
        self.fenced(&self.sql.complete, fence, &[&key, &f, &body, &n, &t])
            .await
    }

    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        let f = fence_i64(fence);
        self.fenced(&self.sql.release, fence, &[&key, &f]).await
    }

    async fn sweep(&self, now: Timestamp, batch: usize) -> Result<usize, StoreError> {
        let (n, b) = (ts(now), i64::try_from(batch).unwrap_or(i64::MAX));
        let deleted = self.execute(&self.sql.sweep, &[&n, &b]).await?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated() {
        assert!(validate_table("rebound_idempotency").is_ok());
        assert!(validate_table("shop.idem_1").is_ok());
        for bad in [
            "",
            "a.b.c",
            "Drop",
            "1abc",
            "a;drop table x",
            "a-b",
            &"x".repeat(51),
        ] {
            let err = validate_table(bad).unwrap_err().to_string();
            assert!(err.contains("table"), "{err}");
        }
    }
}
