//! The executors emit the standard metric names with a `dependency` label.

use std::future::Future;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use rebound::{Backoff, Clock, RetryBudget, RetryPolicy, Stop};

type Snap = Vec<(CompositeKey, DebugValue)>;

/// Takes the snapshot once: the debugging recorder resets counters it reads.
fn take(snap: &metrics_util::debugging::Snapshotter) -> Snap {
    snap.snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect()
}

fn counter(snap: &Snap, name: &str, labels: &[(&str, &str)]) -> u64 {
    snap.iter()
        .filter(|(k, ..)| k.kind() == MetricKind::Counter && k.key().name() == name)
        .filter(|(k, ..)| {
            labels
                .iter()
                .all(|(l, v)| k.key().labels().any(|x| x.key() == *l && x.value() == *v))
        })
        .map(|(_, v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

#[test]
fn retries_give_ups_budget_and_timeouts_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let (clock, _time) = Clock::manual();
        let policy = RetryPolicy::builder()
            .dependency("inventory")
            .clock(clock.clone())
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(5)))
            .build()
            .unwrap();
        // 2 retries, then exhausted.
        let err = policy.retry_blocking(|| Err::<(), _>("503")).unwrap_err();
        assert_eq!(err.stop(), Stop::AttemptsExhausted);
        // A success needs no metric at all.
        policy.retry_blocking(|| Ok::<_, ()>(())).unwrap();

        let budget = RetryBudget::ratio(0.0)
            .min_retries_per_second(0.0)
            .clock(clock.clone())
            .build()
            .unwrap();
        let starved = RetryPolicy::builder()
            .dependency("payments")
            .clock(clock)
            .budget(budget)
            .build()
            .unwrap();
        let err = starved
            .retry_blocking(|| Err::<(), _>("reset"))
            .unwrap_err();
        assert_eq!(err.stop(), Stop::BudgetExhausted);
    });

    let snap = take(&snap);
    let dep = |d| [("dependency", d)];
    assert_eq!(counter(&snap, "retry_attempts_total", &dep("inventory")), 2);
    assert_eq!(
        counter(
            &snap,
            "retry_exhausted_total",
            &[("dependency", "inventory"), ("reason", "attempts")]
        ),
        1
    );
    assert_eq!(counter(&snap, "retry_attempts_total", &dep("payments")), 0);
    assert_eq!(
        counter(&snap, "retry_budget_exhausted_total", &dep("payments")),
        1
    );
    assert_eq!(
        counter(
            &snap,
            "retry_exhausted_total",
            &[("dependency", "payments"), ("reason", "budget")]
        ),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_count_in_dependency_timeout_total() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let policy = RetryPolicy::builder()
        .dependency("warehouse")
        .max_attempts(2)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .attempt_timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    // The recorder is installed for this thread while the future is polled.
    let fut = policy.retry(|| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, ()>(())
    });
    let mut fut = std::pin::pin!(fut);
    let err = loop {
        let polled = metrics::with_local_recorder(&recorder, || {
            let waker = std::task::Waker::noop();
            fut.as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
        });
        match polled {
            std::task::Poll::Ready(r) => break r.unwrap_err(),
            std::task::Poll::Pending => tokio::time::advance(Duration::from_millis(1)).await,
        }
    };
    assert!(err.timed_out());
    let snap = take(&snap);
    assert_eq!(
        counter(
            &snap,
            "dependency_timeout_total",
            &[("dependency", "warehouse")]
        ),
        2
    );
}
