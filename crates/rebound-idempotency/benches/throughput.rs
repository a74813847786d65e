//! Requests/s through the idempotency layer vs the same axum app without it,
//! over loopback HTTP, first-time and replay paths, per store, in one run.
//! Then the number of store round trips per claim and per complete on Redis
//! and PostgreSQL, counted by the stores and cross-checked on the servers.
//!
//! ```text
//! REBOUND_REDIS_URL=redis://127.0.0.1:6379 \
//! REBOUND_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p rebound-idempotency --all-features --bench throughput
//! ```
//! Stores whose variable is unset (or whose feature is off) are skipped.
//! `REBOUND_BENCH_STORES=memory,redb` picks stores (`redb-nolog`, redb
//! without its write-ahead log, runs only when named there);
//! `REBOUND_BENCH_LATENCY_ONLY=1` skips the throughput part;
//! `REBOUND_BENCH_REDB_LOG_SIZE` sets the redb store's log size in bytes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use criterion::{Criterion, Throughput};
use rebound_idempotency::{IdempotencyLayer, MemoryStore, Store};

/// Requests per measured iteration, and how many are in flight at once.
const BATCH: usize = 64;
const CONCURRENCY: usize = 16;

static KEYS: AtomicU64 = AtomicU64::new(0);

/// The redb store, to report its commits (each one fsync).
#[cfg(feature = "redb")]
static REDB: std::sync::OnceLock<Arc<rebound_idempotency::RedbStore>> = std::sync::OnceLock::new();

fn handler_app() -> Router {
    Router::new().route(
        "/orders",
        post(|body: String| async move { (StatusCode::CREATED, format!("order for {body}")) }),
    )
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// BATCH requests, CONCURRENCY at a time; `key` picks each request's key.
async fn batch(client: &reqwest::Client, url: &str, key: impl Fn(usize) -> Option<String>) {
    let per_worker = BATCH / CONCURRENCY;
    let key = &key;
    futures_util::future::join_all((0..CONCURRENCY).map(|w| async move {
        for i in 0..per_worker {
            let mut rb = client.post(url).body("sku-1 x1");
            if let Some(k) = key(w * per_worker + i) {
                rb = rb.header("Idempotency-Key", k);
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.bytes().await.unwrap();
        }
    }))
    .await;
}

struct Target {
    name: &'static str,
    addr: SocketAddr,
    store: Option<Arc<dyn Store>>,
}

async fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut out: Vec<(&'static str, Arc<dyn Store>)> =
        vec![("memory", Arc::new(MemoryStore::new()))];
    #[cfg(feature = "redb")]
    {
        let path = std::env::temp_dir().join(format!("rebound-bench-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut options = rebound_idempotency::RedbStore::options();
        if let Ok(size) = std::env::var("REBOUND_BENCH_REDB_LOG_SIZE") {
            options = options.log_size(size.parse().expect("REBOUND_BENCH_REDB_LOG_SIZE: bytes"));
        }
        let store = Arc::new(options.open(&path).unwrap());
        let _ = REDB.set(store.clone());
        out.push(("redb", store));
        // The same without the write-ahead log: every batch a durable redb
        // commit (named only in REBOUND_BENCH_STORES, to compare).
        let path =
            std::env::temp_dir().join(format!("rebound-bench-{}-nolog.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = rebound_idempotency::RedbStore::options()
            .log_size(0)
            .open(&path)
            .unwrap();
        out.push(("redb-nolog", Arc::new(store)));
    }
    #[cfg(feature = "redis")]
    match std::env::var("REBOUND_REDIS_URL") {
        Ok(url) => {
            let s = rebound_idempotency::RedisStore::connect(&url)
                .await
                .unwrap()
                .with_prefix(format!("rebound_bench_{}:", std::process::id()))
                .unwrap()
                .with_gc_grace(Duration::from_secs(60));
            out.push(("redis", Arc::new(s)));
        }
        Err(_) => println!("skipped: REBOUND_REDIS_URL not set"),
    }
    #[cfg(feature = "postgres")]
    match std::env::var("REBOUND_POSTGRES_URL") {
        Ok(url) => {
            let s = rebound_idempotency::PostgresStore::connect(&url)
                .unwrap()
                .with_table(&format!("idem_bench_{}", std::process::id()))
                .unwrap();
            s.migrate().await.unwrap();
            out.push(("postgres", Arc::new(s)));
        }
        Err(_) => println!("skipped: REBOUND_POSTGRES_URL not set"),
    }
    out
}

/// The bare app and one app per store (only those named in
/// `REBOUND_BENCH_STORES`, comma-separated, when it is set).
fn targets(rt: &tokio::runtime::Runtime) -> Vec<Target> {
    let only = std::env::var("REBOUND_BENCH_STORES").ok();
    rt.block_on(async {
        let mut t = vec![Target {
            name: "bare (no layer)",
            addr: serve(handler_app()).await,
            store: None,
        }];
        for (name, store) in stores().await {
            let named = only.as_deref().map(|o| o.split(',').any(|s| s == name));
            if named == Some(false) || (named.is_none() && name == "redb-nolog") {
                continue;
            }
            let layer = IdempotencyLayer::builder_shared(store.clone())
                .single_tenant()
                .build()
                .unwrap();
            t.push(Target {
                name,
                addr: serve(handler_app().layer(layer)).await,
                store: Some(store),
            });
        }
        t
    })
}

fn throughput(c: &mut Criterion, rt: &tokio::runtime::Runtime, targets: &[Target]) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()
        .unwrap();

    let mut group = c.benchmark_group("first_time");
    group.throughput(Throughput::Elements(BATCH as u64));
    for t in targets {
        let url = format!("http://{}/orders", t.addr);
        let bare = t.name.starts_with("bare");
        group.bench_function(t.name, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        batch(&client, &url, |_| {
                            (!bare).then(|| format!("k{}", KEYS.fetch_add(1, Ordering::Relaxed)))
                        })
                        .await;
                    }
                    start.elapsed()
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(BATCH as u64));
    for t in targets {
        let url = format!("http://{}/orders", t.addr);
        let bare = t.name.starts_with("bare");
        // One completed key per request slot, replayed over and over.
        let base = KEYS.fetch_add(BATCH as u64, Ordering::Relaxed);
        let key = move |i: usize| (!bare).then(|| format!("r{}", base + i as u64));
        rt.block_on(batch(&client, &url, key));
        group.bench_function(t.name, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        batch(&client, &url, key).await;
                    }
                    start.elapsed()
                }
            })
        });
    }
    group.finish();
}

