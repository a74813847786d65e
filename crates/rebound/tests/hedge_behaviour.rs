//! Hedging: first acceptable answer wins, losers are cancelled, nothing
//! leaks, the cap and the budget hold.
#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Live;
use rebound::hedge::{HedgePolicy, Idempotent};
use rebound::{Clock, RetryBudget, Stop};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn the_loser_is_cancelled_and_no_task_leaks() {
    let hedge = HedgePolicy::builder()
        .fixed_delay(50 * MS)
        .max_attempts(3)
        .build()
        .unwrap();
    let live = Arc::new(AtomicU32::new(0));
    let started = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let winner = hedge
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            let guard = Live::new(&live);
            async move {
                let _guard = guard;
                // The first is stuck; the hedge answers in 10 ms.
                let took = if n == 0 { 10_000 } else { 10 };
                tokio::time::sleep(took * MS).await;
                Ok::<_, ()>(n)
            }
        }))
        .await
        .unwrap();
    assert_eq!(winner, 1);
    assert_eq!(started.load(Ordering::SeqCst), 2, "the cap was not needed");
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the stuck attempt was dropped"
    );
    assert_eq!(tokio::time::Instant::now() - t0, 60 * MS);
    // Nothing was spawned: no task is left behind.
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn fast_calls_are_not_hedged() {
    let hedge = HedgePolicy::builder().fixed_delay(50 * MS).build().unwrap();
    let started = AtomicU32::new(0);
    let v = hedge
        .run(Idempotent(|| {
            started.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(5 * MS).await;
                Ok::<_, ()>(7)
            }
        }))
        .await
        .unwrap();
    assert_eq!((v, started.load(Ordering::SeqCst)), (7, 1));
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds_and_all_failures_report_the_last() {
    let hedge = HedgePolicy::builder()
        .fixed_delay(10 * MS)
        .max_attempts(3)
        .build()
        .unwrap();
    let started = AtomicU32::new(0);
    let err = hedge
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(100 * MS).await;
                Err::<(), _>(n)
            }
        }))
        .await
        .unwrap_err();
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(err.stop(), Stop::AttemptsExhausted);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failure_starts_the_next_hedge_at_once() {
    let hedge = HedgePolicy::builder()
        .fixed_delay(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let v = hedge
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err("reset")
                } else {
                    Ok(n)
                }
            }
        }))
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert_eq!(tokio::time::Instant::now(), t0);
}

