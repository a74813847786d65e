//! Core I benchmarks: next delay, executor success path, budget check+record,
//! each against its peers in the same run.
//!
//! ```text
//! cargo bench -p rebound-bench --bench retry
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tower::{Service, ServiceExt};

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(20);

fn next_delay(c: &mut Criterion) {
    use backon::BackoffBuilder;
    use tower_resilience::retry::IntervalFunction;

    let mut g = c.benchmark_group("next_delay");

    // Each iteration computes the delay before the third retry from a fresh
    // per-call state (the work a retry loop does once per retry).
    let plain = rebound::Backoff::exponential(BASE)
        .with_max_delay(CAP)
        .with_jitter(rebound::Jitter::None);
    let full = plain.with_jitter(rebound::Jitter::Full);
    let mut rng = fastrand::Rng::with_seed(1);
    g.bench_function("rebound/no_jitter", |b| {
        b.iter(|| black_box(plain).capped(black_box(2)))
    });
    g.bench_function("rebound/full_jitter", |b| {
        b.iter(|| {
            let mut st = rebound::BackoffState::new();
            black_box(full).next_delay(&mut st, &mut rng)
        })
    });
    g.bench_function("rebound/decorrelated", |b| {
        let d = full.with_jitter(rebound::Jitter::Decorrelated);
        b.iter(|| {
            let mut st = rebound::BackoffState::new();
            black_box(d).next_delay(&mut st, &mut rng)
        })
    });

    let backon_plain = backon::ExponentialBuilder::new()
        .with_min_delay(BASE)
        .with_max_delay(CAP)
        .with_max_times(3);
    let backon_jitter = backon_plain.with_jitter();
    g.bench_function("backon/no_jitter", |b| {
        b.iter(|| black_box(backon_plain).build().next())
    });
    g.bench_function("backon/jitter", |b| {
        b.iter(|| black_box(backon_jitter).build().next())
    });

    let tr_plain = tower_resilience::retry::ExponentialBackoff::new(BASE).max_interval(CAP);
    let tr_random = tower_resilience::retry::ExponentialRandomBackoff::new(BASE, 0.5)
        .unwrap()
        .max_interval(CAP);
    g.bench_function("tower_resilience/no_jitter", |b| {
        b.iter(|| tr_plain.next_interval(black_box(2)))
    });
    g.bench_function("tower_resilience/random", |b| {
        b.iter(|| tr_random.next_interval(black_box(2)))
    });
    g.finish();
}

fn executor_success(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("executor_success");

    let policy = rebound::RetryPolicy::builder().build().unwrap();
    g.bench_function("rebound", |b| {
        b.to_async(&rt)
            .iter(|| async { policy.retry(|| async { Ok::<u64, ()>(black_box(1)) }).await })
    });
    let with_budget = rebound::RetryPolicy::builder()
        .budget(rebound::RetryBudget::ratio(0.1).build().unwrap())
        .build()
        .unwrap();
    g.bench_function("rebound/with_budget", |b| {
        b.to_async(&rt).iter(|| async {
            with_budget
                .retry(|| async { Ok::<u64, ()>(black_box(1)) })
                .await
        })
    });
    g.bench_function("rebound/blocking", |b| {
        b.iter(|| policy.retry_blocking(|| Ok::<u64, ()>(black_box(1))))
    });

    g.bench_function("backon", |b| {
        use backon::Retryable;
        let builder = backon::ExponentialBuilder::default();
        b.to_async(&rt).iter(|| async {
            (|| async { Ok::<u64, ()>(black_box(1)) })
                .retry(builder)
                .await
        })
    });

    #[derive(Clone)]
    struct Attempts(usize);
    impl tower::retry::Policy<u64, u64, ()> for Attempts {
        type Future = std::future::Ready<()>;
        fn retry(&mut self, _: &mut u64, r: &mut Result<u64, ()>) -> Option<Self::Future> {
            match r {
                Err(_) if self.0 > 1 => {
                    self.0 -= 1;
                    Some(std::future::ready(()))
                }
                _ => None,
            }
        }
        fn clone_request(&mut self, req: &u64) -> Option<u64> {
            Some(*req)
        }
    }
    let tower_svc = tower::ServiceBuilder::new()
        .retry(Attempts(3))
        .service_fn(|x: u64| async move { Ok::<u64, ()>(x) });
    g.bench_function("tower", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = tower_svc.clone();
            async move { svc.ready().await.unwrap().call(black_box(1)).await }
        })
    });

    let tr_layer = tower_resilience::retry::RetryLayer::<u64, u64, ()>::builder()
        .max_attempts(3)
        .exponential_backoff(BASE)
        .build();
    let tr_svc = tower::ServiceBuilder::new()
        .layer(tr_layer)
        .service_fn(|x: u64| async move { Ok::<u64, ()>(x) });
    g.bench_function("tower_resilience", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = tr_svc.clone();
            async move { svc.ready().await.unwrap().call(black_box(1)).await }
        })
    });
    g.finish();
}

fn budget(c: &mut Criterion) {
    use tower::retry::budget::Budget as _;
    let mut g = c.benchmark_group("budget_check_and_record");

    // One request recorded and one retry asked for: the budget's work per
    // retried call.
    let ratio = rebound::RetryBudget::ratio(0.2).build().unwrap();
    g.bench_function("rebound/ratio", |b| {
        b.iter(|| {
            ratio.record_request();
            black_box(ratio.try_withdraw())
        })
    });
    let bucket = rebound::RetryBudget::token_bucket(100.0, 0.1).unwrap();
    g.bench_function("rebound/token_bucket", |b| {
        b.iter(|| {
            bucket.record_success();
            black_box(bucket.try_withdraw())
        })
    });
    let tps = tower::retry::budget::TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    g.bench_function("tower/tps_budget", |b| {
        b.iter(|| {
            tps.deposit();
            black_box(tps.withdraw())
        })
    });
    let tr = tower_resilience::retry::RetryBudgetBuilder::new()
        .token_bucket()
        .tokens_per_second(10.0)
        .max_tokens(100)
        .build()
        .unwrap();
    g.bench_function("tower_resilience/token_bucket", |b| {
        b.iter(|| {
            tr.deposit();
            black_box(tr.try_withdraw())
        })
    });
    g.finish();
}

fn clock(c: &mut Criterion) {
    // What one read of the default clock costs. Run alone, this crate builds
    // tokio without `test-util`, as a production build does, so the system
    // clock is `std::time::Instant::now()` behind one branch.
    let mut g = c.benchmark_group("clock_read");
    let system = rebound::Clock::system();
    let (manual, _) = rebound::Clock::manual();
    g.bench_function("std_instant", |b| b.iter(std::time::Instant::now));
    g.bench_function("rebound_system", |b| b.iter(|| system.now()));
    g.bench_function("rebound_manual", |b| b.iter(|| manual.now()));
    g.finish();
}

criterion_group!(benches, next_delay, executor_success, budget, clock);
criterion_main!(benches);
