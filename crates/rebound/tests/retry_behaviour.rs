//! Behaviour of the retry executors: every stop reason, server-requested
//! delays, deadlines and budgets. Each test runs against both the blocking
//! and the async executor on a manual clock, so timing is exact.

mod common;

use std::cell::RefCell;
use std::time::Duration;

use common::RUNNERS;
use rebound::{
    Backoff, Clock, Decision, Jitter, ManualClock, Outcome, RetryBudget, RetryEvent, RetryPolicy,
    Stop,
};

const MS: Duration = Duration::from_millis(1);

fn policy(clock: &Clock) -> rebound::RetryPolicyBuilder {
    RetryPolicy::builder()
        .clock(clock.clone())
        .backoff(Backoff::exponential(100 * MS).with_jitter(Jitter::None))
}

/// An operation that follows a script, taking `took` of (manual) time per call.
fn scripted<'a, T: Clone + 'a, E: Clone + 'a>(
    time: &'a ManualClock,
    took: Duration,
    script: Vec<Result<T, E>>,
) -> impl FnMut() -> Result<T, E> + 'a {
    let mut i = 0;
    move || {
        time.advance(took);
        let r = script[i.min(script.len() - 1)].clone();
        i += 1;
        r
    }
}

#[test]
fn success_on_first_attempt() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock).build().unwrap();
        let report = runner.run(
            &p.classify(rebound::classify::RetryErrors),
            scripted(&time, 5 * MS, vec![Ok::<_, ()>(7)]),
        );
        assert_eq!(report.stop(), Stop::Succeeded, "{runner:?}");
        assert_eq!(report.attempts(), 1);
        assert!(!report.needed_retries());
        assert_eq!(time.elapsed(), 5 * MS);
        assert_eq!(report.into_result().unwrap(), 7);
    }
}

#[test]
fn success_after_retries_is_reported_with_exact_delays() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock).max_attempts(4).build().unwrap();
        let delays = RefCell::new(Vec::new());
        let retry =
            p.classify(rebound::classify::RetryErrors)
                .on_retry(|e: &RetryEvent<'_, u8, &str>| {
                    delays.borrow_mut().push((e.attempt, e.delay))
                });
        let report = runner.run(
            &retry,
            scripted(&time, Duration::ZERO, vec![Err("a"), Err("b"), Ok(1)]),
        );
        assert_eq!(report.stop(), Stop::Succeeded);
        assert!(report.needed_retries());
        assert_eq!(report.retries(), 2);
        // Exponential base * 2^n: 100 ms then 200 ms, slept on the clock.
        assert_eq!(
            *delays.borrow(),
            [(1, 100 * MS), (2, 200 * MS)],
            "{runner:?}"
        );
        assert_eq!(time.elapsed(), 300 * MS);
    }
}

#[test]
fn permanent_errors_are_not_retried() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock).build().unwrap();
        let retry = p.classify(|o: Outcome<'_, (), u16>| match o {
            Outcome::Err(404) => Decision::DoNotRetry,
            _ => Decision::Retry,
        });
        let err = runner
            .run(&retry, scripted(&time, MS, vec![Err(404)]))
            .into_result()
            .unwrap_err();
        assert_eq!(err.stop(), Stop::Permanent);
        assert_eq!(err.attempts(), 1);
        assert_eq!(err.last_error(), Some(&404));
        assert_eq!(
            time.elapsed(),
            MS,
            "no delay slept after a permanent failure"
        );
    }
}

