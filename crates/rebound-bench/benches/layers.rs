//! Per-layer overhead on the success path: rebound's tower layers against
//! the matching tower and tower-resilience layers, in one criterion run.
//!
//! ```sh
//! cargo bench -p rebound-bench --bench layers -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Every case wraps the same inner service (`service_fn` answering at once)
//! in one layer, clones the service, waits until ready and makes one call,
//! on a current-thread tokio runtime; `baseline` is the bare service, so a
//! layer's overhead is its figure minus the baseline's.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rebound::tower::{
    breaker::BreakerLayer, bulkhead::BulkheadLayer, fallback::FallbackLayer, hedge::HedgeLayer,
    retry::RetryLayer, throttle::ThrottleLayer, timeout::TimeoutLayer, BoxError,
};
use tower::{Layer, Service, ServiceExt};

type Inner = tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, BoxError>>>;

fn inner() -> Inner {
    fn answer(x: u64) -> std::future::Ready<Result<u64, BoxError>> {
        std::future::ready(Ok(x))
    }
    tower::service_fn(answer as fn(u64) -> _)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

macro_rules! case {
    ($g:expr, $rt:expr, $name:expr, $svc:expr) => {{
        let svc = $svc;
        $g.bench_function($name, |b| {
            b.to_async(&$rt).iter(|| {
                let mut svc = svc.clone();
                async move { black_box(svc.ready().await.unwrap().call(black_box(1)).await.is_ok()) }
            })
        });
    }};
}

#[derive(Clone)]
struct Attempts(usize);

impl tower::retry::Policy<u64, u64, BoxError> for Attempts {
    type Future = std::future::Ready<()>;
    fn retry(&mut self, _: &mut u64, r: &mut Result<u64, BoxError>) -> Option<Self::Future> {
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

fn layers(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("layer_success");
    case!(g, rt, "baseline", inner());

    // timeout
    case!(
        g,
        rt,
        "timeout/rebound",
        TimeoutLayer::new(Duration::from_secs(1))
            .unwrap()
            .layer(inner())
    );
    case!(
        g,
        rt,
        "timeout/tower",
        tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(inner())
    );
    case!(
        g,
        rt,
        "timeout/tower_resilience",
        tower_resilience::timelimiter::TimeLimiterLayer::builder()
            .timeout_duration(Duration::from_secs(1))
            .build()
            .layer(inner())
    );

    // retry
    let policy = rebound::RetryPolicy::builder()
        .max_attempts(3)
        .build()
        .unwrap();
    case!(
        g,
        rt,
        "retry/rebound",
        RetryLayer::new(policy).layer(inner())
    );
    case!(
        g,
        rt,
        "retry/tower",
        tower::retry::RetryLayer::new(Attempts(3)).layer(inner())
    );
    case!(
        g,
        rt,
        "retry/tower_resilience",
        tower_resilience::retry::RetryLayer::<u64, u64, BoxError>::builder()
            .max_attempts(3)
            .build()
            .layer(inner())
    );

    // circuit breaker
    let cb = rebound::CircuitBreaker::builder().build().unwrap();
    case!(
        g,
        rt,
        "breaker/rebound",
        BreakerLayer::new(cb).layer(inner())
    );
    case!(
        g,
        rt,
        "breaker/tower_resilience",
        tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
            .failure_rate_threshold(0.5)
            .sliding_window_size(100)
            .build()
            .unwrap()
            .layer(inner())
    );

    // bulkhead
    let bh = rebound::Bulkhead::builder()
        .max_concurrent(10)
        .build()
        .unwrap();
    case!(
        g,
        rt,
        "bulkhead/rebound",
        BulkheadLayer::new(bh).layer(inner())
    );
    case!(
        g,
        rt,
        "bulkhead/tower_resilience",
        tower_resilience::bulkhead::BulkheadLayer::builder()
            .max_concurrent_calls(10)
            .build()
            .unwrap()
            .layer(inner())
    );

    // rebound-only layers (no like-for-like peer in this run)
    let throttle = rebound::throttle::AdaptiveThrottle::builder()
        .build()
        .unwrap();
    case!(
        g,
        rt,
        "throttle/rebound",
        ThrottleLayer::new(throttle).layer(inner())
    );
    let hedge = rebound::hedge::HedgePolicy::builder()
        .fixed_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    case!(
        g,
        rt,
        "hedge/rebound",
        HedgeLayer::new(hedge, |_: &u64| true).layer(inner())
    );
    let fallback = FallbackLayer::new(
        rebound::fallback::Fallback::builder().build(),
        |_: rebound::fallback::Cause, e: BoxError| Err::<u64, _>(e),
    );
    case!(g, rt, "fallback/rebound", fallback.layer(inner()));
    let pipeline = rebound::pipeline::Pipeline::standard().build().unwrap();
    case!(
        g,
        rt,
        "pipeline_standard/rebound",
        pipeline.layer().layer(inner())
    );
    g.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
