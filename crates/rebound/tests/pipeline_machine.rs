//! The pipeline as one machine on one clock: a pipeline with a bulkhead,
//! timeouts, a retry and a hedge on a manual clock runs the same way every
//! time; one budget shared by the retry and hedge stages counts each call
//! once; validation takes bounded time.
#![cfg(feature = "tokio")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound::hedge::HedgePolicy;
use rebound::pipeline::Pipeline;
use rebound::{
    Backoff, BudgetSnapshot, Bulkhead, Clock, Jitter, ManualClock, RetryBudget, RetryPolicy, Stop,
};

const MS: Duration = Duration::from_millis(1);

/// Lets the spawned call run until it waits on the clock again.
async fn settle(time: &ManualClock) {
    let mut seen = usize::MAX;
    let mut still = 0;
    while still < 5 {
        tokio::task::yield_now().await;
        let now = time.pending_timers();
        still = if now == seen { still + 1 } else { 0 };
        seen = now;
    }
}

/// Runs the scenario on a fresh manual clock, moving it from deadline to
/// deadline; returns (call number, manual time when it started) for every
/// operation call, the result and the time it ended.
async fn scenario() -> (Vec<(u32, Duration)>, Result<&'static str, Stop>, Duration) {
    let (clock, time) = Clock::manual();
    // One slot, already taken by someone who leaves at 30 ms; a queued
    // caller waits up to 300 ms.
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(1)
        .max_wait(300 * MS)
        .clock(clock.clone())
        .build()
        .unwrap();
    let holder = bulkhead.try_acquire().unwrap();
    let retry = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::constant(50 * MS).with_jitter(Jitter::None))
        .clock(clock.clone())
        .build()
        .unwrap();
    let hedge = HedgePolicy::builder()
        .fixed_delay(20 * MS)
        .clock(clock.clone())
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .clock(clock.clone())
        .idempotent()
        .bulkhead(bulkhead)
        .timeout(1000 * MS)
        .retry(retry)
        .hedge(hedge)
        .timeout(100 * MS)
        .build()
        .unwrap();

    let log = Arc::new(Mutex::new(Vec::new()));
    let release = tokio::spawn({
        let clock = clock.clone();
        async move {
            clock.timer_after(30 * MS).await;
            drop(holder);
        }
    });
    let call = tokio::spawn({
        let (clock, time, log) = (clock.clone(), time.clone(), log.clone());
        async move {
            let mut n = 0;
            let result = pipeline
                .execute(|| {
                    n += 1;
                    let (n, clock) = (n, clock.clone());
                    log.lock().unwrap().push((n, time.elapsed()));
                    // The first two calls (the attempt and its hedge) hang
                    // past the 100 ms timeout; the third answers in 10 ms.
                    let took = if n < 3 { 500 * MS } else { 10 * MS };
                    async move {
                        clock.timer_after(took).await;
                        Ok::<_, std::io::Error>("reserved")
                    }
                })
                .await;
            (result.map_err(|e| e.stop()), time.elapsed())
        }
    });
    loop {
        settle(&time).await;
        if call.is_finished() {
            break;
        }
        let next = time.next_deadline().expect("the call waits on the clock");
        time.set_elapsed(next);
    }
    release.await.unwrap();
    let (result, ended) = call.await.unwrap();
    let log = log.lock().unwrap().clone();
    (log, result, ended)
}

#[tokio::test]
async fn a_pipeline_on_a_manual_clock_is_deterministic() {
    let (log, result, ended) = scenario().await;
    // 30 ms: the bulkhead slot frees, the first attempt starts; 50 ms: the
    // hedge copy; 130 and 150 ms: each copy cut by its 100 ms timeout; a
    // 50 ms backoff; 200 ms: the second attempt, answered at 210 ms.
    assert_eq!(log, [(1, 30 * MS), (2, 50 * MS), (3, 200 * MS)]);
    assert_eq!(result, Ok("reserved"));
    assert_eq!(ended, 210 * MS);
    // And again, the same to the nanosecond.
    assert_eq!(scenario().await, (log, result, ended));
}

fn requests(b: &RetryBudget) -> u64 {
    match b.snapshot() {
        BudgetSnapshot::Ratio { requests, .. } => requests,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn one_budget_shared_by_retry_and_hedge_counts_a_call_once() {
    let budget = RetryBudget::ratio(0.5).build().unwrap();
    let retry = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(MS))
        .budget(budget.clone())
        .build()
        .unwrap();
    let hedge = HedgePolicy::builder()
        .fixed_delay(10 * MS)
        .budget(budget.clone())
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .idempotent()
        .retry(retry)
        .hedge(hedge)
        .build()
        .unwrap();
    let mut calls = 0;
    let value = pipeline
        .execute(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(std::io::Error::other("reset"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(value, 3);
    assert_eq!(requests(&budget), 1, "one call, one request");

    // A budget of the hedge's own still counts each call once.
    let own = RetryBudget::ratio(0.5).build().unwrap();
    let retry = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(MS))
        .build()
        .unwrap();
    let hedge = HedgePolicy::builder()
        .fixed_delay(10 * MS)
        .budget(own.clone())
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .idempotent()
        .retry(retry)
        .hedge(hedge)
        .build()
        .unwrap();
    let mut calls = 0;
    pipeline
        .execute(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(std::io::Error::other("reset"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(requests(&own), 1);
}

#[test]
fn validation_of_a_huge_attempt_count_answers_at_once() {
    // 4,294,967,295 attempts of 1 ms cannot fit in 2 s: said without
    // summing four billion delays.
    let retry = RetryPolicy::builder()
        .max_attempts(u32::MAX)
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .unwrap();
    let e = Pipeline::builder()
        .timeout(Duration::from_secs(2))
        .retry(retry)
        .timeout(MS)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "total_timeout", "{e}");

    // Past the retries summed one by one, the rest count at the last delay
    // summed: a schedule that grows past the total is still refused.
    let retry = RetryPolicy::builder()
        .max_attempts(5_000)
        .backoff(Backoff::linear(
            Duration::from_micros(1),
            Duration::from_micros(1),
        ))
        .build()
        .unwrap();
    let e = Pipeline::builder()
        .timeout(Duration::from_secs(10))
        .retry(retry)
        .timeout(MS)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "total_timeout", "{e}");
}