#[test]
fn attempts_are_exhausted_and_the_last_error_is_kept() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock).max_attempts(3).build().unwrap();
        let calls = RefCell::new(0);
        let err = runner
            .run(&p.classify(rebound::classify::RetryErrors), || {
                *calls.borrow_mut() += 1;
                time.advance(MS);
                // A non-Clone error: the executor must move it, not clone it.
                Err::<(), _>(NotClone(*calls.borrow()))
            })
            .into_result()
            .unwrap_err();
        assert_eq!(err.stop(), Stop::AttemptsExhausted, "{runner:?}");
        assert_eq!(*calls.borrow(), 3, "max_attempts counts the first call");
        assert_eq!(err.attempts(), 3);
        assert_eq!(err.last_error().map(|e| e.0), Some(3));
        let msg = format!("{}", err.map_err(|e| e.0));
        assert_eq!(msg, "attempts exhausted after 3 attempts; last failure: 3");
    }
}

#[derive(Debug)]
struct NotClone(u32);

#[test]
fn a_delay_that_would_cross_the_deadline_stops_at_once() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        // Delays 100, 200, 400 ms; calls take 50 ms; total 500 ms.
        // t=50 fail, sleep 100 → t=150; t=200 fail, sleep 200 → t=400;
        // t=450 fail: 450 + 400 ≥ 500 → stop now, without sleeping.
        let p = policy(&clock)
            .max_attempts(10)
            .total_timeout(500 * MS)
            .build()
            .unwrap();
        let report = runner.run(
            &p.classify(rebound::classify::RetryErrors),
            scripted(&time, 50 * MS, vec![Err::<(), _>("slow")]),
        );
        assert_eq!(
            report.stop(),
            Stop::DeadlineExceeded {
                requested_delay: None
            }
        );
        assert_eq!(report.attempts(), 3);
        assert_eq!(
            time.elapsed(),
            450 * MS,
            "{runner:?}: never sleeps past the deadline"
        );
    }
}

#[test]
fn server_delay_shorter_than_backoff_waits_the_backoff() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock).max_attempts(2).build().unwrap();
        let retry = p.classify(|o: Outcome<'_, u16, ()>| match o {
            Outcome::Ok(503) => Decision::RetryAfter(10 * MS),
            _ => Decision::DoNotRetry,
        });
        let report = runner.run(
            &retry,
            scripted(&time, Duration::ZERO, vec![Ok(503), Ok(200)]),
        );
        assert_eq!(report.stop(), Stop::Succeeded);
        assert_eq!(time.elapsed(), 100 * MS, "{runner:?}");
    }
}

#[test]
fn server_delay_longer_than_backoff_is_never_shortened() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock).max_attempts(2).build().unwrap();
        let retry = p.classify(|o: Outcome<'_, u16, ()>| match o {
            Outcome::Ok(429) => Decision::RetryAfter(Duration::from_secs(7)),
            _ => Decision::DoNotRetry,
        });
        let report = runner.run(
            &retry,
            scripted(&time, Duration::ZERO, vec![Ok(429), Ok(200)]),
        );
        assert_eq!(report.stop(), Stop::Succeeded);
        assert_eq!(time.elapsed(), Duration::from_secs(7), "{runner:?}");
    }
}

#[test]
fn server_delay_above_the_cap_stops_and_reports_it() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock)
            .max_server_delay(Duration::from_secs(30))
            .build()
            .unwrap();
        let retry = p.classify(|o: Outcome<'_, u16, ()>| match o {
            Outcome::Ok(503) => Decision::RetryAfter(Duration::from_secs(120)),
            _ => Decision::DoNotRetry,
        });
        let report = runner.run(&retry, scripted(&time, Duration::ZERO, vec![Ok(503)]));
        assert_eq!(
            report.stop(),
            Stop::Throttled {
                retry_after: Some(Duration::from_secs(120))
            }
        );
        assert_eq!(report.attempts(), 1);
        assert_eq!(time.elapsed(), Duration::ZERO, "{runner:?}: did not wait");
        // The 503 value is handed back as-is.
        assert_eq!(report.into_result().unwrap(), 503);
    }
}