/// Latency clients: each sends its requests one after another.
const LATENCY_CLIENTS: usize = 8;
const LATENCY_REQUESTS: usize = 500;

/// `LATENCY_CLIENTS` clients, `n` requests each, one at a time; the time of
/// every request (send to last body byte).
async fn timed(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    key: impl Fn(usize, usize) -> Option<String>,
) -> Vec<Duration> {
    let key = &key;
    let per_client = futures_util::future::join_all((0..LATENCY_CLIENTS).map(|w| async move {
        let mut took = Vec::with_capacity(n);
        for i in 0..n {
            let mut rb = client.post(url).body("sku-1 x1");
            if let Some(k) = key(w, i) {
                rb = rb.header("Idempotency-Key", k);
            }
            let start = Instant::now();
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.bytes().await.unwrap();
            took.push(start.elapsed());
        }
        took
    }))
    .await;
    per_client.into_iter().flatten().collect()
}

/// The store alone, as the layer uses it: `LATENCY_CLIENTS` tasks, each
/// claiming a new key and completing it, one at a time; the times of the
/// claims and of the completions.
async fn store_round_trips(store: &Arc<dyn Store>, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    use rebound_idempotency::{ClaimOutcome, ClaimRequest, Fingerprint, Timestamp};
    let base = KEYS.fetch_add((LATENCY_CLIENTS * n) as u64, Ordering::Relaxed);
    let per_client = futures_util::future::join_all((0..LATENCY_CLIENTS).map(|w| async move {
        let clock = rebound::Clock::default();
        let (mut claims, mut completes) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let key = format!("s{}", base + (w * n + i) as u64);
            let start = Instant::now();
            let claimed = store
                .claim(ClaimRequest {
                    key: &key,
                    fingerprint: Fingerprint::of(&[b"sku-1 x1"]),
                    now: Timestamp::now(&clock),
                    lease: Duration::from_secs(30),
                    ttl: Duration::from_secs(600),
                })
                .await
                .unwrap();
            claims.push(start.elapsed());
            let ClaimOutcome::Claimed { fence } = claimed else {
                panic!("not claimed")
            };
            let start = Instant::now();
            store
                .complete(
                    &key,
                    fence,
                    bytes::Bytes::from_static(b"order for sku-1 x1"),
                    Timestamp::now(&clock),
                    Duration::from_secs(600),
                )
                .await
                .unwrap();
            completes.push(start.elapsed());
        }
        (claims, completes)
    }))
    .await;
    let mut claims = Vec::new();
    let mut completes = Vec::new();
    for (a, b) in per_client {
        claims.extend(a);
        completes.extend(b);
    }
    claims.sort();
    completes.sort();
    (claims, completes)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50 and p99 of each target, and what the layer adds over the bare app,
