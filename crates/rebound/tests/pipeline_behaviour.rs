//! Pipelines: declared order, the standard preset, and validation that
//! rejects each bad combination with its own message.
#![cfg(feature = "tokio")]

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
