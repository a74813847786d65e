//! Circuit breaker behaviour, on a manual clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound::breaker::{BreakGrowth, CallOutcome, State, TransitionCause};
use rebound::{CircuitBreaker, CircuitBreakerBuilder, Clock, ManualClock, RandomSource};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn manual(b: CircuitBreakerBuilder) -> (CircuitBreaker, ManualClock) {
    let (clock, time) = Clock::manual();
    (b.clock(clock).build().unwrap(), time)
}

fn ok(cb: &CircuitBreaker) {
    cb.try_acquire().expect("admitted").success();
}

fn fail(cb: &CircuitBreaker) {
    cb.try_acquire().expect("admitted").failure();
}

#[test]
fn opens_on_failure_ratio_once_min_calls_are_in() {
    let (cb, _) = manual(
        CircuitBreaker::builder()
            .failure_ratio(0.5)
            .min_calls(4)
            .count_window(10),
    );
    fail(&cb);
    fail(&cb);
    fail(&cb);
    assert_eq!(cb.state(), State::Closed, "3 calls < min_calls");
    ok(&cb);
    assert_eq!(cb.state(), State::Closed, "a success never opens");
    fail(&cb);
    assert_eq!(cb.state(), State::Open, "4 of 5 failed");
    let refused = cb.try_acquire().unwrap_err();
    assert_eq!(refused.state(), State::Open);
    assert_eq!(refused.retry_in(), Some(secs(30)));
}

#[test]
fn below_the_ratio_stays_closed_and_the_window_forgets() {
    let (cb, _) = manual(
        CircuitBreaker::builder()
            .failure_ratio(0.5)
            .min_calls(4)
            .count_window(4),
    );
    for _ in 0..100 {
        fail(&cb);
        ok(&cb);
        ok(&cb);
        ok(&cb);
    }
    assert_eq!(cb.state(), State::Closed);
    let s = cb.snapshot();
    assert_eq!(s.calls, 4);
    assert_eq!(s.failures, 1);
}

#[test]
fn time_window_forgets_old_failures() {
    let (cb, time) = manual(
        CircuitBreaker::builder()
            .failure_ratio(0.5)
            .min_calls(4)
            .time_window(secs(10), 10),
    );
    fail(&cb);
    fail(&cb);
    fail(&cb);
    time.advance(secs(11));
    fail(&cb);
    assert_eq!(cb.snapshot().calls, 1, "the first three slid out");
    assert_eq!(cb.state(), State::Closed);
    ok(&cb);
    fail(&cb);
    fail(&cb);
    assert_eq!(cb.state(), State::Open, "3 of 4 within 10 s");
}

#[test]
fn slow_calls_open_the_breaker() {
    let (cb, time) = manual(
        CircuitBreaker::builder()
            .min_calls(4)
            .count_window(4)
            .slow_call_duration(secs(2))
            .slow_call_ratio(0.75),
    );
    for i in 0..4 {
        let p = cb.try_acquire().unwrap();
        if i > 0 {
            time.advance(secs(2)); // exactly the threshold counts as slow
        }
        p.success();
    }
    assert_eq!(cb.state(), State::Open);
    let t = cb.snapshot();
    assert_eq!(t.state, State::Open);
}

#[test]
fn caller_measured_durations_count_too() {
    let (cb, _) = manual(
        CircuitBreaker::builder()
            .min_calls(2)
            .count_window(2)
            .slow_call_duration(Duration::from_millis(500))
            .slow_call_ratio(1.0),
    );
    let p = cb.try_acquire().unwrap();
    p.record_elapsed(CallOutcome::Success, Duration::from_millis(600));
    assert_eq!(cb.snapshot().slow_calls, 1);
    let p = cb.try_acquire().unwrap();
    p.record_elapsed(CallOutcome::Success, Duration::from_millis(100));
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn consecutive_failures_mode() {
    let (cb, _) = manual(CircuitBreaker::consecutive_failures(3));
    fail(&cb);
    fail(&cb);
    ok(&cb);
    fail(&cb);
    fail(&cb);
    assert_eq!(cb.state(), State::Closed, "the success broke the run");
    fail(&cb);
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn half_open_admits_exactly_the_probes_and_closes_after_them() {
    let (cb, time) = manual(
        CircuitBreaker::builder()
            .min_calls(1)
            .count_window(1)
            .half_open_probes(2),
    );
    fail(&cb);
    assert_eq!(cb.state(), State::Open);
    time.advance(secs(29));
    assert!(cb.try_acquire().is_err());
    time.advance(secs(1));
    let a = cb.try_acquire().unwrap();
    let b = cb.try_acquire().unwrap();
    assert!(a.is_probe() && b.is_probe());
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(cb.try_acquire().unwrap_err().state(), State::HalfOpen);
    a.success();
    assert_eq!(cb.state(), State::HalfOpen);
    assert!(
        cb.try_acquire().is_err(),
        "a succeeded probe keeps its slot"
    );
    b.success();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.snapshot().calls, 0, "closed with an empty window");
}

#[test]
fn a_failed_probe_reopens() {
    let (cb, time) = manual(CircuitBreaker::builder().min_calls(1).count_window(1));
    fail(&cb);
    time.advance(secs(30));
    fail(&cb);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.snapshot().open_for, Some(secs(30)));
}