/// with 8 clients sending one request at a time each.
fn latency(rt: &tokio::runtime::Runtime, targets: &[Target]) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(LATENCY_CLIENTS * 2)
        .build()
        .unwrap();
    println!(
        "\nlatency ({LATENCY_CLIENTS} clients, one request at a time each, {} requests per row):",
        LATENCY_CLIENTS * LATENCY_REQUESTS
    );
    println!(
        "  {:<18} {:<10} {:>9} {:>9} {:>11} {:>11}",
        "store", "path", "p50", "p99", "p50 added", "p99 added"
    );
    for path in ["first_time", "replay"] {
        let mut bare = (Duration::ZERO, Duration::ZERO);
        for t in targets {
            let url = format!("http://{}/orders", t.addr);
            let is_bare = t.name.starts_with("bare");
            let base = KEYS.fetch_add(
                (LATENCY_CLIENTS * LATENCY_REQUESTS) as u64,
                Ordering::Relaxed,
            );
            let key = move |w: usize, i: usize| {
                (!is_bare).then(|| format!("l{}", base + (w * LATENCY_REQUESTS + i) as u64))
            };
            #[cfg(feature = "redb")]
            let commits_before = REDB.get().map(|r| r.commits());
            let mut took = rt.block_on(async {
                // Warm up (connections, scripts, statements); for replays,
                // complete every key first.
                timed(&client, &url, 50, |w, i| key(w, LATENCY_REQUESTS - 1 - i)).await;
                if path == "replay" {
                    timed(&client, &url, LATENCY_REQUESTS, key).await;
                }
                let fresh = KEYS.fetch_add(
                    (LATENCY_CLIENTS * LATENCY_REQUESTS) as u64,
                    Ordering::Relaxed,
                );
                if path == "first_time" {
                    let key = move |w: usize, i: usize| {
                        (!is_bare)
                            .then(|| format!("l{}", fresh + (w * LATENCY_REQUESTS + i) as u64))
                    };
                    timed(&client, &url, LATENCY_REQUESTS, key).await
                } else {
                    timed(&client, &url, LATENCY_REQUESTS, key).await
                }
            });
            #[cfg(feature = "redb")]
            if let (true, Some(before), Some(redb)) = (t.name == "redb", commits_before, REDB.get())
            {
                println!(
                    "  (redb: {} commits for this row and its warm-up)",
                    redb.commits() - before
                );
            }
            took.sort();
            let (p50, p99) = (percentile(&took, 0.50), percentile(&took, 0.99));
            if is_bare {
                bare = (p50, p99);
            }
            println!(
                "  {:<18} {:<10} {:>7.3}ms {:>7.3}ms {:>9.3}ms {:>9.3}ms",
                t.name,
                path,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                (p50.as_secs_f64() - bare.0.as_secs_f64()) * 1e3,
                (p99.as_secs_f64() - bare.1.as_secs_f64()) * 1e3,
            );
        }
    }
    println!("\nstore round trips alone ({LATENCY_CLIENTS} tasks, claim then complete, one at a time each):");
    println!(
        "  {:<18} {:>11} {:>11} {:>14} {:>14}",
        "store", "claim p50", "claim p99", "complete p50", "complete p99"
    );
    for t in targets {
        let Some(store) = &t.store else { continue };
        let (claims, completes) = rt.block_on(async {
            store_round_trips(store, 50).await;
            store_round_trips(store, LATENCY_REQUESTS).await
        });
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  {:<18} {:>9.3}ms {:>9.3}ms {:>12.3}ms {:>12.3}ms",
            t.name,
            ms(percentile(&claims, 0.5)),
            ms(percentile(&claims, 0.99)),
            ms(percentile(&completes, 0.5)),
            ms(percentile(&completes, 0.99)),
        );
    }
}

