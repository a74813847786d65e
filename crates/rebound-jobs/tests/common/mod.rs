//! Shared test helpers: the service skip rule, unique names, fresh queues.
#![allow(dead_code)]

pub mod harness;
pub mod proxy;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `REBOUND_REQUIRE_SERVICES=1`: then a missing service fails the
/// test instead of skipping it.
pub fn require_services() -> bool {
    std::env::var("REBOUND_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The URL in `var`, or `None` after printing that the test was skipped.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                !require_services(),
                "{var} is not set but REBOUND_REQUIRE_SERVICES=1 requires it"
            );
            println!("skipped: {var} not set");
            None
        }
    }
}

/// A name no other test, process or run uses (lower-case, for table names).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!(
        "{prefix}_{}_{}_{}_{}",
        now.as_secs(),
        std::process::id(),
        now.subsec_nanos(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh embedded queue in a new temporary file, on `clock`. The
/// directory lives as long as the returned guard.
#[cfg(feature = "embedded")]
pub fn embedded_queue(clock: rebound::Clock) -> (rebound_jobs::EmbeddedQueue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let q = rebound_jobs::EmbeddedQueue::open(dir.path().join("jobs.redb"))
        .unwrap()
        .with_clock(clock);
    (q, dir)
}

/// A PostgreSQL queue on a fresh table, on `clock`, or `None` (skipped).
/// Test tables from runs over an hour old are dropped first.
#[cfg(feature = "postgres")]
pub async fn postgres_queue(clock: rebound::Clock) -> Option<rebound_jobs::PostgresQueue> {
    let url = service_url("REBOUND_POSTGRES_URL")?;
    Some(postgres_queue_at(&url, &unique("jobs_test"), clock).await)
}

/// A PostgreSQL queue on `table` (created if missing) at `url`.
#[cfg(feature = "postgres")]
pub async fn postgres_queue_at(
    url: &str,
    table: &str,
    clock: rebound::Clock,
) -> rebound_jobs::PostgresQueue {
    drop_stale_tables(url).await;
    let q = rebound_jobs::PostgresQueue::connect(url)
        .unwrap_or_else(|e| panic!("REBOUND_POSTGRES_URL={url}: {e}"))
        .with_table(table)
        .unwrap()
        .with_clock(clock);
    q.migrate()
        .await
        .unwrap_or_else(|e| panic!("REBOUND_POSTGRES_URL={url} is set but PostgreSQL failed: {e}"));
    q
}

#[cfg(feature = "postgres")]
async fn drop_stale_tables(url: &str) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
            return;
        };
        tokio::spawn(conn);
        let cutoff = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 3600;
        let rows = client
            .query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'jobs\\_test\\_%'",
                &[],
            )
            .await
            .unwrap_or_default();
        for row in rows {
            let name: String = row.get(0);
            let secs = name
                .split('_')
                .nth(2)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if secs < cutoff {
                let _ = client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await;
            }
        }
    })
    .await;
}

/// Deletes a test stream's keys (`<stream>` and `<stream>:rebound:*`) when
/// dropped: only the keys of the test that made it.
#[cfg(feature = "redis")]
pub struct RedisCleanup {
    url: String,
    stream: String,
}

#[cfg(feature = "redis")]
impl RedisCleanup {
    pub fn new(url: &str, stream: &str) -> Self {
        RedisCleanup {
            url: url.to_owned(),
            stream: stream.to_owned(),
        }
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisCleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let s = &self.stream;
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(s)
            .arg(format!("{s}:rebound:dead"))
            .arg(format!("{s}:rebound:schedule"))
            .arg(format!("{s}:rebound:scheduled"))
            .arg(format!("{s}:rebound:ids"))
            .query(&mut conn);
    }
}

/// Deletes a test's JetStream streams (`<stream>`, `<stream>_DEAD`,
/// `<stream>_ADVISORIES`, `<stream>_REBOUND`) when dropped.
#[cfg(feature = "nats")]
pub struct NatsCleanup {
    url: String,
    stream: String,
}

#[cfg(feature = "nats")]
impl NatsCleanup {
    pub fn new(url: &str, stream: &str) -> Self {
        NatsCleanup {
            url: url.to_owned(),
            stream: stream.to_owned(),
        }
    }
}

#[cfg(feature = "nats")]
impl Drop for NatsCleanup {
    fn drop(&mut self) {
        let (url, s) = (self.url.clone(), self.stream.clone());
        // A runtime of its own: drop may run outside (or at the end of) the
        // test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(client) = async_nats::connect(&url).await else {
                    return;
                };
                let js = async_nats::jetstream::new(client);
                for name in [
                    s.clone(),
                    format!("{s}_DEAD"),
                    format!("{s}_ADVISORIES"),
                    format!("{s}_REBOUND"),
                ] {
                    let _ = js.delete_stream(&name).await;
                }
            })
        })
        .join();
    }
}

/// Deletes a test's RabbitMQ queues (`<queue>`, `<queue>.dead`, its retry
/// queues) when dropped.
#[cfg(feature = "amqp")]
pub struct AmqpCleanup {
    url: String,
    queue: String,
}

#[cfg(feature = "amqp")]
impl AmqpCleanup {
    pub fn new(url: &str, queue: &str) -> Self {
        AmqpCleanup {
            url: url.to_owned(),
            queue: queue.to_owned(),
        }
    }
}

#[cfg(feature = "amqp")]
impl Drop for AmqpCleanup {
    fn drop(&mut self) {
        let (url, q) = (self.url.clone(), self.queue.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(conn) =
                    lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
                else {
                    return;
                };
                let mut names = vec![q.clone(), format!("{q}.dead")];
                names.extend((0..=24).map(|k| format!("{q}.retry.{}", 100u64 << k)));
                for name in names {
                    // A channel per delete: deleting a queue that does not
                    // exist closes the channel.
                    let Ok(ch) = conn.create_channel().await else {
                        return;
                    };
                    let _ = ch
                        .queue_delete(name.as_str().into(), Default::default())
                        .await;
                }
                let _ = conn.close(200, "done".into()).await;
            })
        })
        .join();
    }
}
