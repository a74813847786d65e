//! Pipelines: declared order, the standard preset, and validation that
//! rejects each bad combination with its own message.
#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rebound::breaker::{SlidingWindow, State};
use rebound::pipeline::Pipeline;
use rebound::{Backoff, Bulkhead, CircuitBreaker, Jitter, RetryPolicy, Stop};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn retry(n: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(n)
        .backoff(Backoff::constant(delay))
        .build()
        .unwrap()
}

fn time_breaker(window: Duration) -> CircuitBreaker {
    let w = SlidingWindow::Time {
        duration: window,
        buckets: 10,
    };
    let cb = CircuitBreaker::builder().window(w).build().unwrap();
    assert_eq!(cb.window(), w);
    cb
}

#[test]
fn each_bad_combination_has_its_own_message() {
    // sampling window shorter than twice the attempt timeout
    let cb = time_breaker(3 * S);
    let e = Pipeline::builder()
        .timeout(30 * S)
        .retry(retry(3, MS))
        .circuit_breaker(cb)
        .timeout(2 * S)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "sampling_window", "{e}");
    assert!(
        e.to_string().contains("at least twice the attempt timeout"),
        "{e}"
    );

    // worst case does not fit inside the total timeout
    let e = Pipeline::builder()
        .timeout(5 * S)
        .retry(retry(3, 500 * MS))
        .timeout(2 * S)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "total_timeout", "{e}");
    assert!(
        e.to_string()
            .contains("3 attempts × 2s attempt timeout + 1s of backoff = 7s"),
        "{e}"
    );

    // the retry policy's own timeouts count too
    let p = RetryPolicy::builder()
        .max_attempts(4)
        .attempt_timeout(S)
        .total_timeout(3 * S)
        .backoff(Backoff::constant(MS))
        .build()
        .unwrap();
    let e = Pipeline::builder().retry(p).build().unwrap_err();
    assert_eq!(e.field(), "total_timeout", "{e}");

    // attempt timeout not shorter than the total
    let e = Pipeline::builder()
        .timeout(2 * S)
        .retry(retry(1, MS))
        .timeout(2 * S)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "attempt_timeout", "{e}");

    // two retries
    let e = Pipeline::builder()
        .retry(retry(3, MS))
        .retry(retry(3, MS))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "retry", "{e}");
    assert!(e.to_string().contains("multiply"), "{e}");

    // breaker outside the retry
    let e = Pipeline::builder()
        .circuit_breaker(CircuitBreaker::builder().build().unwrap())
        .retry(retry(3, MS))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "circuit_breaker", "{e}");

    // no stages, too many stages, a zero timeout
    assert_eq!(Pipeline::builder().build().unwrap_err().field(), "stages");
    let mut b = Pipeline::builder();
    for _ in 0..9 {
        b = b.timeout(S);
    }
    assert_eq!(b.build().unwrap_err().field(), "stages");
    assert_eq!(
        Pipeline::builder()
            .timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .field(),
        "timeout"
    );

    // every message is distinct
    let worst_case_jitter = Pipeline::builder()
        .timeout(10 * S)
        .retry(
            RetryPolicy::builder()
                .max_attempts(3)
                .backoff(Backoff::exponential(S).with_jitter(Jitter::Full))
                .build()
                .unwrap(),
        )
        .timeout(3 * S)
        .build()
        .unwrap_err();
    // 3 × 3 s + 1 s + 2 s = 12 s: full jitter can reach the cap of each delay.
    assert_eq!(worst_case_jitter.field(), "total_timeout");
}

#[test]
fn the_standard_preset_is_valid_and_adjustable() {
    let p = Pipeline::standard().build().unwrap();
    let names: Vec<_> = p.stages().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["timeout", "retry", "circuit_breaker", "timeout"]);
    let e = Pipeline::standard()
        .attempt_timeout(20 * S)
        .sampling_window(60 * S)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "attempt_timeout");
    let e = Pipeline::standard()
        .sampling_window(3 * S)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "sampling_window");
    let e = Pipeline::standard().max_attempts(0).build().unwrap_err();
    assert_eq!(e.field(), "max_attempts");
}