/// Round trips per claim and per complete, as counted by the store and by
/// the server.
#[allow(unused_variables, unused_imports)]
fn round_trips(rt: &tokio::runtime::Runtime) {
    use rebound_idempotency::{ClaimOutcome, ClaimRequest, Fingerprint, Timestamp};
    let now = || Timestamp::now(&rebound::Clock::system());
    const N: u64 = 200;
    let resp = bytes::Bytes::from_static(b"ok");
    let claim = |key: String| ClaimRequest {
        key: Box::leak(key.into_boxed_str()),
        fingerprint: Fingerprint::of(&[b"a"]),
        now: now(),
        lease: Duration::from_secs(30),
        ttl: Duration::from_secs(60),
    };
    println!("\nstore round trips ({N} claims, {N} completes, {N} replays):");

    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("REBOUND_REDIS_URL") {
        rt.block_on(async {
            let store = rebound_idempotency::RedisStore::connect(&url)
                .await
                .unwrap()
                .with_prefix(format!("rebound_rt_{}:", std::process::id()))
                .unwrap();
            let mut admin = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            // Warm: load scripts.
            let ClaimOutcome::Claimed { fence } = store.claim(claim("warm".into())).await.unwrap() else { panic!() };
            store.complete("warm", fence, resp.clone(), now(), Duration::from_secs(60)).await.unwrap();
            let (mut c_claim, mut c_complete, mut c_replay) = (0, 0, 0);
            let mut server = 0;
            for i in 0..N {
                let key = format!("rt{i}");
                let info0: String = redis::cmd("INFO").arg("commandstats").query_async(&mut admin).await.unwrap();
                let a = store.round_trips();
                let ClaimOutcome::Claimed { fence } = store.claim(claim(key.clone())).await.unwrap() else { panic!() };
                let b = store.round_trips();
                store.complete(&key, fence, resp.clone(), now(), Duration::from_secs(60)).await.unwrap();
                let c = store.round_trips();
                assert!(matches!(store.claim(claim(key.clone())).await.unwrap(), ClaimOutcome::Completed(_)));
                let d = store.round_trips();
                let info1: String = redis::cmd("INFO").arg("commandstats").query_async(&mut admin).await.unwrap();
                c_claim += b - a;
                c_complete += c - b;
                c_replay += d - c;
                // Count EVALSHA calls on the server: the scripts' inner
                // HMGET/HSET/PEXPIRE run server-side, not as round trips.
                let evalsha = |s: &str| {
                    s.lines()
                        .find(|l| l.starts_with("cmdstat_evalsha:"))
                        .and_then(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                server += evalsha(&info1) - evalsha(&info0);
            }
            println!(
                "  redis:    per claim {:.2}, per complete {:.2}, per replay {:.2} (client-counted); server EVALSHA calls per request cycle {:.2} (claim+complete+replay = 3 expected)",
                c_claim as f64 / N as f64,
                c_complete as f64 / N as f64,
                c_replay as f64 / N as f64,
                server as f64 / N as f64
            );
        });
    }

    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("REBOUND_POSTGRES_URL") {
        rt.block_on(async {
            let table = format!("idem_rt_{}", std::process::id());
            let store = rebound_idempotency::PostgresStore::connect(&url)
                .unwrap()
                .with_table(&table)
                .unwrap();
            store.migrate().await.unwrap();
            let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let (mut c_claim, mut c_complete, mut c_replay) = (0, 0, 0);
            for i in 0..N {
                let key = format!("rt{i}");
                let a = store.round_trips();
                let ClaimOutcome::Claimed { fence } = store.claim(claim(key.clone())).await.unwrap() else { panic!() };
                let b = store.round_trips();
                store.complete(&key, fence, resp.clone(), now(), Duration::from_secs(60)).await.unwrap();
                let c = store.round_trips();
                assert!(matches!(store.claim(claim(key.clone())).await.unwrap(), ClaimOutcome::Completed(_)));
                let d = store.round_trips();
                c_claim += b - a;
                c_complete += c - b;
                c_replay += d - c;
            }
            println!(
                "  postgres: per claim {:.2}, per complete {:.2}, per replay {:.2} (statements executed, each one round trip)",
                c_claim as f64 / N as f64,
                c_complete as f64 / N as f64,
                c_replay as f64 / N as f64,
            );
            admin.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).await.unwrap();
        });
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let targets = targets(&rt);
    if std::env::var("REBOUND_BENCH_LATENCY_ONLY").is_err() {
        throughput(&mut c, &rt, &targets);
    }
    latency(&rt, &targets);
    #[cfg(feature = "redb")]
    if let Some(redb) = REDB.get() {
        println!(
            "\nredb: {} commits (one fsync each) for every claim, completion and renewal of this run, {} of them checkpoints",
            redb.commits(),
            redb.checkpoints()
        );
    }
    round_trips(&rt);
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("REBOUND_POSTGRES_URL") {
        rt.block_on(async {
            let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let _ = admin
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS idem_bench_{}",
                    std::process::id()
                ))
                .await;
        });
    }
    #[cfg(feature = "redb")]
    for file in ["", "-nolog"] {
        let path =
            std::env::temp_dir().join(format!("rebound-bench-{}{file}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("redb.log"));
    }
    c.final_summary();
}
