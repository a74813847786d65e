//! Hedging: first acceptable answer wins, losers are cancelled, nothing
//! leaks, the cap and the budget hold.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rebound::hedge::{HedgePolicy, Idempotent};
use rebound::{Clock, RetryBudget, Stop};

const MS: Duration = Duration::from_millis(1);

/// Counts live attempts: incremented when an attempt starts, decremented
/// when its future is dropped (finished or cancelled).
struct Live(Arc<AtomicU32>);
impl Live {
    fn new(c: &Arc<AtomicU32>) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        Live(c.clone())
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

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
