//! The tower layers, stepped deterministically with tower-test mocks on
//! tokio's paused clock.
#![cfg(feature = "tower")]

use std::future::poll_fn;
use std::time::Duration;

use rebound::fallback::{Cause, Fallback};
use rebound::throttle::{AdaptiveThrottle, Throttled};
use rebound::tower::breaker::BreakerLayer;
use rebound::tower::bulkhead::BulkheadLayer;
use rebound::tower::fallback::FallbackLayer;
use rebound::tower::retry::{error::RetryFailed, RetryLayer};
use rebound::tower::throttle::ThrottleLayer;
use rebound::tower::timeout::{error::Elapsed, TimeoutLayer};
use rebound::tower::BoxError;
use rebound::{
    Backoff, BreakerOpen, Bulkhead, BulkheadFull, CircuitBreaker, Clock, RandomSource, RetryBudget,
    RetryPolicy, Stop,
};
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower_layer::Layer;
use tower_service::Service;
use tower_test::mock;

const MS: Duration = Duration::from_millis(1);

async fn ready<S: Service<R>, R>(svc: &mut S) -> Result<(), S::Error> {
    poll_fn(|cx| svc.poll_ready(cx)).await
}

fn io(msg: &str) -> BoxError {
    Box::new(std::io::Error::other(msg.to_string()))
}

#[tokio::test(start_paused = true)]
async fn timeout_passes_fast_calls_and_cuts_slow_ones() {
    let (mock, mut handle) = mock::pair::<u32, u32>();
    let mut svc = TimeoutLayer::new(100 * MS).unwrap().layer(mock);
    handle.allow(2);

    ready(&mut svc).await.unwrap();
    let mut fast = task::spawn(svc.call(1));
    assert_pending!(fast.poll());
    let (req, reply) = handle.next_request().await.unwrap();
    assert_eq!(req, 1);
    reply.send_response(10);
    assert_eq!(assert_ready_ok!(fast.poll()), 10);

    ready(&mut svc).await.unwrap();
    let slow = svc.call(2);
    let (_, reply) = handle.next_request().await.unwrap();
    let err = slow.await.unwrap_err();
    assert_eq!(err.downcast_ref::<Elapsed>().unwrap().after(), 100 * MS);
    drop(reply);
}

#[tokio::test(start_paused = true)]
async fn timeout_counts_cut_calls_under_the_dependency_label() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let (mock, mut handle) = mock::pair::<u32, u32>();
    let layer = TimeoutLayer::new(100 * MS)
        .unwrap()
        .dependency(String::from("inventory"));
    let mut svc = layer.layer(mock);
    handle.allow(1);
    ready(&mut svc).await.unwrap();
    let slow = svc.call(1);
    let (_, reply) = handle.next_request().await.unwrap();
    assert!(slow.await.unwrap_err().is::<Elapsed>());
    drop(reply);

    let v = snap.snapshot().into_vec();
    let (key, _, _, value) = v
        .iter()
        .find(|(k, ..)| k.key().name() == "dependency_timeout_total")
        .expect("counted");
    assert_eq!(value, &DebugValue::Counter(1));
    assert!(key
        .key()
        .labels()
        .any(|l| l.key() == "dependency" && l.value() == "inventory"));
}

#[tokio::test(start_paused = true)]
async fn retry_retries_errors_then_succeeds_with_backoff() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(50 * MS))
        .build()
        .unwrap();
    let (mock, mut handle) = mock::pair::<&str, &str>();
    let mut svc = RetryLayer::new(policy).layer(mock);
    handle.allow(3);
    ready(&mut svc).await.unwrap();
    let call = tokio::spawn(svc.call("GET"));
    let (_, reply) = handle.next_request().await.unwrap();
    let t0 = tokio::time::Instant::now();
    reply.send_error(io("reset"));
    // The retry waits its backoff before the second request.
    let (_, reply) = handle.next_request().await.unwrap();
    assert_eq!(tokio::time::Instant::now() - t0, 50 * MS);
    reply.send_response("ok");
    assert_eq!(call.await.unwrap().unwrap(), "ok");
}