#[test]
fn server_delay_beyond_the_deadline_stops_now_reporting_it() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let p = policy(&clock)
            .total_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let retry = p.classify(|o: Outcome<'_, u16, ()>| match o {
            Outcome::Ok(429) => Decision::RetryAfter(Duration::from_secs(10)),
            _ => Decision::DoNotRetry,
        });
        let report = runner.run(&retry, scripted(&time, MS, vec![Ok(429)]));
        assert_eq!(
            report.stop(),
            Stop::DeadlineExceeded {
                requested_delay: Some(Duration::from_secs(10))
            }
        );
        assert_eq!(time.elapsed(), MS, "{runner:?}");
    }
}

#[test]
fn an_exhausted_budget_stops_retrying() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let budget = RetryBudget::ratio(0.5)
            .min_retries_per_second(0.0)
            .clock(clock.clone())
            .build()
            .unwrap();
        let p = policy(&clock)
            .max_attempts(5)
            .budget(budget.clone())
            .build()
            .unwrap();
        // Another caller's request and this call deposit 2 × 0.5 = 1 retry.
        // The first call spends it; the second call (1.5 allowed) is refused.
        budget.record_request();
        let r1 = runner.run(
            &p.classify(rebound::classify::RetryErrors),
            scripted(&time, MS, vec![Err::<(), _>(()), Ok(())]),
        );
        assert_eq!(r1.stop(), Stop::Succeeded);
        let r2 = runner.run(
            &p.classify(rebound::classify::RetryErrors),
            scripted(&time, MS, vec![Err::<(), _>(())]),
        );
        assert_eq!(r2.stop(), Stop::BudgetExhausted, "{runner:?}");
        assert_eq!(r2.attempts(), 1);
    }
}

#[test]
fn token_bucket_budget_throttles_after_failures() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let bucket = RetryBudget::token_bucket(4.0, 0.5).unwrap();
        let p = policy(&clock)
            .max_attempts(10)
            .budget(bucket)
            .build()
            .unwrap();
        // 4 tokens, threshold 2: failures at 4→3 (retry ok), 3→2 (2 is not > 2: stop).
        let report = runner.run(
            &p.classify(rebound::classify::RetryErrors),
            scripted(&time, MS, vec![Err::<(), _>(())]),
        );
        assert_eq!(report.stop(), Stop::BudgetExhausted, "{runner:?}");
        assert_eq!(report.attempts(), 2);
    }
}