#[tokio::test(start_paused = true)]
async fn hedges_draw_on_the_retry_budget() {
    let (clock, _t) = Clock::manual();
    let budget = RetryBudget::ratio(0.0)
        .min_retries_per_second(0.1)
        .window(Duration::from_secs(10))
        .clock(clock)
        .build()
        .unwrap(); // one retry or hedge in the window
    let hedge = HedgePolicy::builder()
        .fixed_delay(10 * MS)
        .max_attempts(2)
        .budget(budget.clone())
        .build()
        .unwrap();
    let started = Arc::new(AtomicU32::new(0));
    for _ in 0..2 {
        let s = started.clone();
        let _ = hedge
            .run(Idempotent(move || {
                s.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(50 * MS).await;
                    Ok::<_, ()>(())
                }
            }))
            .await;
    }
    // Call 1: first + one hedge; call 2: the budget is spent, no hedge.
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert!(!budget.try_withdraw());
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_delay_follows_the_latency_percentile() {
    let hedge = HedgePolicy::builder()
        .percentile_delay(0.9, Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(hedge.current_delay(), Duration::from_secs(1));
    for i in 0..100u64 {
        let took = Duration::from_millis(10 + i % 10); // 10..19 ms
        hedge
            .run(Idempotent(|| async move {
                tokio::time::sleep(took).await;
                Ok::<_, ()>(())
            }))
            .await
            .unwrap();
    }
    let d = hedge.current_delay();
    assert!(d >= 17 * MS && d <= 21 * MS, "{d:?}");
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn the_tower_layer_cancels_the_loser_and_skips_non_idempotent_requests() {
    use rebound::tower::hedge::HedgeLayer;
    use tower_layer::Layer;
    use tower_service::Service;

    let policy = HedgePolicy::builder().fixed_delay(20 * MS).build().unwrap();
    let layer = HedgeLayer::new(policy, |r: &(&str, u32)| r.0 == "GET");
    let (mock, mut handle) = tower_test::mock::pair::<(&str, u32), u32>();
    let mut svc = layer.layer(mock);
    handle.allow(10);

    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let call = tokio::spawn(svc.call(("GET", 1)));
    let (_, slow) = handle.next_request().await.unwrap();
    let (_, fast) = handle.next_request().await.unwrap();
    fast.send_response(2);
    assert_eq!(call.await.unwrap().unwrap(), 2);
    drop(slow);

    // Cancellation, observed with a service whose futures count themselves.
    let live = Arc::new(AtomicU32::new(0));
    let started = Arc::new(AtomicU32::new(0));
    let inner = {
        let (live, started) = (live.clone(), started.clone());
        tower::service_fn(move |_: (&str, u32)| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            let guard = Live::new(&live);
            async move {
                let _guard = guard;
                tokio::time::sleep(if n == 0 { 10_000 * MS } else { 5 * MS }).await;
                Ok::<_, rebound::tower::BoxError>(n)
            }
        })
    };
    let policy = HedgePolicy::builder().fixed_delay(20 * MS).build().unwrap();
    let mut counted = HedgeLayer::new(policy, |_: &(&str, u32)| true).layer(inner);
    assert_eq!(counted.call(("GET", 1)).await.unwrap(), 1);
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(live.load(Ordering::SeqCst), 0, "the loser was cancelled");

    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let call = tokio::spawn(svc.call(("POST", 1)));
    let (_, only) = handle.next_request().await.unwrap();
    tokio::time::sleep(100 * MS).await;
    let mut next = tokio_test::task::spawn(handle.next_request());
    assert!(next.poll().is_pending(), "a POST is never hedged");
    drop(next);
    only.send_response(3);
    assert_eq!(call.await.unwrap().unwrap(), 3);
}

/// The status classifier of the tests below: a 5xx is an answer, but not an
/// acceptable one; a "404" error is permanent; a "429" asks for a second.
fn statuses(o: rebound::Outcome<'_, u16, &'static str>) -> rebound::Decision {
    use rebound::{Decision, Outcome};
    match o {
        Outcome::Ok(s) if *s >= 500 => Decision::Retry,
        Outcome::Ok(_) => Decision::DoNotRetry,
        Outcome::Err(&"404") => Decision::DoNotRetry,
        Outcome::Err(&"429") => Decision::RetryAfter(Duration::from_secs(1)),
        Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
    }
}

#[tokio::test(start_paused = true)]
async fn a_fast_503_does_not_win_a_good_hedge_does() {
    let hedge = HedgePolicy::builder()
        .fixed_delay(Duration::from_secs(1))
        .build()
        .unwrap();
    let live = Arc::new(AtomicU32::new(0));
    let started = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let status = hedge
        .classify(statuses)
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            let guard = Live::new(&live);
            async move {
                let _guard = guard;
                if n == 0 {
                    Ok(503)
                } else {
                    tokio::time::sleep(20 * MS).await;
                    Ok::<_, &str>(200)
                }
            }
        }))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(
        tokio::time::Instant::now() - t0,
        20 * MS,
        "the 503 started the hedge at once, not after the 1 s delay"
    );
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        0
    );

    // Without a classifier every value is acceptable: the 503 wins.
    let started = AtomicU32::new(0);
    let status = hedge
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<u16, &str>(if n == 0 { 503 } else { 200 }) }
        }))
        .await
        .unwrap();
    assert_eq!((status, started.load(Ordering::SeqCst)), (503, 1));
}