#[tokio::test(start_paused = true)]
async fn retry_without_attempt_timeout_lets_a_slow_retry_run() {
    // After the backoff timer fires, a retry with no attempt timeout must
    // not be cut off however long it runs.
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::constant(50 * MS))
        .build()
        .unwrap();
    let (mock, mut handle) = mock::pair::<&str, &str>();
    let mut svc = RetryLayer::new(policy).layer(mock);
    handle.allow(2);
    ready(&mut svc).await.unwrap();
    let call = tokio::spawn(svc.call("GET"));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(io("reset"));
    let (_, reply) = handle.next_request().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!call.is_finished());
    reply.send_response("late");
    assert_eq!(call.await.unwrap().unwrap(), "late");
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_with_the_reason_and_last_error() {
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::constant(MS))
        .build()
        .unwrap();
    let (mock, mut handle) = mock::pair::<u8, u8>();
    let mut svc = RetryLayer::new(policy).layer(mock);
    handle.allow(2);
    ready(&mut svc).await.unwrap();
    let call = tokio::spawn(svc.call(7));
    for _ in 0..2 {
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(io("503"));
    }
    let err = call.await.unwrap().unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!(failed.stop(), Stop::AttemptsExhausted);
    assert_eq!(failed.attempts(), 2);
    assert_eq!(failed.last_error().unwrap().to_string(), "503");
}

#[tokio::test(start_paused = true)]
async fn retry_attempt_timeout_and_budget_come_from_the_policy() {
    let (clock, _time) = Clock::manual();
    let budget = RetryBudget::ratio(0.0)
        .min_retries_per_second(0.1)
        .window(Duration::from_secs(10))
        .clock(clock)
        .build()
        .unwrap(); // exactly one retry in the window
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .attempt_timeout(100 * MS)
        .backoff(Backoff::constant(MS))
        .budget(budget)
        .build()
        .unwrap();
    let (mock, mut handle) = mock::pair::<u8, u8>();
    let mut svc = RetryLayer::new(policy).layer(mock);
    handle.allow(10);
    ready(&mut svc).await.unwrap();
    let call = tokio::spawn(svc.call(1));
    // Two attempts (the budget allows one retry), each cut at 100 ms.
    let (_, a) = handle.next_request().await.unwrap();
    let (_, b) = handle.next_request().await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!(failed.stop(), Stop::BudgetExhausted);
    assert_eq!(failed.attempts(), 2);
    assert!(failed.timed_out());
    drop((a, b));
}

#[tokio::test(start_paused = true)]
async fn retry_stops_at_once_on_a_breaker_refusal_below() {
    let cb = CircuitBreaker::consecutive_failures(1).build().unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .backoff(Backoff::constant(MS))
        .build()
        .unwrap();
    let (mock, mut handle) = mock::pair::<u8, u8>();
    let mut svc = RetryLayer::new(policy).layer(BreakerLayer::new(cb.clone()).layer(mock));
    handle.allow(5);
    ready(&mut svc).await.unwrap();
    let call = tokio::spawn(svc.call(1));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(io("reset"));
    let err = call.await.unwrap().unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!(failed.stop(), Stop::BreakerOpen);
    assert_eq!(
        failed.attempts(),
        2,
        "the second attempt was refused by the breaker"
    );
    assert!(failed.last_error().unwrap().is::<BreakerOpen>());
}

#[tokio::test]
async fn breaker_layer_records_outcomes_and_fails_fast() {
    let cb = CircuitBreaker::consecutive_failures(2).build().unwrap();
    let (mock, mut handle) = mock::pair::<u8, u8>();
    let mut svc = BreakerLayer::new(cb.clone()).layer(mock);
    handle.allow(3);
    for _ in 0..2 {
        ready(&mut svc).await.unwrap();
        let call = svc.call(1);
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(io("503"));
        assert!(call.await.is_err());
    }
    assert_eq!(cb.state(), rebound::breaker::State::Open);
    ready(&mut svc).await.unwrap();
    let err = svc.call(1).await.unwrap_err();
    assert!(err.is::<BreakerOpen>());
    // The refused call never reached the service.
    assert!(tokio_test::task::spawn(handle.next_request())
        .poll()
        .is_pending());
}

#[tokio::test]
async fn breaker_layer_cancelled_probe_gives_its_slot_back() {
    let (clock, time) = Clock::manual();
    let cb = CircuitBreaker::consecutive_failures(1)
        .break_duration(Duration::from_secs(1))
        .clock(clock)
        .build()
        .unwrap();
    cb.try_acquire().unwrap().failure();
    time.advance(Duration::from_secs(1));
    let (mock, mut handle) = mock::pair::<u8, u8>();
    let mut svc = BreakerLayer::new(cb.clone()).layer(mock);
    handle.allow(2);
    ready(&mut svc).await.unwrap();
    let probe = svc.call(1);
    assert_eq!(cb.snapshot().probes_reserved, 1);
    drop(probe);
    assert_eq!(cb.snapshot().probes_reserved, 0);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_layer_holds_slots_while_calls_run_and_queues() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(1)
        .max_wait(100 * MS)
        .build()
        .unwrap();
    let (mock, mut handle) = mock::pair::<u8, u8>();
    let mut svc = BulkheadLayer::new(bulkhead.clone()).layer(mock);
    handle.allow(3);
    ready(&mut svc).await.unwrap();
    let first = tokio::spawn(svc.call(1));
    let (_, reply1) = handle.next_request().await.unwrap();
    assert_eq!(bulkhead.in_use(), 1);

    // The second queues, and gets the slot when the first finishes.
    ready(&mut svc).await.unwrap();
    let second = tokio::spawn(svc.call(2));
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.queued(), 1);
    reply1.send_response(1);
    assert_eq!(first.await.unwrap().unwrap(), 1);
    let (req, reply2) = handle.next_request().await.unwrap();
    assert_eq!(req, 2);

    // A third waits its 100 ms and is refused.
    ready(&mut svc).await.unwrap();
    let err = svc.call(3).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    reply2.send_response(2);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    assert_eq!(bulkhead.in_use(), 0);
}