#[test]
fn bad_settings_are_rejected_with_the_field_name() {
    let cases = [
        (RetryPolicy::builder().max_attempts(0), "max_attempts"),
        (
            RetryPolicy::builder().attempt_timeout(Duration::ZERO),
            "attempt_timeout",
        ),
        (
            RetryPolicy::builder().total_timeout(Duration::ZERO),
            "total_timeout",
        ),
        (
            RetryPolicy::builder()
                .attempt_timeout(Duration::from_secs(2))
                .total_timeout(Duration::from_secs(1)),
            "attempt_timeout",
        ),
        (
            RetryPolicy::builder().backoff(Backoff::exponential(MS).with_factor(0.9)),
            "factor",
        ),
        (
            RetryPolicy::builder().backoff(Backoff::exponential(MS).with_factor(-1.0)),
            "factor",
        ),
        (
            RetryPolicy::builder()
                .backoff(Backoff::exponential(Duration::from_secs(2)).with_max_delay(MS)),
            "max_delay",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field);
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_cuts_slow_attempts_and_is_counted() {
    let p = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(10 * MS))
        .attempt_timeout(100 * MS)
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let mut n = 0;
    let report = p
        .run(|| {
            n += 1;
            let slow = n < 3;
            async move {
                if slow {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok::<_, ()>(n)
            }
        })
        .await;
    assert_eq!(report.stop(), Stop::Succeeded);
    assert_eq!(report.attempts(), 3);
    // Two attempts cut at 100 ms, two 10 ms delays.
    assert_eq!(start.elapsed(), 220 * MS);
}

#[tokio::test(start_paused = true)]
async fn total_timeout_shortens_the_last_attempt() {
    let p = RetryPolicy::builder()
        .max_attempts(10)
        .backoff(Backoff::constant(50 * MS))
        .attempt_timeout(200 * MS)
        .total_timeout(300 * MS)
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = p
        .retry(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<(), ()>(())
        })
        .await
        .unwrap_err();
    // 200 ms attempt, 50 ms delay, then only 50 ms are left for attempt 2.
    assert_eq!(
        err.stop(),
        Stop::DeadlineExceeded {
            requested_delay: None
        }
    );
    assert!(err.timed_out());
    assert_eq!(err.attempts(), 2);
    assert_eq!(start.elapsed(), 300 * MS);
}

#[test]
fn seeded_policies_repeat_their_jitter() {
    let run = || {
        let (clock, time) = Clock::manual();
        let p = RetryPolicy::builder()
            .clock(clock)
            .max_attempts(6)
            .random(rebound::RandomSource::seeded(99))
            .build()
            .unwrap();
        let _ = p.retry_blocking(|| Err::<(), _>(()));
        time.elapsed()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a > Duration::ZERO);
}

#[test]
fn an_adaptive_throttle_sheds_attempts_to_an_overloaded_dependency() {
    for runner in RUNNERS {
        let (clock, time) = Clock::manual();
        let throttle = rebound::throttle::AdaptiveThrottle::builder()
            .k(2.0)
            .clock(clock.clone())
            .random(rebound::RandomSource::seeded(3))
            .build()
            .unwrap();
        let p = policy(&clock)
            .max_attempts(2)
            .throttle(throttle.clone())
            .build()
            .unwrap();
        let mut calls_reaching_backend = 0;
        let mut throttled = 0;
        for _ in 0..500 {
            let report = runner.run(&p.classify(rebound::classify::RetryErrors), || {
                calls_reaching_backend += 1;
                time.advance(MS);
                Err::<(), _>("429 Too Many Requests")
            });
            if let Stop::Throttled { retry_after: None } = report.stop() {
                throttled += 1;
            }
        }
        // Without the throttle the backend would see 1000 attempts.
        assert!(throttled > 400, "{runner:?}: {throttled}");
        assert!(
            calls_reaching_backend < 150,
            "{runner:?}: {calls_reaching_backend}"
        );
        assert!(throttle.rejection_probability() > 0.9);
    }
}

#[test]
fn forbidden_retries_stop_a_transient_failure_and_still_record_it() {
    // Driven by hand, as the HTTP middleware does for a POST without an
    // idempotency key under the host's shared policy.
    let (clock, _) = Clock::manual();
    let budget = RetryBudget::token_bucket(10.0, 1.0).unwrap();
    let p = policy(&clock).budget(budget.clone()).build().unwrap();
    let mut state = p.start();
    state.forbid_retries();
    assert!(state.retries_forbidden());
    let attempt = state.begin_attempt(&p).unwrap();
    let next = state.on_outcome(
        &p,
        attempt,
        Outcome::<(), _>::Err(&"reset"),
        Decision::Retry,
    );
    assert_eq!(next, rebound::Next::Stop(Stop::NotRetryable));
    assert_eq!(state.attempts(), 1);
    // The failure still cost the budget a token, as any failed attempt does.
    assert_eq!(
        budget.snapshot(),
        rebound::BudgetSnapshot::TokenBucket {
            tokens: 9.0,
            max_tokens: 10.0
        }
    );
    // A success or a permanent failure is reported as usual.
    let mut state = p.start();
    state.forbid_retries();
    let attempt = state.begin_attempt(&p).unwrap();
    let next = state.on_outcome(&p, attempt, Outcome::<_, ()>::Ok(&1), Decision::DoNotRetry);
    assert_eq!(next, rebound::Next::Stop(Stop::Succeeded));
    assert_eq!(Stop::NotRetryable.as_str(), "not_retryable");
}
