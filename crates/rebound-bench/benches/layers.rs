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

// `case_shared!` holds a `RefCell` borrow across the call's awaits: criterion
// runs the iterations one after another, so no two borrows overlap.
#![allow(clippy::await_holding_refcell_ref)]

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

/// An error that is `Clone`, for the tower-resilience layers that need one
/// (hedge, fallback).
#[derive(Debug, Clone)]
struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

type CloneErrInner = tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, Fail>>>;

/// [`inner`] with a `Clone` error.
fn clone_err_inner() -> CloneErrInner {
    fn answer(x: u64) -> std::future::Ready<Result<u64, Fail>> {
        std::future::ready(Ok(x))
    }
    tower::service_fn(answer as fn(u64) -> _)
}

/// tower's hedge policy: every request may be hedged.
#[derive(Clone)]
struct HedgeAll;

impl tower::hedge::Policy<u64> for HedgeAll {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }
    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Like `case!` for services that are not `Clone` (tower's `Hedge`): one
/// service, borrowed by each iteration. The layers compared with it use the
/// same form.
macro_rules! case_shared {
    ($g:expr, $rt:expr, $name:expr, $svc:expr) => {{
        let svc = std::cell::RefCell::new($svc);
        $g.bench_function($name, |b| {
            b.to_async(&$rt).iter(|| async {
                let mut svc = svc.borrow_mut();
                black_box(svc.ready().await.unwrap().call(black_box(1)).await.is_ok())
            })
        });
    }};
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

/// tower's retry policy with what rebound's default policy has and
/// [`Attempts`] lacks: an exponential backoff with jitter between attempts
/// (tower's own `ExponentialBackoff`, 100 ms to 20 s).
#[derive(Clone)]
struct Backoffs {
    attempts: usize,
    backoff: tower::retry::backoff::ExponentialBackoff,
}

impl Backoffs {
    fn new(attempts: usize) -> Self {
        use tower::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_millis(100),
            Duration::from_secs(20),
            1.0,
            tower::util::rng::HasherRng::default(),
        )
        .unwrap();
        Backoffs {
            attempts,
            backoff: maker.make_backoff(),
        }
    }
}

impl tower::retry::Policy<u64, u64, BoxError> for Backoffs {
    type Future = tokio::time::Sleep;
    fn retry(&mut self, _: &mut u64, r: &mut Result<u64, BoxError>) -> Option<Self::Future> {
        use tower::retry::backoff::Backoff as _;
        match r {
            Err(_) if self.attempts > 1 => {
                self.attempts -= 1;
                Some(self.backoff.next_backoff())
            }
            _ => None,
        }
    }
    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// tower's retry policy with a retry budget, the way tower's docs build one:
/// every response deposits, a retry withdraws.
#[derive(Clone)]
struct Budgeted {
    attempts: usize,
    budget: std::sync::Arc<tower::retry::budget::TpsBudget>,
}

impl tower::retry::Policy<u64, u64, BoxError> for Budgeted {
    type Future = std::future::Ready<()>;
    fn retry(&mut self, _: &mut u64, r: &mut Result<u64, BoxError>) -> Option<Self::Future> {
        use tower::retry::budget::Budget as _;
        match r {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts > 1 && self.budget.withdraw() => {
                self.attempts -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
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
        RetryLayer::new(policy.clone()).layer(inner())
    );
    // The same policy borrowed for the life of the program
    // (`RetryPolicy::leak`): a service clone or a call copies a pointer
    // instead of counting a reference.
    case!(
        g,
        rt,
        "retry/rebound_static",
        RetryLayer::new(policy.leak()).layer(inner())
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
        "retry/tower_backoff",
        tower::retry::RetryLayer::new(Backoffs::new(3)).layer(inner())
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

    // retry with a retry budget (every retry needs a budget)
    let budgeted = rebound::RetryPolicy::builder()
        .max_attempts(3)
        .budget(rebound::RetryBudget::ratio(0.2).build().unwrap())
        .build()
        .unwrap();
    case!(
        g,
        rt,
        "retry_budget/rebound",
        RetryLayer::new(budgeted).layer(inner())
    );
    case!(
        g,
        rt,
        "retry_budget/tower",
        tower::retry::RetryLayer::new(Budgeted {
            attempts: 3,
            budget: std::sync::Arc::new(tower::retry::budget::TpsBudget::new(
                Duration::from_secs(10),
                10,
                0.2
            )),
        })
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

    // hedge (not triggered: the answer comes before the hedge delay). One
    // shared service per case, as tower's `Hedge` is not `Clone`; the inner
    // service's error is `Clone`, as tower-resilience's hedge requires.
    let hedge = rebound::hedge::HedgePolicy::builder()
        .fixed_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    case_shared!(
        g,
        rt,
        "hedge/rebound",
        HedgeLayer::new(hedge, |_: &u64| true).layer(clone_err_inner())
    );
    case_shared!(
        g,
        rt,
        "hedge/tower",
        tower::hedge::Hedge::new::<u64>(
            clone_err_inner(),
            HedgeAll,
            10,
            0.9,
            Duration::from_secs(10)
        )
    );
    case_shared!(
        g,
        rt,
        "hedge/tower_resilience",
        tower_resilience::hedge::HedgeLayer::builder()
            .delay(Duration::from_millis(50))
            .max_hedged_attempts(2)
            .build()
            .layer(clone_err_inner())
    );

    // fallback (not triggered)
    let fallback = FallbackLayer::new(
        rebound::fallback::Fallback::builder().build(),
        |_: rebound::fallback::Cause, e: BoxError| Err::<u64, _>(e),
    );
    case!(g, rt, "fallback/rebound", fallback.layer(clone_err_inner()));
    case!(
        g,
        rt,
        "fallback/tower_resilience",
        tower_resilience::fallback::FallbackLayer::<u64, u64, Fail>::from_error(|_: &Fail| 0)
            .layer(clone_err_inner())
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