#[tokio::test(start_paused = true)]
async fn a_slow_503_lets_a_good_hedge_win_and_cancels_nothing_useful() {
    // The 503 arrives while the hedge is in flight: the call goes on.
    let hedge = HedgePolicy::builder().fixed_delay(10 * MS).build().unwrap();
    let started = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let status = hedge
        .classify(statuses)
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            async move {
                let (took, status) = if n == 0 { (30, 503) } else { (50, 200) };
                tokio::time::sleep(took * MS).await;
                Ok::<u16, &str>(status)
            }
        }))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(started.load(Ordering::SeqCst), 2, "the cap held");
    assert_eq!(tokio::time::Instant::now() - t0, 60 * MS);
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_is_unacceptable_the_last_to_end_is_returned() {
    let hedge = HedgePolicy::builder()
        .fixed_delay(10 * MS)
        .max_attempts(3)
        .build()
        .unwrap();
    // Attempt n starts at 10n ms and answers 500 + n at 10n + 30 ms.
    let started = AtomicU32::new(0);
    let status = hedge
        .classify(statuses)
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(30 * MS).await;
                Ok::<u16, &str>(500 + n as u16)
            }
        }))
        .await
        .unwrap();
    assert_eq!(status, 502, "a bad value comes back as the value");

    // Errors: the last one, with why no more attempts were made.
    let started = AtomicU32::new(0);
    let err = hedge
        .classify(statuses)
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            async move {
                // The first ends last.
                tokio::time::sleep(if n == 0 { 100 * MS } else { 30 * MS }).await;
                Err::<u16, _>(["reset 0", "reset 1", "reset 2"][n as usize])
            }
        }))
        .await
        .unwrap_err();
    assert_eq!(err.stop(), Stop::AttemptsExhausted);
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.last_error(), Some(&"reset 0"));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_ends_the_call_at_once_and_cancels_the_others() {
    let hedge = HedgePolicy::builder()
        .fixed_delay(10 * MS)
        .max_attempts(3)
        .build()
        .unwrap();
    let live = Arc::new(AtomicU32::new(0));
    let started = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let err = hedge
        .classify(statuses)
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            let guard = Live::new(&live);
            async move {
                let _guard = guard;
                if n == 0 {
                    tokio::time::sleep(10_000 * MS).await; // stuck
                    Ok(200)
                } else {
                    Err("404")
                }
            }
        }))
        .await
        .unwrap_err();
    assert_eq!(err.stop(), Stop::Permanent);
    assert_eq!(err.last_error(), Some(&"404"));
    assert_eq!(err.attempts(), 2);
    assert_eq!(started.load(Ordering::SeqCst), 2, "no third attempt");
    assert_eq!(tokio::time::Instant::now() - t0, 10 * MS);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the stuck attempt was dropped"
    );

    // `run_with`'s predicate is the same rule.
    let err = hedge
        .run_with(Idempotent(|| async { Err::<(), _>("denied") }), |e| {
            *e == "denied"
        })
        .await
        .unwrap_err();
    assert_eq!((err.stop(), err.attempts()), (Stop::Permanent, 1));
}

#[tokio::test(start_paused = true)]
async fn a_server_asking_for_time_starts_no_hedge_at_once() {
    let hedge = HedgePolicy::builder().fixed_delay(50 * MS).build().unwrap();
    let started = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let err = hedge
        .classify(statuses)
        .run(Idempotent(|| {
            started.fetch_add(1, Ordering::SeqCst);
            async { Err::<u16, _>("429") }
        }))
        .await
        .unwrap_err();
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(tokio::time::Instant::now(), t0);
    assert_eq!(
        err.stop(),
        Stop::Throttled {
            retry_after: Some(Duration::from_secs(1))
        }
    );

    // With another attempt in flight, the call goes on and it may win.
    let started = AtomicU32::new(0);
    let status = hedge
        .classify(statuses)
        .run(Idempotent(|| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(70 * MS).await;
                    Err("429")
                } else {
                    tokio::time::sleep(40 * MS).await;
                    Ok(200)
                }
            }
        }))
        .await
        .unwrap();
    assert_eq!((status, started.load(Ordering::SeqCst)), (200, 2));
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_is_the_reason_when_a_failure_could_not_be_hedged() {
    let (clock, _t) = Clock::manual();
    let budget = RetryBudget::ratio(0.0)
        .min_retries_per_second(0.0)
        .clock(clock)
        .build()
        .unwrap();
    let hedge = HedgePolicy::builder()
        .fixed_delay(10 * MS)
        .budget(budget)
        .build()
        .unwrap();
    let err = hedge
        .classify(statuses)
        .run(Idempotent(|| async { Err::<u16, _>("reset") }))
        .await
        .unwrap_err();
    assert_eq!((err.stop(), err.attempts()), (Stop::BudgetExhausted, 1));
}

#[cfg(feature = "tower")]
mod hedge_layer {
    use super::*;
    use rebound::tower::hedge::HedgeLayer;
    use rebound::tower::BoxError;
    use rebound::{Decision, Outcome};
    use tower_layer::Layer;
    use tower_service::Service;