#[test]
fn a_slow_probe_reopens() {
    let (cb, time) = manual(
        CircuitBreaker::builder()
            .min_calls(1)
            .count_window(1)
            .slow_call_duration(secs(1)),
    );
    fail(&cb);
    time.advance(secs(30));
    let p = cb.try_acquire().unwrap();
    time.advance(secs(1));
    p.success();
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn a_cancelled_probe_gives_its_slot_back() {
    let (cb, time) = manual(CircuitBreaker::builder().min_calls(1).count_window(1));
    fail(&cb);
    time.advance(secs(30));
    let probe = cb.try_acquire().unwrap();
    assert!(cb.try_acquire().is_err());
    drop(probe); // the future holding it was cancelled
    assert_eq!(cb.state(), State::HalfOpen);
    let again = cb.try_acquire().expect("the slot came back");
    again.success();
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn stale_outcomes_are_ignored() {
    let (cb, time) = manual(CircuitBreaker::builder().min_calls(2).count_window(2));
    // Admitted while closed, reported after the breaker opened and closed.
    let old_failure = cb.try_acquire().unwrap();
    let old_success = cb.try_acquire().unwrap();
    fail(&cb);
    fail(&cb);
    assert_eq!(cb.state(), State::Open);
    time.advance(secs(30));
    let probe = cb.try_acquire().unwrap();
    old_failure.failure();
    assert_eq!(
        cb.state(),
        State::HalfOpen,
        "a stale failure does not reopen"
    );
    probe.success();
    assert_eq!(cb.state(), State::Closed);
    old_success.success();
    assert_eq!(cb.snapshot().calls, 0, "nor is a stale success counted");

    // A probe of an old half-open period cannot free a slot of a new one.
    fail(&cb);
    fail(&cb);
    time.advance(secs(30));
    let stale_probe = cb.try_acquire().unwrap();
    cb.isolate();
    cb.reset();
    fail(&cb);
    fail(&cb);
    time.advance(secs(30));
    let probe = cb.try_acquire().unwrap();
    drop(stale_probe);
    assert!(cb.try_acquire().is_err(), "still one probe in flight");
    drop(probe);
}

#[test]
fn break_duration_grows_and_resets_on_close() {
    let (cb, time) = manual(
        CircuitBreaker::builder()
            .min_calls(1)
            .count_window(1)
            .break_duration(secs(10))
            .break_growth(BreakGrowth::Linear)
            .max_break_duration(secs(25)),
    );
    fail(&cb);
    let mut seen = vec![cb.snapshot().open_for.unwrap()];
    for _ in 0..3 {
        time.advance(seen[seen.len() - 1]);
        fail(&cb); // the probe fails
        seen.push(cb.snapshot().open_for.unwrap());
    }
    assert_eq!(seen, [secs(10), secs(20), secs(25), secs(25)]);
    time.advance(secs(25));
    ok(&cb);
    fail(&cb);
    assert_eq!(
        cb.snapshot().open_for,
        Some(secs(10)),
        "closing reset the growth"
    );
}

#[test]
fn exponential_growth() {
    let (cb, time) = manual(
        CircuitBreaker::builder()
            .min_calls(1)
            .count_window(1)
            .break_duration(secs(1))
            .break_growth(BreakGrowth::Exponential(3.0)),
    );
    fail(&cb);
    let mut seen = vec![cb.snapshot().open_for.unwrap()];
    for _ in 0..3 {
        time.advance(seen[seen.len() - 1]);
        fail(&cb);
        seen.push(cb.snapshot().open_for.unwrap());
    }
    assert_eq!(
        seen,
        [secs(1), secs(3), secs(9), secs(10)],
        "capped at 10 × base"
    );
}

#[test]
fn jitter_stays_in_bounds_and_is_reproducible() {
    let run = |seed| {
        let (cb, time) = manual(
            CircuitBreaker::builder()
                .min_calls(1)
                .count_window(1)
                .break_duration(secs(100))
                .break_jitter(0.2)
                .random(RandomSource::seeded(seed)),
        );
        let mut out = Vec::new();
        for _ in 0..20 {
            fail(&cb);
            let d = cb.snapshot().open_for.unwrap();
            assert!(d >= secs(80) && d <= secs(120), "{d:?}");
            out.push(d);
            time.advance(d);
            ok(&cb); // probe closes
        }
        out
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert!(a.iter().any(|d| *d != a[0]), "jitter varies");
}

#[test]
fn isolate_disable_reset() {
    let (cb, _) = manual(CircuitBreaker::builder().min_calls(1).count_window(1));
    cb.isolate();
    assert_eq!(cb.state(), State::Isolated);
    assert_eq!(cb.try_acquire().unwrap_err().state(), State::Isolated);
    cb.disable();
    assert_eq!(cb.state(), State::Disabled);
    for _ in 0..10 {
        fail(&cb);
    }
    assert_eq!(cb.state(), State::Disabled, "nothing recorded");
    cb.reset();
    assert_eq!(cb.state(), State::Closed);
    fail(&cb);
    assert_eq!(cb.state(), State::Open);
    cb.reset();
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn callbacks_see_every_transition_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let (cb, time) = manual(
        CircuitBreaker::builder()
            .min_calls(1)
            .count_window(1)
            .on_state_change(move |t| log.lock().unwrap().push((t.from(), t.to(), t.cause()))),
    );
    fail(&cb);
    time.advance(secs(30));
    ok(&cb);
    cb.isolate();
    cb.reset();
    use State::*;
    use TransitionCause::*;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Closed, Open, FailureRatio),
            (Open, HalfOpen, BreakElapsed),
            (HalfOpen, Closed, ProbesSucceeded),
            (Closed, Isolated, Manual),
            (Isolated, Closed, Manual),
        ]
    );
}