#[tokio::test]
async fn throttle_layer_reports_accepts_and_rejects() {
    let (clock, _time) = Clock::manual();
    let throttle = AdaptiveThrottle::builder()
        .clock(clock)
        .random(RandomSource::seeded(3))
        .build()
        .unwrap();
    let (mock, mut handle) = mock::pair::<u8, u8>();
    let mut svc = ThrottleLayer::new(throttle.clone()).layer(mock);
    handle.allow(2);
    ready(&mut svc).await.unwrap();
    let ok = svc.call(1);
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(1);
    ok.await.unwrap();
    ready(&mut svc).await.unwrap();
    let bad = svc.call(2);
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(io("429"));
    bad.await.unwrap_err();
    assert_eq!(throttle.counts(), (2, 1));
}

/// The convergence test at the layer level: in steady overload,
/// attempts per accept converge to K (within 10 %), on a manual clock.
#[tokio::test]
async fn throttle_layer_converges_to_k_in_steady_overload() {
    let k = 2.0;
    let (clock, time) = Clock::manual();
    let throttle = AdaptiveThrottle::builder()
        .k(k)
        .window(Duration::from_secs(60))
        .clock(clock)
        .random(RandomSource::seeded(11))
        .build()
        .unwrap();
    // A backend that accepts `capacity` requests per second and rejects the rest.
    let capacity = 50u32;
    let demand = 4u32;
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let backend = {
        let served = served.clone();
        tower::service_fn(move |_: ()| {
            let ok = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < capacity;
            async move {
                if ok {
                    Ok::<_, BoxError>(())
                } else {
                    Err(io("overloaded"))
                }
            }
        })
    };
    let mut svc = ThrottleLayer::new(throttle).layer(backend);
    let (mut sent, mut accepted) = (0u64, 0u64);
    for second in 0..400 {
        served.store(0, std::sync::atomic::Ordering::Relaxed);
        for _ in 0..capacity * demand {
            time.advance(Duration::from_secs(1) / (capacity * demand));
            ready(&mut svc).await.unwrap();
            match svc.call(()).await {
                Ok(()) if second >= 200 => {
                    sent += 1;
                    accepted += 1;
                }
                Err(e) if second >= 200 && !e.is::<Throttled>() => sent += 1,
                _ => {}
            }
        }
    }
    let ratio = sent as f64 / accepted as f64;
    assert!(
        (ratio - k).abs() <= 0.1 * k,
        "{ratio:.3} attempts per accept"
    );
}

#[tokio::test]
async fn fallback_layer_answers_covered_causes_only() {
    let cb = CircuitBreaker::builder().build().unwrap();
    cb.isolate();
    let layer = FallbackLayer::new(
        Fallback::builder().only(&[Cause::BreakerOpen]).build(),
        |cause: Cause, _err: BoxError| {
            Ok::<_, BoxError>(format!("fallback for {}", cause.as_str()))
        },
    );
    let (mock, _handle) = mock::pair::<u8, String>();
    let mut svc = layer.layer(BreakerLayer::new(cb.clone()).layer(mock));
    assert_eq!(svc.call(1).await.unwrap(), "fallback for breaker_open");

    // A plain failure is not covered: the error passes.
    cb.reset();
    let (mock, mut handle) = mock::pair::<u8, String>();
    let layer = FallbackLayer::new(
        Fallback::builder().only(&[Cause::BreakerOpen]).build(),
        |_: Cause, _: BoxError| Ok::<_, BoxError>("never".to_string()),
    );
    let mut svc = layer.layer(mock);
    handle.allow(1);
    ready(&mut svc).await.unwrap();
    let call = svc.call(1);
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(io("500"));
    assert_eq!(call.await.unwrap_err().to_string(), "500");
}
