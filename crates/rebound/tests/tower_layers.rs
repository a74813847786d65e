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

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    metrics_util::debugging::DebugValue,
)>;

/// Takes the recorder's snapshot once (reading resets its counters).
fn take(snap: &metrics_util::debugging::Snapshotter) -> Snapshot {
    snap.snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect()
}

/// The sum of counter `name` over the series carrying all of `labels`.
fn counter(snap: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    snap.iter()
        .filter(|(k, _)| k.key().name() == name)
        .filter(|(k, _)| {
            labels
                .iter()
                .all(|(l, v)| k.key().labels().any(|x| x.key() == *l && x.value() == *v))
        })
        .map(|(_, v)| match v {
            metrics_util::debugging::DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

/// What a scripted service answers, in order: a value, an error, or
/// (`None`) nothing ever.
type Script = Vec<Option<Result<u16, &'static str>>>;

/// A service answering from a script, at once; `None` never answers.
fn scripted(
    script: Script,
) -> impl Service<(), Response = u16, Error = BoxError, Future = BoxFuture<u16>> + Clone {
    let script = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
        script,
    )));
    tower::service_fn(move |()| {
        let next = script.lock().unwrap().pop_front().expect("scripted");
        let fut: BoxFuture<u16> = match next {
            Some(Ok(v)) => Box::pin(std::future::ready(Ok(v))),
            Some(Err(e)) => Box::pin(std::future::ready(Err(io(e)))),
            None => Box::pin(std::future::pending()),
        };
        fut
    })
}

type BoxFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BoxError>> + Send>>;

#[tokio::test(start_paused = true)]
async fn timeout_labels_literal_and_run_time_names_alike() {
    use rebound::timeout::DependencyName;
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let names: [DependencyName; 4] = [
        "inventory".into(),
        String::from("payments").into(),
        std::sync::Arc::<str>::from("search").into(),
        DependencyName::default(),
    ];
    for name in names {
        let layer = TimeoutLayer::new(100 * MS).unwrap().dependency(name);
        let mut svc = layer.layer(scripted(vec![None]));
        ready(&mut svc).await.unwrap();
        let err = svc.call(()).await.unwrap_err();
        assert_eq!(err.downcast_ref::<Elapsed>().unwrap().after(), 100 * MS);
    }
    // The closure API's timeout takes the same names.
    let t = rebound::Timeout::new(50 * MS)
        .unwrap()
        .dependency("inventory");
    assert!(t.run(std::future::pending::<()>()).await.is_err());

    let s = take(&snap);
    let timeouts = |dep| counter(&s, "dependency_timeout_total", &[("dependency", dep)]);
    assert_eq!(timeouts("inventory"), 2);
    assert_eq!(timeouts("payments"), 1);
    assert_eq!(timeouts("search"), 1);
    assert_eq!(timeouts("default"), 1);
}

#[tokio::test(start_paused = true)]
async fn timeout_limit_runs_from_the_call_not_the_first_poll() {
    let (mock, mut handle) = mock::pair::<u32, u32>();
    let mut svc = TimeoutLayer::new(100 * MS).unwrap().layer(mock);
    handle.allow(3);

    // Called at t0, first polled at t0 + 60 ms: cut at t0 + 100 ms.
    ready(&mut svc).await.unwrap();
    let t0 = tokio::time::Instant::now();
    let late = svc.call(1);
    let (_, reply) = handle.next_request().await.unwrap();
    tokio::time::advance(60 * MS).await;
    assert!(late.await.unwrap_err().is::<Elapsed>());
    assert_eq!(tokio::time::Instant::now() - t0, 100 * MS);
    drop(reply);

    // First polled after its deadline while still pending: cut at once.
    ready(&mut svc).await.unwrap();
    let expired = svc.call(2);
    let (_, reply) = handle.next_request().await.unwrap();
    tokio::time::advance(150 * MS).await;
    let mut expired = task::spawn(expired);
    let err = match expired.poll() {
        std::task::Poll::Ready(r) => r.unwrap_err(),
        std::task::Poll::Pending => panic!("past its deadline"),
    };
    assert_eq!(err.downcast_ref::<Elapsed>().unwrap().after(), 100 * MS);
    drop(reply);

    // Answered before its first poll, even past the deadline: the answer.
    ready(&mut svc).await.unwrap();
    let answered = svc.call(3);
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(30);
    tokio::time::advance(150 * MS).await;
    assert_eq!(answered.await.unwrap(), 30);
}