#[tokio::test(start_paused = true)]
async fn attempts_are_cut_by_the_inner_timeout_and_retried() {
    let p = Pipeline::standard()
        .total_timeout(5 * S)
        .attempt_timeout(S)
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let t0 = tokio::time::Instant::now();
    let v = p
        .execute(|| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n == 0 {
                    tokio::time::sleep(60 * S).await;
                }
                Ok::<_, std::io::Error>(n)
            }
        })
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert!(tokio::time::Instant::now() - t0 < 2 * S);
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_fails_fast_instead_of_sleeping_into_it() {
    let p = Pipeline::builder()
        .timeout(S)
        .retry(retry(5, 800 * MS))
        .timeout(300 * MS)
        .build();
    // 5 × 300 ms + 4 × 800 ms does not fit in 1 s.
    assert!(p.is_err());
    let p = Pipeline::builder()
        .timeout(10 * S)
        .retry(retry(3, 4 * S))
        .build()
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let err = p
        .execute(|| async { Err::<(), _>("503") })
        .await
        .unwrap_err();
    // 0 s, 4 s, 8 s: the third would start after a wait crossing 10 s? No:
    // it fits (8 s); a fourth is not allowed. Then stop.
    assert_eq!(err.stop(), Stop::AttemptsExhausted);
    assert_eq!(err.attempts(), 3);
    assert_eq!(tokio::time::Instant::now() - t0, 8 * S);

    let p = Pipeline::builder()
        .timeout(5 * S)
        .retry(retry(3, 4 * S))
        .build()
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let err = p
        .execute(|| async { Err::<(), _>("503") })
        .await
        .unwrap_err();
    assert_eq!(
        err.stop(),
        Stop::DeadlineExceeded {
            requested_delay: None
        }
    );
    assert_eq!(err.attempts(), 2);
    assert_eq!(
        tokio::time::Instant::now() - t0,
        4 * S,
        "stopped without waiting"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_inside_the_retry_stops_it() {
    let cb = CircuitBreaker::consecutive_failures(2).build().unwrap();
    let p = Pipeline::builder()
        .retry(retry(5, MS))
        .circuit_breaker(cb.clone())
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let err = p
        .execute(|| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>("reset") }
        })
        .await
        .unwrap_err();
    assert_eq!(err.stop(), Stop::BreakerOpen);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(err.last_error(), Some(&"reset"));
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_refuses_without_calling() {
    let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let p = Pipeline::builder().bulkhead(b.clone()).build().unwrap();
    let _held = b.try_acquire().unwrap();
    let err = p.execute(|| async { Ok::<_, ()>(1) }).await.unwrap_err();
    assert_eq!(err.stop(), Stop::BulkheadFull);
    assert_eq!(err.attempts(), 0);
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn the_pipeline_as_a_tower_layer() {
    use rebound::tower::retry::error::RetryFailed;
    use tower_layer::Layer;
    use tower_service::Service;

    let p = Pipeline::builder()
        .timeout(5 * S)
        .retry(retry(3, 10 * MS))
        .timeout(S)
        .build()
        .unwrap();
    let hits = Arc::new(AtomicU32::new(0));
    let svc = {
        let hits = hits.clone();
        tower::service_fn(move |x: u32| {
            let n = hits.fetch_add(1, Ordering::Relaxed);
            async move {
                if n < 2 {
                    Err::<u32, rebound::tower::BoxError>("busy".into())
                } else {
                    Ok(x * 2)
                }
            }
        })
    };
    let mut svc = p.layer().layer(svc);
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    assert_eq!(svc.call(21).await.unwrap(), 42);
    assert_eq!(hits.load(Ordering::Relaxed), 3);

    hits.store(0, Ordering::Relaxed);
    let mut svc = Pipeline::builder()
        .retry(retry(2, MS))
        .build()
        .unwrap()
        .layer()
        .layer(tower::service_fn(|_: u32| async {
            Err::<u32, rebound::tower::BoxError>("down".into())
        }));
    let err = svc.call(1).await.unwrap_err();
    let failed = err.downcast_ref::<RetryFailed>().unwrap();
    assert_eq!(
        (failed.stop(), failed.attempts()),
        (Stop::AttemptsExhausted, 2)
    );
}

mod hedge_stage {
    use super::*;
    use common::Live;
    use rebound::hedge::{HedgeDelay, HedgePolicy};
    use rebound::{Clock, Decision, Outcome, RetryBudget, RetryError};

    fn hedge(delay: Duration, max_attempts: u32) -> HedgePolicy {
        HedgePolicy::builder()
            .fixed_delay(delay)
            .max_attempts(max_attempts)
            .build()
            .unwrap()
    }

    fn statuses(o: Outcome<'_, u16, &'static str>) -> Decision {
        match o {
            Outcome::Ok(s) if *s >= 500 => Decision::Retry,
            Outcome::Ok(_) => Decision::DoNotRetry,
            Outcome::Err(&"404") => Decision::DoNotRetry,
            Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
        }
    }

    #[test]
    fn each_bad_hedge_combination_has_its_own_message() {
        // Not declared idempotent.
        let e = Pipeline::builder()
            .hedge(hedge(50 * MS, 2))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "idempotent", "{e}");
        assert!(e.to_string().contains("only safe"), "{e}");

        // Two hedges.
        let e = Pipeline::builder()
            .idempotent()
            .hedge(hedge(50 * MS, 2))
            .hedge(hedge(50 * MS, 2))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "hedge", "{e}");
        assert!(e.to_string().contains("twice"), "{e}");

        // A hedge outside the retry.
        let e = Pipeline::builder()
            .idempotent()
            .hedge(hedge(50 * MS, 2))
            .retry(retry(3, MS))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "hedge", "{e}");
        assert!(e.to_string().contains("outside (before) the retry"), "{e}");

        // A delay no shorter than the timeout of each copy.
        let e = Pipeline::builder()
            .idempotent()
            .hedge(hedge(S, 2))
            .timeout(S)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "hedge_delay", "{e}");
        assert!(
            e.to_string()
                .contains("shorter than the timeout of each hedged attempt (1s)"),
            "{e}"
        );

        // ... than a timeout around the hedge.
        let e = Pipeline::builder()
            .idempotent()
            .timeout(800 * MS)
            .hedge(hedge(S, 2))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "hedge_delay", "{e}");
        assert!(e.to_string().contains("total timeout (800ms)"), "{e}");

        // ... than the retry's own attempt timeout.
        let p = RetryPolicy::builder()
            .max_attempts(2)
            .attempt_timeout(300 * MS)
            .total_timeout(5 * S)
            .backoff(Backoff::constant(MS))
            .build()
            .unwrap();
        let e = Pipeline::builder()
            .idempotent()
            .retry(p)
            .hedge(hedge(300 * MS, 2))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "hedge_delay", "{e}");
        assert!(e.to_string().contains("retry's attempt timeout"), "{e}");

        // An adaptive hedge is checked on its initial delay.
        let adaptive = HedgePolicy::builder()
            .percentile_delay(0.95, 2 * S)
            .build()
            .unwrap();
        assert!(matches!(adaptive.delay(), HedgeDelay::Percentile { .. }));
        let e = Pipeline::builder()
            .idempotent()
            .hedge(adaptive)
            .timeout(S)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "hedge_delay", "{e}");
        assert!(e.to_string().contains("initial hedge delay"), "{e}");

        // The recommended order builds.
        let p = Pipeline::builder()
            .idempotent()
            .timeout(5 * S)
            .retry(retry(2, 10 * MS))
            .hedge(hedge(100 * MS, 2))
            .circuit_breaker(CircuitBreaker::builder().build().unwrap())
            .timeout(S)
            .build()
            .unwrap();
        assert!(p.is_idempotent());
        let names: Vec<_> = p.stages().iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            ["timeout", "retry", "hedge", "circuit_breaker", "timeout"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_is_hedged_and_the_loser_cancelled() {
        let p = Pipeline::builder()
            .idempotent()
            .hedge(hedge(50 * MS, 2))
            .timeout(S)
            .build()
            .unwrap();
        let live = Arc::new(AtomicU32::new(0));
        let calls = AtomicU32::new(0);
        let t0 = tokio::time::Instant::now();
        let v = p
            .execute(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let guard = Live::new(&live);
                async move {
                    let _guard = guard;
                    tokio::time::sleep(if n == 0 { 900 * MS } else { 10 * MS }).await;
                    Ok::<_, ()>(n)
                }
            })
            .await
            .unwrap();
        assert_eq!(v, 1);
        assert_eq!(tokio::time::Instant::now() - t0, 60 * MS);
        assert_eq!(live.load(Ordering::SeqCst), 0, "the slow copy was dropped");
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_503_starts_a_copy_at_once_and_a_200_wins() {
        let p = Pipeline::builder()
            .idempotent()
            .hedge(hedge(S, 2))
            .build()
            .unwrap();
        let calls = AtomicU32::new(0);
        let t0 = tokio::time::Instant::now();
        let status = p
            .classify(statuses)
            .execute(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Ok(503)
                    } else {
                        tokio::time::sleep(5 * MS).await;
                        Ok(200)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!((status, calls.load(Ordering::SeqCst)), (200, 2));
        assert_eq!(tokio::time::Instant::now() - t0, 5 * MS);

        // Every copy bad: the last one comes back, for a retry outside to
        // judge; here there is none.
        let calls = AtomicU32::new(0);
        let status = p
            .classify(statuses)
            .execute(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<u16, &str>(if n == 0 { 503 } else { 502 }) }
            })
            .await
            .unwrap();
        assert_eq!(status, 502);
    }

    /// Runs `attempt` through `p` with retries forbidden; how many times it
    /// ran.
    async fn once<T, Fut>(
        p: &Pipeline,
        attempt: impl Fn() -> Fut,
    ) -> (Result<T, RetryError<&'static str>>, u32)
    where
        Fut: std::future::Future<Output = Result<T, &'static str>>,
    {
        let calls = AtomicU32::new(0);
        let r = p
            .classify(rebound::RetryErrors)
            .forbid_retries()
            .execute(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                attempt()
            })
            .await;
        (r, calls.load(Ordering::SeqCst))
    }

    /// A call that must not be sent twice passes the same stages once:
    /// no hedge copy when it is slow, no retry when it fails.
    #[tokio::test(start_paused = true)]
    async fn a_call_with_retries_forbidden_is_sent_once() {
        let cb = CircuitBreaker::builder().build().unwrap();
        let p = Pipeline::builder()
            .idempotent()
            .timeout(5 * S)
            .retry(retry(3, 10 * MS))
            .hedge(hedge(50 * MS, 3))
            .circuit_breaker(cb.clone())
            .timeout(S)
            .build()
            .unwrap();
        // Slow: the hedge delay passes, and no copy is sent.
        let t0 = tokio::time::Instant::now();
        let (v, calls) = once(&p, || async {
            tokio::time::sleep(300 * MS).await;
            Ok("written")
        })
        .await;
        assert_eq!((v.unwrap(), calls), ("written", 1));
        assert_eq!(tokio::time::Instant::now() - t0, 300 * MS);

        // Failing: one attempt, stopped as not retryable; the breaker saw it.
        let (r, calls) = once(&p, || async { Err::<(), _>("reset") }).await;
        let err = r.unwrap_err();
        assert_eq!((err.stop(), err.attempts()), (Stop::NotRetryable, 1));
        assert_eq!(calls, 1);
        assert_eq!(err.last_error(), Some(&"reset"));
        let seen = cb.snapshot();
        assert_eq!((seen.calls, seen.failures), (2, 1), "{seen:?}");

        // Cut by the attempt timeout: still once.
        let (r, calls) = once(&p, || async {
            tokio::time::sleep(10 * S).await;
            Ok("late")
        })
        .await;
        assert_eq!((r.unwrap_err().stop(), calls), (Stop::NotRetryable, 1));

        // The same failure without the flag is hedged and retried.
        let calls = AtomicU32::new(0);
        let err = p
            .execute(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("reset") }
            })
            .await
            .unwrap_err();
        assert_eq!(err.stop(), Stop::AttemptsExhausted);
        assert!(calls.load(Ordering::SeqCst) > 3, "{calls:?}");
    }

    /// Through the tower layer, the predicate says which requests may be
    /// sent more than once.
    #[cfg(feature = "tower")]
    #[tokio::test(start_paused = true)]
    async fn the_tower_layer_sends_refused_requests_once() {
        use rebound::tower::retry::error::RetryFailed;
        use tower_layer::Layer;
        use tower_service::Service;

        let p = Pipeline::builder()
            .idempotent()
            .retry(retry(3, 10 * MS))
            .hedge(hedge(50 * MS, 2))
            .timeout(S)
            .build()
            .unwrap();
        let hits = Arc::new(AtomicU32::new(0));
        let svc = {
            let hits = hits.clone();
            tower::service_fn(move |(_, slow): (&'static str, bool)| {
                hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    if slow {
                        tokio::time::sleep(200 * MS).await;
                        Ok(7)
                    } else {
                        Err::<u32, rebound::tower::BoxError>("reset".into())
                    }
                }
            })
        };
        let mut svc = p
            .layer()
            .idempotent_if(|req: &(&'static str, bool)| req.0 == "GET")
            .layer(svc);

        // A failing POST: once, not retryable.
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let err = svc.call(("POST", false)).await.unwrap_err();
        let failed = err.downcast_ref::<RetryFailed>().unwrap();
        assert_eq!((failed.stop(), failed.attempts()), (Stop::NotRetryable, 1));
        assert_eq!(hits.swap(0, Ordering::SeqCst), 1);

        // A slow POST: no hedge copy.
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        assert_eq!(svc.call(("POST", true)).await.unwrap(), 7);
        assert_eq!(hits.swap(0, Ordering::SeqCst), 1);

        // A slow GET is hedged (its copy is slow too, so the first wins);
        // a failing GET is hedged and retried.
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        assert_eq!(svc.call(("GET", true)).await.unwrap(), 7);
        assert_eq!(hits.swap(0, Ordering::SeqCst), 2);
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let err = svc.call(("GET", false)).await.unwrap_err();
        let failed = err.downcast_ref::<RetryFailed>().unwrap();
        assert_eq!(failed.stop(), Stop::AttemptsExhausted);
        assert_eq!(hits.swap(0, Ordering::SeqCst), 6, "3 attempts of 2 copies");
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_error_ends_the_hedged_call_at_once() {
        let p = Pipeline::builder()
            .idempotent()
            .retry(retry(3, MS))
            .hedge(hedge(10 * MS, 3))
            .build()
            .unwrap();
        let live = Arc::new(AtomicU32::new(0));
        let calls = AtomicU32::new(0);
        let t0 = tokio::time::Instant::now();
        let err = p
            .classify(statuses)
            .execute(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let guard = Live::new(&live);
                async move {
                    let _guard = guard;
                    if n == 0 {
                        tokio::time::sleep(60 * S).await;
                        Ok(200)
                    } else {
                        Err("404")
                    }
                }
            })
            .await
            .unwrap_err();
        assert_eq!(err.stop(), Stop::Permanent);
        assert_eq!(err.last_error(), Some(&"404"));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no retry, no third copy");
        assert_eq!(tokio::time::Instant::now() - t0, 10 * MS);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_declared_order_is_respected() {
        // A retry outside the hedge: each attempt is hedged (2 × 2 calls).
        let p = Pipeline::builder()
            .idempotent()
            .retry(retry(2, MS))
            .hedge(hedge(10 * MS, 2))
            .build()
            .unwrap();
        let calls = AtomicU32::new(0);
        let err = p
            .execute(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("reset") }
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!((err.stop(), err.attempts()), (Stop::AttemptsExhausted, 4));

        // A timeout after the hedge cuts each copy: 0 → 50 ms, 20 → 70 ms.
        let p = Pipeline::builder()
            .idempotent()
            .hedge(hedge(20 * MS, 2))
            .timeout(50 * MS)
            .build()
            .unwrap();
        let t0 = tokio::time::Instant::now();
        let err = p
            .execute(|| async {
                tokio::time::sleep(60 * S).await;
                Ok::<_, ()>(())
            })
            .await
            .unwrap_err();
        assert!(err.timed_out());
        assert_eq!((err.stop(), err.attempts()), (Stop::AttemptsExhausted, 2));
        assert_eq!(tokio::time::Instant::now() - t0, 70 * MS);

        // A breaker inside the hedge counts every copy; outside, one
        // outcome per call.
        let inside = CircuitBreaker::consecutive_failures(2).build().unwrap();
        let p = Pipeline::builder()
            .idempotent()
            .hedge(hedge(10 * MS, 2))
            .circuit_breaker(inside.clone())
            .build()
            .unwrap();
        let _ = p.execute(|| async { Err::<(), _>("reset") }).await;
        assert_eq!(inside.state(), State::Open);

        let outside = CircuitBreaker::consecutive_failures(2).build().unwrap();
        let p = Pipeline::builder()
            .idempotent()
            .circuit_breaker(outside.clone())
            .hedge(hedge(10 * MS, 2))
            .build()
            .unwrap();
        let _ = p.execute(|| async { Err::<(), _>("reset") }).await;
        assert_eq!(outside.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_inside_sends_no_copy_and_keeps_its_reason() {
        let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
        let p = Pipeline::builder()
            .idempotent()
            .retry(retry(3, MS))
            .hedge(hedge(10 * MS, 3))
            .bulkhead(b.clone())
            .build()
            .unwrap();
        let _held = b.try_acquire().unwrap();
        let calls = AtomicU32::new(0);
        let t0 = tokio::time::Instant::now();
        let err = p
            .execute(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, ()>(1) }
            })
            .await
            .unwrap_err();
        assert_eq!(err.stop(), Stop::BulkheadFull);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(tokio::time::Instant::now(), t0, "no waiting for the timer");
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_hedge_budget_is_the_reason() {
        let (clock, _t) = Clock::manual();
        let budget = RetryBudget::ratio(0.0)
            .min_retries_per_second(0.0)
            .clock(clock)
            .build()
            .unwrap();
        let h = HedgePolicy::builder()
            .fixed_delay(10 * MS)
            .budget(budget)
            .build()
            .unwrap();
        let p = Pipeline::builder().idempotent().hedge(h).build().unwrap();
        let err = p
            .execute(|| async { Err::<(), _>("reset") })
            .await
            .unwrap_err();
        assert_eq!((err.stop(), err.attempts()), (Stop::BudgetExhausted, 1));
        assert_eq!(
            rebound::fallback::HasCause::cause(&err),
            rebound::fallback::Cause::BudgetExhausted
        );
    }

    #[cfg(feature = "tower")]
    #[tokio::test(start_paused = true)]
    async fn the_hedge_stage_in_the_tower_layer() {
        use tower_layer::Layer;
        use tower_service::Service;

        let p = Pipeline::builder()
            .idempotent()
            .timeout(5 * S)
            .retry(retry(2, 10 * MS))
            .hedge(hedge(50 * MS, 2))
            .timeout(S)
            .build()
            .unwrap();
        let live = Arc::new(AtomicU32::new(0));
        let hits = Arc::new(AtomicU32::new(0));
        let svc = {
            let (live, hits) = (live.clone(), hits.clone());
            tower::service_fn(move |x: u32| {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                let guard = Live::new(&live);
                async move {
                    let _guard = guard;
                    tokio::time::sleep(if n == 0 { 900 * MS } else { 10 * MS }).await;
                    Ok::<u32, rebound::tower::BoxError>(x + n)
                }
            })
        };
        let mut svc = p.layer().layer(svc);
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let t0 = tokio::time::Instant::now();
        assert_eq!(svc.call(10).await.unwrap(), 11);
        assert_eq!(tokio::time::Instant::now() - t0, 60 * MS);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn the_hedge_stage_in_a_file() {
        use rebound::config::{HedgeConfig, PipelineConfig, Policies, StageConfig};

        let file = r#"
[dependencies.catalog.pipeline]
stages = [
  { type = "retry", max_attempts = 2, backoff = { kind = "constant", base = "10ms" } },
  { type = "hedge", idempotent = true, percentile = 0.9, initial_delay = "40ms", max_attempts = 3 },
  { type = "timeout", timeout = "1s" },
]
"#;
        let policies = Policies::from_toml_str(file).unwrap();
        let dep = policies.dependency("catalog").unwrap();
        let p = dep.pipeline("catalog").unwrap().unwrap();
        let Some(rebound::pipeline::Stage::Hedge(h)) = p.stages().get(1) else {
            panic!("{:?}", p.stages());
        };
        assert_eq!((h.max_attempts(), h.current_delay()), (3, 40 * MS));
        assert_eq!(h.dependency(), "catalog");
        // Round trip.
        let again = Policies::from_toml_str(&policies.to_toml_string().unwrap()).unwrap();
        assert_eq!(again, policies);
        let Some(PipelineConfig::Stages(stages)) = &dep.pipeline else {
            panic!()
        };
        assert!(matches!(
            &stages[1],
            StageConfig::Hedge(HedgeConfig {
                idempotent: true,
                ..
            })
        ));

        // Errors name the field.
        let e = Policies::from_toml_str(&file.replace("idempotent = true, ", "")).unwrap_err();
        // (the key is missing: the path says where it belongs, the line
        // is the stage's)
        assert_eq!(
            e.path(),
            "dependencies.catalog.pipeline.stages[1].idempotent",
            "{e}"
        );
        assert_eq!(e.line(), Some(5), "{e}");
        let e = Policies::from_toml_str(&file.replace("\"40ms\"", "\"1s\"")).unwrap_err();
        assert_eq!(
            e.path(),
            "dependencies.catalog.pipeline.stages[1].initial_delay",
            "{e}"
        );
        assert!(e.message().contains("hedge_delay"), "{e}");
        let e = Policies::from_toml_str(&file.replace("percentile = 0.9", "percentile = 1.5"))
            .unwrap_err();
        assert!(e.message().contains("percentile"), "{e}");
        assert_eq!(
            e.path(),
            "dependencies.catalog.pipeline.stages[1].percentile",
            "{e}"
        );
        let e = Policies::from_toml_str(&file.replace("idempotent = true", "idempotent = \"yes\""))
            .unwrap_err();
        assert!(e.path().contains("stages"), "{e}");
    }
}
