//! Where a first-time request's added latency goes, per store: 8 clients on
//! loopback, one request at a time each, through the layer; the time of
//! the whole request at the client, of the layer (a timing middleware just
//! outside it), and of the store's claim and completion as the layer sees
//! them (a timing wrapper around the store). What the layer adds beyond
//! its two store calls is its own work plus the time its task waits to run.
//! Rounds alternate the bare app and the layered one, so both see the same
//! load. `REBOUND_BENCH_STORES=redis,memory` picks stores.
//!
//! ```text
//! REBOUND_REDIS_URL=redis://127.0.0.1:6379 \
//! REBOUND_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p rebound-idempotency --all-features --bench breakdown
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use rebound_idempotency::{
    ClaimOutcome, ClaimRequest, IdempotencyLayer, MemoryStore, Store, StoreError, Timestamp,
};

const CLIENTS: usize = 8;
/// Requests per client, in rounds that alternate the bare app and the
/// layer so both see the same load.
const REQUESTS: usize = 500;
const ROUNDS: usize = 10;

static KEYS: AtomicU64 = AtomicU64::new(0);

type Samples = Arc<Mutex<Vec<Duration>>>;

/// Times every claim and completion that goes through it.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn Store>,
    claims: Samples,
    completes: Samples,
}

#[async_trait::async_trait]
impl Store for Timed {
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<ClaimOutcome, StoreError> {
        let t = Instant::now();
        let r = self.inner.claim(req).await;
        self.claims.lock().unwrap().push(t.elapsed());
        r
    }
    async fn renew(
        &self,
        key: &str,
        fence: u64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.inner.renew(key, fence, now, lease).await
    }
    async fn complete(
        &self,
        key: &str,
        fence: u64,
        result: Bytes,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.complete(key, fence, result, now, ttl).await;
        self.completes.lock().unwrap().push(t.elapsed());
        r
    }
    async fn release(&self, key: &str, fence: u64) -> Result<(), StoreError> {
        self.inner.release(key, fence).await
    }
}

async fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut out: Vec<(&'static str, Arc<dyn Store>)> =
        vec![("memory", Arc::new(MemoryStore::new()))];
    #[cfg(feature = "redb")]
    {
        let path =
            std::env::temp_dir().join(format!("rebound-breakdown-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        out.push((
            "redb",
            Arc::new(rebound_idempotency::RedbStore::open(&path).unwrap()),
        ));
    }
    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("REBOUND_REDIS_URL") {
        let s = rebound_idempotency::RedisStore::connect(&url)
            .await
            .unwrap()
            .with_prefix(format!("rebound_breakdown_{}:", std::process::id()))
            .unwrap()
            .with_gc_grace(Duration::from_secs(60));
        out.push(("redis", Arc::new(s)));
        // The same store on a connection with Nagle's algorithm on (redis-rs'
        // default), to show what TCP_NODELAY saves.
        let manager = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection_manager()
            .await
            .unwrap();
        let nagle = rebound_idempotency::RedisStore::from_connection(manager)
            .with_prefix(format!("rebound_breakdown_nagle_{}:", std::process::id()))
            .unwrap()
            .with_gc_grace(Duration::from_secs(60));
        out.push(("redis, Nagle on", Arc::new(nagle)));
    }
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("REBOUND_POSTGRES_URL") {
        let s = rebound_idempotency::PostgresStore::connect(&url)
            .unwrap()
            .with_table(&format!("idem_breakdown_{}", std::process::id()))
            .unwrap();
        s.migrate().await.unwrap();
        out.push(("postgres", Arc::new(s)));
    }
    out
}

fn p50(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

async fn run(url: &str, client: &reqwest::Client, keyed: bool, n: usize) -> Vec<Duration> {
    let per = futures_util::future::join_all((0..CLIENTS).map(|_| async {
        let mut took = Vec::with_capacity(n);
        for _ in 0..n {
            let mut rb = client.post(url).body("sku-1 x1");
            if keyed {
                rb = rb.header(
                    "Idempotency-Key",
                    format!("b{}", KEYS.fetch_add(1, Ordering::Relaxed)),
                );
            }
            let t = Instant::now();
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.bytes().await.unwrap();
            took.push(t.elapsed());
        }
        took
    }))
    .await;
    per.into_iter().flatten().collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS * 2)
            .build()
            .unwrap();
        let app = || {
            Router::new().route(
                "/orders",
                post(|body: String| async move { (StatusCode::CREATED, format!("order for {body}")) }),
            )
        };
        let serve = |router: Router| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
            format!("http://{addr}/orders")
        };
        let bare = serve(app()).await;
        run(&bare, &client, false, 50).await;
        println!("first-time requests, {CLIENTS} clients one at a time, p50 in ms:");
        println!(
            "  {:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>14}",
            "store", "bare", "request", "added", "layer", "claim", "complete", "layer - store"
        );
        let only = std::env::var("REBOUND_BENCH_STORES").ok();
        for (name, store) in stores().await {
            if only.as_deref().is_some_and(|o| !o.split(',').any(|s| s == name)) {
                continue;
            }
            let claims = Samples::default();
            let completes = Samples::default();
            let layer_took = Samples::default();
            let timed = Arc::new(Timed {
                inner: store,
                claims: claims.clone(),
                completes: completes.clone(),
            });
            let lt = layer_took.clone();
            let router = app()
                .layer(
                    IdempotencyLayer::builder_shared(timed)
                        .single_tenant()
                        .build()
                        .unwrap(),
                )
                .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
                    let lt = lt.clone();
                    async move {
                        let t = Instant::now();
                        let res = next.run(req).await;
                        lt.lock().unwrap().push(t.elapsed());
                        res
                    }
                }));
            let url = serve(router).await;
            run(&url, &client, true, 50).await; // warm up
            for s in [&claims, &completes, &layer_took] {
                s.lock().unwrap().clear();
            }
            let (mut took, mut bare_took) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                bare_took.extend(run(&bare, &client, false, REQUESTS / ROUNDS).await);
                took.extend(run(&url, &client, true, REQUESTS / ROUNDS).await);
            }
            let bare_p50 = p50(&mut bare_took);
            let request = p50(&mut took);
            let layer = p50(&mut layer_took.lock().unwrap());
            let claim = p50(&mut claims.lock().unwrap());
            let complete = p50(&mut completes.lock().unwrap());
            println!(
                "  {:<16} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>14.3}",
                name,
                bare_p50,
                request,
                request - bare_p50,
                layer,
                claim,
                complete,
                layer - claim - complete
            );
        }
    });
}