#[tokio::test(start_paused = true)]
async fn retry_classifies_each_outcome_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let classifier = {
        let asked = asked.clone();
        move |o: rebound::Outcome<'_, u16, BoxError>| {
            asked.fetch_add(1, Ordering::Relaxed);
            match o {
                rebound::Outcome::Ok(503) | rebound::Outcome::Err(_) => rebound::Decision::Retry,
                rebound::Outcome::Timeout(_) => rebound::Decision::Retry,
                rebound::Outcome::Ok(_) => rebound::Decision::DoNotRetry,
            }
        }
    };
    let plain = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(MS))
        .build()
        .unwrap();
    // Guarded: its state is made before the first attempt.
    let guarded = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(MS))
        .breaker(CircuitBreaker::builder().build().unwrap())
        .build()
        .unwrap();
    for policy in [plain, guarded] {
        let layer = RetryLayer::new(policy).classify(classifier.clone());
        let cases: [(Script, u16, usize); 3] = [
            (vec![Some(Ok(200))], 200, 1),
            (vec![Some(Ok(503)), Some(Ok(200))], 200, 2),
            (
                vec![Some(Err("reset")), Some(Ok(503)), Some(Ok(201))],
                201,
                3,
            ),
        ];
        for (script, answer, classified) in cases {
            asked.store(0, Ordering::Relaxed);
            let mut svc = layer.layer(scripted(script));
            ready(&mut svc).await.unwrap();
            assert_eq!(svc.call(()).await.unwrap(), answer);
            assert_eq!(asked.load(Ordering::Relaxed), classified);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_layer_counts_retries_and_give_ups_under_the_dependency() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let policy = RetryPolicy::builder()
        .dependency("inventory")
        .max_attempts(2)
        .backoff(Backoff::constant(MS))
        .build()
        .unwrap();
    let layer = RetryLayer::new(policy);

    // A success at once counts nothing.
    let mut svc = layer.layer(scripted(vec![Some(Ok(200))]));
    ready(&mut svc).await.unwrap();
    assert_eq!(svc.call(()).await.unwrap(), 200);
    assert!(take(&snap)
        .iter()
        .all(|(_, v)| v == &metrics_util::debugging::DebugValue::Counter(0)));

    // One retry, then a success.
    let mut svc = layer.layer(scripted(vec![Some(Err("reset")), Some(Ok(200))]));
    ready(&mut svc).await.unwrap();
    assert_eq!(svc.call(()).await.unwrap(), 200);
    // One retry, then given up.
    let mut svc = layer.layer(scripted(vec![Some(Err("reset")), Some(Err("503"))]));
    ready(&mut svc).await.unwrap();
    let err = svc.call(()).await.unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!(
        (failed.stop(), failed.attempts()),
        (Stop::AttemptsExhausted, 2)
    );
    assert_eq!(failed.last_error().unwrap().to_string(), "503");

    // A breaker below refuses the first attempt: stopped at once.
    let cb = CircuitBreaker::builder().build().unwrap();
    cb.isolate();
    let mut svc = layer.layer(BreakerLayer::new(cb).layer(scripted(vec![])));
    ready(&mut svc).await.unwrap();
    let err = svc.call(()).await.unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!((failed.stop(), failed.attempts()), (Stop::BreakerOpen, 1));

    let s = take(&snap);
    let dep = ("dependency", "inventory");
    assert_eq!(counter(&s, "retry_attempts_total", &[dep]), 2);
    assert_eq!(
        counter(&s, "retry_exhausted_total", &[dep, ("reason", "attempts")]),
        1
    );
    assert_eq!(
        counter(
            &s,
            "retry_exhausted_total",
            &[dep, ("reason", "breaker_open")]
        ),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn retry_attempt_timeout_without_other_guards_cuts_and_retries() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let policy = RetryPolicy::builder()
        .dependency("inventory")
        .max_attempts(2)
        .attempt_timeout(100 * MS)
        .backoff(Backoff::constant(10 * MS))
        .build()
        .unwrap();
    let layer = RetryLayer::new(policy);

    // Cut at 100 ms, retried after 10 ms, answered at once.
    let mut svc = layer.layer(scripted(vec![None, Some(Ok(200))]));
    ready(&mut svc).await.unwrap();
    let t0 = tokio::time::Instant::now();
    assert_eq!(svc.call(()).await.unwrap(), 200);
    assert_eq!(tokio::time::Instant::now() - t0, 110 * MS);

    // Both attempts cut: the last failure is the timeout.
    let mut svc = layer.layer(scripted(vec![None, None]));
    ready(&mut svc).await.unwrap();
    let err = svc.call(()).await.unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!(
        (failed.stop(), failed.attempts()),
        (Stop::AttemptsExhausted, 2)
    );
    assert!(failed.timed_out());
    let elapsed = failed
        .last_error()
        .unwrap()
        .downcast_ref::<Elapsed>()
        .unwrap();
    assert_eq!(elapsed.after(), 100 * MS);

    let s = take(&snap);
    let dep = ("dependency", "inventory");
    assert_eq!(counter(&s, "dependency_timeout_total", &[dep]), 3);
    assert_eq!(counter(&s, "retry_attempts_total", &[dep]), 2);
}

#[tokio::test]
async fn retry_with_a_breaker_in_its_policy_records_every_attempt() {
    let cb = CircuitBreaker::consecutive_failures(2).build().unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(1)
        .breaker(cb.clone())
        .build()
        .unwrap();
    let layer = RetryLayer::new(policy);
    let script = vec![
        Some(Err("503")),
        Some(Ok(200)), // resets the run of failures
        Some(Err("503")),
        Some(Err("503")), // the second in a row: opens
    ];
    let mut svc = layer.layer(scripted(script));
    let mut results = Vec::new();
    for _ in 0..4 {
        ready(&mut svc).await.unwrap();
        results.push(svc.call(()).await.is_ok());
        if results.len() == 3 {
            assert_eq!(cb.state(), rebound::breaker::State::Closed);
        }
    }
    assert_eq!(results, [false, true, false, false]);
    assert_eq!(cb.state(), rebound::breaker::State::Open);

    // Refused before any attempt.
    ready(&mut svc).await.unwrap();
    let err = svc.call(()).await.unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!((failed.stop(), failed.attempts()), (Stop::BreakerOpen, 0));
}