#[test]
fn callbacks_may_call_back_into_the_breaker() {
    let cell: Arc<Mutex<Option<CircuitBreaker>>> = Arc::new(Mutex::new(None));
    let c2 = Arc::clone(&cell);
    let cb = CircuitBreaker::consecutive_failures(1)
        .on_state_change(move |t| {
            if t.to() == State::Open {
                // e.g. escalate to isolation: must not deadlock.
                c2.lock().unwrap().as_ref().unwrap().isolate();
            }
        })
        .build()
        .unwrap();
    *cell.lock().unwrap() = Some(cb.clone());
    fail(&cb);
    assert_eq!(cb.state(), State::Isolated);
    cell.lock().unwrap().take();
}

#[test]
fn call_helpers() {
    let (cb, _) = manual(CircuitBreaker::consecutive_failures(2));
    assert_eq!(cb.call(|| Ok::<_, ()>(1)).unwrap(), 1);
    assert!(cb.call(|| Err::<(), _>("x")).is_err());
    assert!(cb.call(|| Err::<(), _>("x")).is_err());
    let e = cb.call(|| Ok::<_, ()>(1)).unwrap_err();
    assert!(e.is_rejected());
}

#[tokio::test(start_paused = true)]
async fn cancelled_async_probe_gives_its_slot_back() {
    let (cb, time) = manual(CircuitBreaker::builder().min_calls(1).count_window(1));
    fail(&cb);
    time.advance(secs(30));
    let never = cb.call_async(std::future::pending::<Result<(), ()>>());
    let cut = tokio::time::timeout(Duration::from_millis(10), never).await;
    assert!(cut.is_err(), "the probe's future was cancelled");
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(
        cb.call_async(async { Ok::<_, ()>(()) }).await.ok(),
        Some(())
    );
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn metrics_are_emitted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let (cb, _) = manual(CircuitBreaker::consecutive_failures(1).dependency("inventory"));
        fail(&cb);
        let _ = cb.try_acquire();
        let _ = cb.try_acquire();
    });
    let mut found = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let k = key.key();
        assert!(k
            .labels()
            .any(|l| l.key() == "dependency" && l.value() == "inventory"));
        found.insert(k.name().to_string(), value);
    }
    assert_eq!(
        found.get("circuit_breaker_open_total"),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        found.get("circuit_breaker_rejected_total"),
        Some(&DebugValue::Counter(2))
    );
    assert!(matches!(
        found.get("circuit_breaker_state"),
        Some(DebugValue::Gauge(g)) if g.into_inner() == 1.0
    ));
}
