//! Bulkhead behaviour in tokio's paused time.

use std::time::Duration;

use rebound::bulkhead::FullReason;
use rebound::Bulkhead;
use tokio::time::{sleep, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn try_acquire_caps_concurrency_and_drop_frees() {
    let b = Bulkhead::builder().max_concurrent(2).build().unwrap();
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert_eq!((b.in_use(), b.available()), (2, 0));
    assert_eq!(b.try_acquire().unwrap_err().reason(), FullReason::Full);
    drop(p1);
    let _p3 = b.try_acquire().unwrap();
    drop(p2);
    assert_eq!(b.in_use(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_acquire_refuses_at_once() {
    let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let _held = b.acquire().await.unwrap();
    let t0 = Instant::now();
    assert_eq!(b.acquire().await.unwrap_err().reason(), FullReason::Full);
    assert_eq!(Instant::now(), t0);
}

#[tokio::test(start_paused = true)]
async fn queue_is_bounded_and_waits_are_capped() {
    let b = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(2)
        .max_wait(ms(100))
        .build()
        .unwrap();
    let held = b.acquire().await.unwrap();
    let t0 = Instant::now();
    let (w1, w2, w3) = tokio::join!(b.acquire(), b.acquire(), async {
        tokio::task::yield_now().await;
        b.acquire().await
    });
    assert_eq!(w3.unwrap_err().reason(), FullReason::QueueFull);
    assert_eq!(w1.unwrap_err().reason(), FullReason::MaxWait);
    assert_eq!(w2.unwrap_err().reason(), FullReason::MaxWait);
    assert_eq!(Instant::now() - t0, ms(100));
    assert_eq!(b.queued(), 0, "queue places given back");
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_queued_caller_gets_the_freed_slot() {
    let b = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(1)
        .max_wait(ms(100))
        .build()
        .unwrap();
    let held = b.acquire().await.unwrap();
    let t0 = Instant::now();
    let (got, ()) = tokio::join!(b.acquire(), async {
        sleep(ms(40)).await;
        drop(held);
    });
    assert!(got.is_ok());
    assert_eq!(Instant::now() - t0, ms(40));
    assert_eq!(b.in_use(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelled_waiters_give_back_their_place_and_their_wake_up() {
    let b = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(2)
        .build()
        .unwrap();
    let held = b.acquire().await.unwrap();
    // A waiter cancelled by a timeout of its own.
    assert!(tokio::time::timeout(ms(10), b.acquire()).await.is_err());
    assert_eq!(b.queued(), 0);
    // Two waiters; the first is cancelled right after the slot is freed, so
    // its wake-up must pass to the second.
    let mut first = Box::pin(b.acquire());
    let mut second = Box::pin(b.acquire());
    assert!(futures_poll(first.as_mut()).is_none());
    assert!(futures_poll(second.as_mut()).is_none());
    drop(held);
    drop(first);
    let got = tokio::time::timeout(ms(10), second).await;
    assert!(got.unwrap().is_ok(), "the wake-up was forwarded");
}

#[tokio::test(start_paused = true)]
async fn run_frees_the_slot_even_when_cancelled() {
    let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let hung = b.run(std::future::pending::<()>());
    assert!(tokio::time::timeout(ms(10), hung).await.is_err());
    assert_eq!(b.in_use(), 0);
    assert_eq!(b.run(async { 5 }).await, Ok(5));
}

#[test]
fn rejections_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let b = Bulkhead::builder()
            .dependency("inventory")
            .max_concurrent(1)
            .build()
            .unwrap();
        let _p = b.try_acquire().unwrap();
        let _ = b.try_acquire();
    });
    let v = snap.snapshot().into_vec();
    let (key, _, _, value) = v
        .iter()
        .find(|(k, ..)| k.key().name() == "bulkhead_rejected_total")
        .expect("counted");
    assert_eq!(value, &DebugValue::Counter(1));
    assert!(key
        .key()
        .labels()
        .any(|l| l.key() == "reason" && l.value() == "full"));
    assert!(key
        .key()
        .labels()
        .any(|l| l.key() == "dependency" && l.value() == "inventory"));
}

/// Polls once; `Some` if ready.
fn futures_poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match f.poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
