//! Shared test helpers: the service skip rule, unique names, store makers,
//! and the conformance suite every store runs.
#![allow(dead_code)]

pub mod child;
pub mod http;
pub mod proxy;
pub mod suite;
pub mod watched;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `REBOUND_REQUIRE_SERVICES=1`: then a missing or unreachable
/// service fails the test instead of skipping it.
pub fn require_services() -> bool {
    std::env::var("REBOUND_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The URL in `var`, or `None` after printing that the test was skipped.
/// Panics (fails the test) when the variable is missing and services are
/// required.
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

/// A name no other test, process or run uses.
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

/// A Redis store with a fresh key prefix, or `None` (skipped).
/// A set variable with an unreachable server fails the test.
#[cfg(feature = "redis")]
pub async fn redis_store() -> Option<rebound_idempotency::RedisStore> {
    let url = service_url("REBOUND_REDIS_URL")?;
    let store = rebound_idempotency::RedisStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("REBOUND_REDIS_URL={url} is set but Redis is unreachable: {e}"));
    Some(
        store
            .with_prefix(format!("{}:", unique("rebound_test")))
            .unwrap(),
    )
}

/// A PostgreSQL store on a fresh table (created by `migrate`), or `None`
/// (skipped). Test tables from runs over an hour old are dropped first.
#[cfg(feature = "postgres")]
pub async fn postgres_store() -> Option<rebound_idempotency::PostgresStore> {
    let url = service_url("REBOUND_POSTGRES_URL")?;
    drop_stale_tables(&url).await;
    let table = unique("idem_test");
    let store = rebound_idempotency::PostgresStore::connect(&url)
        .unwrap_or_else(|e| panic!("REBOUND_POSTGRES_URL={url}: {e}"))
        .with_table(&table)
        .unwrap();
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("REBOUND_POSTGRES_URL={url} is set but PostgreSQL failed: {e}"));
    Some(store)
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
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'idem\\_test\\_%'",
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

/// Drop a test table (best effort).
#[cfg(feature = "postgres")]
pub async fn drop_table(store: &rebound_idempotency::PostgresStore) {
    if let Ok(url) = std::env::var("REBOUND_POSTGRES_URL") {
        if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", store.table()))
                .await;
        }
    }
}