    fn statuses(o: Outcome<'_, u16, BoxError>) -> Decision {
        match o {
            Outcome::Ok(s) if *s >= 500 => Decision::Retry,
            Outcome::Ok(_) => Decision::DoNotRetry,
            Outcome::Err(e) if e.to_string() == "404" => Decision::DoNotRetry,
            Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_503_from_the_first_copy_sends_the_next_at_once_and_200_wins() {
        let policy = HedgePolicy::builder()
            .fixed_delay(Duration::from_secs(1))
            .build()
            .unwrap();
        let layer = HedgeLayer::new(policy, |_: &u32| true).classify(statuses);
        let (mock, mut handle) = tower_test::mock::pair::<u32, u16>();
        let mut svc = layer.layer(mock);
        handle.allow(5);
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let t0 = tokio::time::Instant::now();
        let mut call = tokio_test::task::spawn(svc.call(1));
        assert!(call.poll().is_pending());
        let (_, first) = handle.next_request().await.unwrap();
        first.send_response(503);
        assert!(call.poll().is_pending(), "a 503 does not end the call");
        let (_, copy) = handle.next_request().await.unwrap();
        assert_eq!(tokio::time::Instant::now(), t0, "sent at once");
        copy.send_response(200);
        assert_eq!(call.await.unwrap(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn every_copy_bad_returns_the_last_and_a_permanent_error_ends_at_once() {
        let policy = HedgePolicy::builder().fixed_delay(10 * MS).build().unwrap();
        let layer = HedgeLayer::new(policy, |_: &u32| true).classify(statuses);
        let (mock, mut handle) = tower_test::mock::pair::<u32, u16>();
        let mut svc = layer.layer(mock);
        handle.allow(10);

        // Both copies answer 5xx: the last to answer is returned.
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let mut call = tokio_test::task::spawn(svc.call(1));
        assert!(call.poll().is_pending());
        let (_, first) = handle.next_request().await.unwrap();
        tokio::time::sleep(10 * MS).await;
        assert!(
            call.poll().is_pending(),
            "the hedge delay passed: a copy goes out"
        );
        let (_, copy) = handle.next_request().await.unwrap();
        copy.send_response(502);
        assert!(call.poll().is_pending(), "the first copy is still out");
        first.send_response(504);
        assert_eq!(call.await.unwrap(), 504);

        // A permanent error ends the call while the first copy hangs.
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let mut call = tokio_test::task::spawn(svc.call(2));
        assert!(call.poll().is_pending());
        let (_, first) = handle.next_request().await.unwrap();
        tokio::time::sleep(10 * MS).await;
        assert!(call.poll().is_pending());
        let (_, copy) = handle.next_request().await.unwrap();
        copy.send_error(std::io::Error::other("404"));
        let err = call.await.unwrap_err();
        assert_eq!(err.to_string(), "404");
        drop(first); // (cancellation is observed in the next test)
    }

    #[tokio::test(start_paused = true)]
    async fn losers_are_dropped_and_nothing_is_spawned() {
        let live = Arc::new(AtomicU32::new(0));
        let started = Arc::new(AtomicU32::new(0));
        let inner = {
            let (live, started) = (live.clone(), started.clone());
            tower::service_fn(move |_: u32| {
                let n = started.fetch_add(1, Ordering::SeqCst);
                let guard = Live::new(&live);
                async move {
                    let _guard = guard;
                    match n {
                        0 => {
                            tokio::time::sleep(10_000 * MS).await;
                            Ok(200)
                        }
                        1 => Ok(503),
                        _ => {
                            tokio::time::sleep(5 * MS).await;
                            Ok::<u16, BoxError>(201)
                        }
                    }
                }
            })
        };
        let policy = HedgePolicy::builder()
            .fixed_delay(20 * MS)
            .max_attempts(3)
            .build()
            .unwrap();
        let mut svc = HedgeLayer::new(policy, |_: &u32| true)
            .classify(statuses)
            .layer(inner);
        let t0 = tokio::time::Instant::now();
        assert_eq!(svc.call(1).await.unwrap(), 201);
        // 0 ms: first (stuck); 20 ms: second, a 503, so the third at once,
        // which answers at 25 ms.
        assert_eq!(tokio::time::Instant::now() - t0, 25 * MS);
        assert_eq!(started.load(Ordering::SeqCst), 3);
        assert_eq!(live.load(Ordering::SeqCst), 0, "the stuck copy was dropped");
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            0
        );
    }
}
