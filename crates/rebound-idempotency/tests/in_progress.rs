//! A duplicate of a request still running, over real HTTP: 409 with a
//! Retry-After that estimates when the result will be ready, wait mode, and
//! the lease renewed while the handler runs. Time is a manual clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http::{app, client, post_key, serve, AppState};
use common::watched::{self, Watched};
use rebound::Clock;
use rebound_idempotency::problem::codes;
use rebound_idempotency::{Event, IdempotencyLayer, MemoryStore, RequestOutcome};
use tokio::sync::mpsc;

/// Retry-After on a 409 is the route's recent handler duration (1 s before
/// any), bounded by the renewal interval; never the 30 s lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_estimates_when_the_result_is_ready() {
    for (renew_every, expected) in [(None, "5"), (Some(Duration::from_secs(3)), "3")] {
        let (clock, time) = Clock::manual();
        let (state, mut started) = AppState::tagged("E");
        let mut builder = IdempotencyLayer::builder(MemoryStore::new())
            .single_tenant()
            .clock(clock)
            .lease(Duration::from_secs(30));
        if let Some(every) = renew_every {
            builder = builder.renew_every(Some(every));
        }
        let addr = serve(app(state.clone(), builder.build().unwrap())).await;
        let c = client();

        // Nothing known about the route yet: 1 s.
        let c2 = c.clone();
        let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", "a", "").await });
        started.recv().await.unwrap();
        let dup = post_key(&c, addr, "/hang", "a", "").await;
        assert_eq!(dup.status, 409);
        assert_eq!(dup.code(), codes::IN_PROGRESS);
        assert_eq!(dup.header("retry-after"), Some("1"));
        // The handler takes 2.3 s on the layer's clock.
        time.advance(Duration::from_millis(2_300));
        state.gate.notify_one();
        assert_eq!(first.await.unwrap().status, 201);

        // A second, slower run: 4.2 s.
        let c2 = c.clone();
        let second = tokio::spawn(async move { post_key(&c2, addr, "/hang", "b", "").await });
        started.recv().await.unwrap();
        assert_eq!(
            post_key(&c, addr, "/hang", "b", "")
                .await
                .header("retry-after"),
            Some("3"),
            "2.3 s, rounded up"
        );
        time.advance(Duration::from_millis(4_200));
        state.gate.notify_one();
        assert_eq!(second.await.unwrap().status, 201);

        // Now the route is known to take up to 4.2 s: Retry-After 5, or the
        // renewal interval if shorter.
        let c2 = c.clone();
        let third = tokio::spawn(async move { post_key(&c2, addr, "/hang", "c", "").await });
        started.recv().await.unwrap();
        let dup = post_key(&c, addr, "/hang", "c", "").await;
        assert_eq!(dup.header("retry-after"), Some(expected));
        state.gate.notify_one();
        assert_eq!(third.await.unwrap().status, 201);
        assert_eq!(state.runs("c"), 1);
    }
}

/// Wait mode: a duplicate is held until the original finishes and gets its
/// replay; one whose original never finishes gets 409 after `max_wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_mode() {
    let (clock, time) = Clock::manual();
    let (state, mut started) = AppState::tagged("W");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let layer = IdempotencyLayer::builder(MemoryStore::new())
        .single_tenant()
        .clock(clock)
        .lease(Duration::from_secs(3600)) // never expires while the clock is spun below
        .wait_for_in_progress(Duration::from_secs(5), Duration::from_secs(1))
        .on_event(move |e: &Event<'_>| {
            let _ = ev_tx.send(e.outcome);
        })
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let c2 = c.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", "w", "").await });
    started.recv().await.unwrap();
    let c3 = c.clone();
    let dup = tokio::spawn(async move { post_key(&c3, addr, "/hang", "w", "").await });
    assert_eq!(ev_rx.recv().await, Some(RequestOutcome::Waiting));
    state.gate.notify_one();
    assert_eq!(first.await.unwrap().status, 201);
    assert_eq!(ev_rx.recv().await, Some(RequestOutcome::Stored));
    time.advance(Duration::from_secs(1)); // the waiter polls again
    let b = dup.await.unwrap();
    assert_eq!(
        (b.status, b.body.as_str(), b.replayed()),
        (201, "W run 1 previous 0 finished late", true)
    );
    assert_eq!(ev_rx.recv().await, Some(RequestOutcome::Replayed));
    assert_eq!(state.runs("w"), 1);

    // A waiter whose original never finishes gets 409 after max_wait.
    let c4 = c.clone();
    let _stuck = tokio::spawn(async move { post_key(&c4, addr, "/hang", "w2", "").await });
    started.recv().await.unwrap();
    let c5 = c.clone();
    let mut dup = tokio::spawn(async move { post_key(&c5, addr, "/hang", "w2", "").await });
    assert_eq!(ev_rx.recv().await, Some(RequestOutcome::Waiting));
    // Move virtual time on one second per step until the waiter gives up.
    // The steps are paced (not spun) and bounded: spinning could run the
    // clock past the original's hour-long lease before the waiter polls, and
    // the waiter would then take the key over instead of giving up.
    let mut steps = 0;
    let b = loop {
        tokio::select! {
            r = &mut dup => break r.unwrap(),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                steps += 1;
                assert!(steps < 600, "the waiter did not give up within 600 virtual seconds");
                time.advance(Duration::from_secs(1));
            }
        }
    };
    assert_eq!(b.status, 409);
    assert_eq!(ev_rx.recv().await, Some(RequestOutcome::InProgress));
}

/// The lease is renewed while the handler runs, so a slow handler is not
/// taken over after its first lease ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_renewed_while_the_handler_runs() {
    let (clock, time) = Clock::manual();
    let (state, mut started) = AppState::tagged("R");
    let (store, mut ops) = Watched::new(Arc::new(MemoryStore::new()));
    let layer = IdempotencyLayer::builder_shared(store)
        .single_tenant()
        .clock(clock)
        .lease(Duration::from_secs(30))
        .renew_every(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let c2 = c.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", "r", "").await });
    started.recv().await.unwrap();
    // Two renewals: at 10 s (lease to 40 s) and 20 s (to 50 s).
    for _ in 0..2 {
        time.advance(Duration::from_secs(10));
        assert!(watched::next(&mut ops, "renew").await);
    }
    // Past the first lease's end (30 s): still held, nothing ran twice.
    time.advance(Duration::from_secs(15));
    assert_eq!(post_key(&c, addr, "/hang", "r", "").await.status, 409);
    assert_eq!(state.runs("r"), 1);
    state.gate.notify_one();
    assert_eq!(first.await.unwrap().status, 201);
}
