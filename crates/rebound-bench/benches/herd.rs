//! The thundering-herd layers on their success paths: rebound's
//! `CoalesceLayer` and a cache hit in its `StaleCacheLayer` (with a TTL)
//! against tower-resilience's coalesce and cache layers, in one criterion
//! run.
//!
//! ```sh
//! cargo bench -p rebound-bench --bench herd -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! As in `layers`: every case wraps the same inner service (`service_fn`
//! answering at once), clones the service, waits until ready and makes one
//! call, on a current-thread tokio runtime. `coalesce` is a lone caller
//! (it leads, calls, and hands its result to no one); `cache_hit` reads a
//! key stored before the measurement, with an hour's TTL.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rebound::coalesce::Coalescer;
use rebound::fallback::{Fallback, StaleCache};
use rebound::freshness::Freshness;
use rebound::tower::coalesce::CoalesceLayer;
use rebound::tower::fallback::StaleCacheLayer;
use rebound::tower::BoxError;
use tower::{Layer, Service, ServiceExt};

type Inner = tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, BoxError>>>;

fn inner() -> Inner {
    fn answer(x: u64) -> std::future::Ready<Result<u64, BoxError>> {
        std::future::ready(Ok(x))
    }
    tower::service_fn(answer as fn(u64) -> _)
}

/// An error that is `Clone`, as tower-resilience's coalesce layer needs.
#[derive(Debug, Clone)]
struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

type CloneErrInner = tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, Fail>>>;

fn clone_err_inner() -> CloneErrInner {
    fn answer(x: u64) -> std::future::Ready<Result<u64, Fail>> {
        std::future::ready(Ok(x))
    }
    tower::service_fn(answer as fn(u64) -> _)
}

macro_rules! case {
    ($g:expr, $rt:expr, $name:expr, $svc:expr) => {{
        let svc = $svc;
        // Warm: the cache cases store the key here.
        $rt.block_on(svc.clone().oneshot(1)).ok();
        $g.bench_function($name, |b| {
            b.to_async(&$rt).iter(|| {
                let mut svc = svc.clone();
                async move { black_box(svc.ready().await.unwrap().call(black_box(1)).await.is_ok()) }
            })
        });
    }};
}

fn key(x: &u64) -> u64 {
    *x
}

fn coalesce_key(x: &u64) -> Option<u64> {
    Some(*x)
}

fn herd(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("herd_success");
    case!(g, rt, "baseline", inner());

    case!(
        g,
        rt,
        "coalesce/rebound",
        CoalesceLayer::new(Coalescer::new(), coalesce_key).layer(inner())
    );
    case!(
        g,
        rt,
        "coalesce/tower_resilience",
        tower_resilience::coalesce::CoalesceLayer::new(key).layer(clone_err_inner())
    );

    let hour = Duration::from_secs(3600);
    let cache: StaleCache<u64, u64> =
        StaleCache::new(hour).with_freshness(Freshness::builder(hour).build().unwrap());
    case!(
        g,
        rt,
        "cache_hit/rebound",
        StaleCacheLayer::new(Fallback::default(), cache, key).layer(inner())
    );
    case!(
        g,
        rt,
        "cache_hit/tower_resilience",
        tower_resilience::cache::CacheLayer::builder()
            .max_size(10_000)
            .ttl(hour)
            .key_extractor(key)
            .build()
            .unwrap()
            .layer(inner())
    );
    g.finish();
}

criterion_group!(benches, herd);
criterion_main!(benches);
