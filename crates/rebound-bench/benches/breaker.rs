//! Circuit breaker and bulkhead hot paths, against failsafe, recloser and
//! tower-resilience, in one criterion run:
//!
//! ```sh
//! cargo bench -p rebound-bench --bench breaker -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! * `breaker_closed/*`: one admitted call recorded as a success, in the
//!   closed state, single-threaded.
//! * `breaker_closed_2_threads/*`: two threads hammer one breaker; the time
//!   reported is wall time divided by the calls of both threads, so a figure
//!   at or below the single-threaded one means the breaker's throughput did
//!   not drop under contention.
//! * `breaker_async/*`: the same call through an async API (rebound's
//!   `call_async` and a tower-resilience `Service`), on a current-thread
//!   tokio runtime.
//! * `bulkhead/*`: taking and freeing one slot.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use failsafe::CircuitBreaker as _;
use rebound::{Bulkhead, CircuitBreaker};
use tower::{Layer, Service, ServiceExt};

fn rebound_count() -> CircuitBreaker {
    CircuitBreaker::builder().build().unwrap()
}

fn rebound_time() -> CircuitBreaker {
    CircuitBreaker::builder()
        .time_window(Duration::from_secs(10), 10)
        .build()
        .unwrap()
}

fn closed(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_closed");
    let cb = rebound_count();
    g.bench_function("rebound_count_window", |b| {
        b.iter(|| black_box(&cb).try_acquire().unwrap().success())
    });
    let cb = rebound_time();
    g.bench_function("rebound_time_window", |b| {
        b.iter(|| black_box(&cb).try_acquire().unwrap().success())
    });
    let cb = rebound_count();
    g.bench_function("rebound_call", |b| {
        b.iter(|| black_box(&cb).call(|| Ok::<_, ()>(black_box(1))))
    });
    let fs = failsafe::Config::new().build();
    g.bench_function("failsafe", |b| {
        b.iter(|| black_box(&fs).call(|| Ok::<_, ()>(black_box(1))))
    });
    let rc = recloser::Recloser::default();
    g.bench_function("recloser", |b| {
        b.iter(|| black_box(&rc).call(|| Ok::<_, ()>(black_box(1))))
    });
    g.finish();
}

/// Runs `op` `iters` times on each of two threads; returns wall time per
/// call of both threads.
fn two_threads(iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters {
                    op();
                }
            });
        }
    });
    start.elapsed() / 2
}

fn closed_two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_closed_2_threads");
    let cb = rebound_count();
    g.bench_function("rebound_count_window", |b| {
        b.iter_custom(|n| two_threads(n, &|| cb.try_acquire().unwrap().success()))
    });
    let cb = rebound_time();
    g.bench_function("rebound_time_window", |b| {
        b.iter_custom(|n| two_threads(n, &|| cb.try_acquire().unwrap().success()))
    });
    let fs = failsafe::Config::new().build();
    g.bench_function("failsafe", |b| {
        b.iter_custom(|n| {
            two_threads(n, &|| {
                let _ = black_box(fs.call(|| Ok::<_, ()>(1)));
            })
        })
    });
    let rc = recloser::Recloser::default();
    g.bench_function("recloser", |b| {
        b.iter_custom(|n| {
            two_threads(n, &|| {
                let _ = black_box(rc.call(|| Ok::<_, ()>(1)));
            })
        })
    });
    g.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn closed_async(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("breaker_async");
    let cb = rebound_count();
    g.bench_function("rebound_call_async", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cb.call_async(async { Ok::<_, ()>(1) }).await) })
    });
    let layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|x: u32| async move { Ok::<_, ()>(x) }));
    g.bench_function("tower_resilience", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = svc.clone();
            async move { black_box(svc.ready().await.unwrap().call(1).await) }
        })
    });
    g.finish();
}

fn bulkhead(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("bulkhead");
    let bh = Bulkhead::builder().max_concurrent(10).build().unwrap();
    g.bench_function("rebound_try_acquire", |b| {
        b.iter(|| drop(black_box(&bh).try_acquire().unwrap()))
    });
    g.bench_function("rebound_acquire_async", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(black_box(&bh).acquire().await.unwrap()) })
    });
    let layer = tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(10)
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|x: u32| async move { Ok::<_, ()>(x) }));
    g.bench_function("tower_resilience", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = svc.clone();
            async move { black_box(svc.ready().await.unwrap().call(1).await) }
        })
    });
    g.finish();
}

criterion_group!(benches, closed, closed_two_threads, closed_async, bulkhead);
criterion_main!(benches);
