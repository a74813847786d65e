//! Seed 001, "Circuit Breaker Integration", end to end on a manual clock:
//!
//! 1. First failure → retry with exponential backoff.
//! 2. Multiple failures → circuit breaker opens, all requests fail fast.
//! 3. After cooldown → circuit breaker half-opens, allows a probe request.
//! 4. Probe succeeds → circuit breaker closes, normal operation resumes.
//!
//! The dependency is scripted by time: healthy except for one blip at the
//! start and an outage from t = 1 s to t = 20 s. Every call it sees and
//! every breaker transition is asserted with its time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound::breaker::State::{self, *};
use rebound::{Backoff, CircuitBreaker, Clock, Jitter, ManualClock, RetryPolicy, Stop};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The inventory service: it records when it was called and answers by
/// the script.
struct Dependency {
    time: ManualClock,
    seen: Mutex<Vec<Duration>>,
}

impl Dependency {
    fn call(&self) -> Result<&'static str, &'static str> {
        let t = self.time.elapsed();
        let mut seen = self.seen.lock().unwrap();
        seen.push(t);
        let blip = seen.len() == 1;
        let outage = t >= ms(1_000) && t < ms(20_000);
        if blip || outage {
            Err("503 Service Unavailable")
        } else {
            Ok("reserved")
        }
    }

    fn seen(&self) -> Vec<Duration> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn seed_001_retry_and_breaker_story() {
    let (clock, time) = Clock::manual();
    let transitions: Arc<Mutex<Vec<(State, State, Duration)>>> = Arc::default();
    let log = Arc::clone(&transitions);
    let origin = time.origin();
    let breaker = CircuitBreaker::builder()
        .dependency("inventory")
        .failure_ratio(0.5)
        .min_calls(4)
        .count_window(10)
        .break_duration(Duration::from_secs(30))
        .half_open_probes(1)
        .clock(clock.clone())
        .on_state_change(move |t| {
            log.lock()
                .unwrap()
                .push((t.from(), t.to(), t.at() - origin))
        })
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .dependency("inventory")
        .max_attempts(3)
        .backoff(Backoff::exponential(ms(100)).with_jitter(Jitter::None))
        .breaker(breaker.clone())
        .clock(clock)
        .build()
        .unwrap();
    let inventory = Dependency {
        time: time.clone(),
        seen: Mutex::default(),
    };

    // 1. First failure → retry with exponential backoff (100 ms).
    let r = policy.run_blocking(|| inventory.call());
    assert_eq!((r.stop(), r.attempts()), (Stop::Succeeded, 2));
    assert_eq!(inventory.seen(), [ms(0), ms(100)]);
    assert_eq!(breaker.state(), Closed);

    // 2. The outage: failures pile up, the breaker opens mid-call (4 calls
    //    in the window, 3 failed) and the call stops at once instead of
    //    sleeping for a retry that would be refused.
    time.set_elapsed(ms(1_000));
    let r = policy.run_blocking(|| inventory.call());
    assert_eq!((r.stop(), r.attempts()), (Stop::BreakerOpen, 2));
    assert_eq!(
        time.elapsed(),
        ms(1_100),
        "no sleep after the breaker opened"
    );
    assert_eq!(breaker.state(), Open);

    //    All requests now fail fast, without touching the dependency.
    let calls_before = inventory.seen().len();
    for s in [2, 10, 31] {
        time.set_elapsed(Duration::from_secs(s));
        let e = policy.retry_blocking(|| inventory.call()).unwrap_err();
        assert_eq!((e.stop(), e.attempts()), (Stop::BreakerOpen, 0));
        assert!(e.last_failure().is_none());
    }
    assert_eq!(inventory.seen().len(), calls_before);

    // 3. After the cooldown (opened at 1.1 s + 30 s) the breaker half-opens
    //    and lets exactly one probe through; a second caller arriving while
    //    the probe is in flight is still refused.
    time.set_elapsed(ms(31_100));
    let mut concurrent = None;
    let r = policy.run_blocking(|| {
        concurrent = Some(
            policy
                .retry_blocking(|| inventory.call())
                .unwrap_err()
                .stop(),
        );
        inventory.call()
    });
    assert_eq!(concurrent, Some(Stop::BreakerOpen), "one probe at a time");

    // 4. The probe succeeds → the breaker closes; traffic resumes.
    assert_eq!((r.stop(), r.attempts()), (Stop::Succeeded, 1));
    assert_eq!(breaker.state(), Closed);
    time.set_elapsed(ms(32_000));
    assert_eq!(
        policy.retry_blocking(|| inventory.call()).unwrap(),
        "reserved"
    );

    assert_eq!(
        inventory.seen(),
        [ms(0), ms(100), ms(1_000), ms(1_100), ms(31_100), ms(32_000)],
        "every call the dependency saw"
    );
    assert_eq!(
        *transitions.lock().unwrap(),
        [
            (Closed, Open, ms(1_100)),
            (Open, HalfOpen, ms(31_100)),
            (HalfOpen, Closed, ms(31_100)),
        ],
        "every transition and its time"
    );
}

#[tokio::test(start_paused = true)]
async fn the_async_executor_tells_the_same_story() {
    let breaker = CircuitBreaker::consecutive_failures(2)
        .break_duration(Duration::from_secs(5))
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .backoff(Backoff::constant(ms(10)))
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let mut calls = 0;
    let e = policy
        .retry(|| {
            calls += 1;
            async { Err::<(), _>("reset") }
        })
        .await
        .unwrap_err();
    assert_eq!((e.stop(), e.attempts(), calls), (Stop::BreakerOpen, 2, 2));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ok = policy.retry(|| async { Ok::<_, ()>(1) }).await;
    assert_eq!(ok.unwrap(), 1);
    assert_eq!(breaker.state(), Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_retry_call_gives_the_probe_slot_back() {
    let breaker = CircuitBreaker::consecutive_failures(1)
        .break_duration(Duration::from_secs(5))
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let _ = policy.retry(|| async { Err::<(), _>("x") }).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hung = policy.retry(std::future::pending::<Result<(), ()>>);
    assert!(tokio::time::timeout(ms(50), hung).await.is_err());
    assert_eq!(breaker.state(), HalfOpen);
    assert!(policy.retry(|| async { Ok::<_, ()>(()) }).await.is_ok());
    assert_eq!(breaker.state(), Closed);
}
