//! The layer over real HTTP on every store: exactly once under concurrency,
//! a client that hangs up mid-handler, and a crashed holder taken over with
//! fencing.
//!
//! Redis and PostgreSQL read `REBOUND_REDIS_URL` / `REBOUND_POSTGRES_URL`;
//! without them these print "skipped" unless `REBOUND_REQUIRE_SERVICES=1`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use common::http::{app, client, post_key, serve, AppState};
use rebound::Clock;
use rebound_idempotency::problem::codes;
use rebound_idempotency::{
    Event, IdempotencyLayer, MemoryStore, OnDisconnect, RequestOutcome, Store,
};
use tokio::sync::mpsc;

const CONCURRENCY: usize = 64;
const ROUNDS: usize = 100;

fn events() -> (
    mpsc::UnboundedReceiver<RequestOutcome>,
    impl Fn(&Event<'_>) + Send + Sync + 'static,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (rx, move |e: &Event<'_>| {
        let _ = tx.send(e.outcome);
    })
}

async fn next_outcome(rx: &mut mpsc::UnboundedReceiver<RequestOutcome>) -> RequestOutcome {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no event within 30 s")
        .expect("layer dropped")
}

/// 64 concurrent requests with one key, 100 times: exactly one execution
/// each time, the other 63 get the replay or 409.
async fn exactly_once(store: Arc<dyn Store>, label: &str) {
    let state = AppState {
        tag: "X",
        delay: Duration::from_millis(2),
        ..Default::default()
    };
    let layer = IdempotencyLayer::builder_shared(store)
        .single_tenant()
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let prefix = common::unique("once");
    let started = Instant::now();
    for round in 0..ROUNDS {
        let key = format!("{prefix}-{round}");
        let replies = futures_util::future::join_all((0..CONCURRENCY).map(|_| {
            let c = c.clone();
            let key = key.clone();
            async move { post_key(&c, addr, "/orders", &key, "same body").await }
        }))
        .await;
        let mut originals = 0;
        let mut replays = 0;
        let mut conflicts = 0;
        for r in &replies {
            match (r.status, r.replayed()) {
                (201, false) => originals += 1,
                (201, true) => replays += 1,
                (409, _) => conflicts += 1,
                other => panic!("{label} round {round}: unexpected {other:?} {}", r.body),
            }
        }
        assert_eq!(originals, 1, "{label} round {round}");
        assert_eq!(
            replays + conflicts,
            CONCURRENCY - 1,
            "{label} round {round}"
        );
        assert_eq!(state.runs(&key), 1, "{label} round {round}: executions");
    }
    println!(
        "{label}: {ROUNDS} x {CONCURRENCY} concurrent requests in {:?}",
        started.elapsed()
    );
}

/// The client gives up while the handler runs (its timeout is shorter than
/// the handler), then retries three times. The handler runs once, to its
/// end, detached from the closed connection; the retries get 409 while it
/// runs, its response is stored (and reported) although its client is gone,
/// and the next retry gets it.
async fn client_hangs_up(store: Arc<dyn Store>) {
    let (state, mut started) = AppState::tagged("D");
    let (mut outcomes, hook) = events();
    let layer = IdempotencyLayer::builder_shared(store)
        .single_tenant()
        .on_event(hook)
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let key = common::unique("gone");

    let c2 = c.clone();
    let k2 = key.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", &k2, "").await });
    assert_eq!(started.recv().await.unwrap(), key);
    first.abort(); // the client's timeout: the connection closes
    let _ = first.await;
    for _ in 0..3 {
        let retry = post_key(&c, addr, "/hang", &key, "").await;
        assert_eq!(retry.status, 409, "{}", retry.body);
        assert_eq!(retry.code(), codes::IN_PROGRESS);
        assert_eq!(
            next_outcome(&mut outcomes).await,
            RequestOutcome::InProgress
        );
    }
    assert_eq!(state.runs(&key), 1);

    // The handler finishes with nobody waiting: stored and counted.
    state.gate.notify_one();
    assert_eq!(next_outcome(&mut outcomes).await, RequestOutcome::Stored);
    assert_eq!(state.finished(&key), 1);

    let retry = post_key(&c, addr, "/hang", &key, "").await;
    assert_eq!(
        (retry.status, retry.body.as_str(), retry.replayed()),
        (201, "D run 1 previous 0 finished late", true)
    );
    assert_eq!(retry.header("location"), Some("/orders/late"));
    assert_eq!(state.runs(&key), 1);
}

/// With `OnDisconnect::Cancel` the handler is dropped with the connection
/// and the claim released: the retry runs it again, told by
/// `previous_attempts`.
async fn client_hangs_up_with_cancel(store: Arc<dyn Store>) {
    let (state, mut started) = AppState::tagged("C");
    let (mut outcomes, hook) = events();
    let layer = IdempotencyLayer::builder_shared(store)
        .single_tenant()
        .on_disconnect(OnDisconnect::Cancel)
        .on_event(hook)
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let key = common::unique("cancel");
    let c2 = c.clone();
    let k2 = key.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", &k2, "").await });
    started.recv().await.unwrap();
    first.abort();
    assert_eq!(next_outcome(&mut outcomes).await, RequestOutcome::Released);
    assert_eq!(state.finished(&key), 0, "the handler was cut off");
    let c3 = c.clone();
    let k3 = key.clone();
    let retry = tokio::spawn(async move { post_key(&c3, addr, "/hang", &k3, "").await });
    started.recv().await.unwrap();
    state.gate.notify_one();
    let retry = retry.await.unwrap();
    assert_eq!(
        (retry.status, retry.body.as_str()),
        (201, "C run 2 previous 1 finished late")
    );
    assert_eq!(state.runs(&key), 2);
}

/// A holder that never finishes (crashed: its clock and renewals stopped);
/// once its lease ends the retry runs once on another instance; the late
/// completion of the first holder is rejected and the retry's result stays.
async fn crash_recovery(store: Arc<dyn Store>) {
    let lease = Duration::from_secs(5);
    let (clock_a, _frozen) = Clock::manual(); // the crashed process: never moves
    let (clock_b, time_b) = Clock::manual();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let (tx, mut started) = mpsc::unbounded_channel();
    let state_a = AppState {
        tag: "A",
        runs: runs.clone(),
        started: Some(tx),
        ..Default::default()
    };
    let state_b = AppState {
        tag: "B",
        runs: runs.clone(),
        ..Default::default()
    };
    let (mut outcomes_a, hook) = events();
    let layer_a = IdempotencyLayer::builder_shared(store.clone())
        .single_tenant()
        .clock(clock_a)
        .lease(lease)
        .on_event(hook)
        .build()
        .unwrap();
    let layer_b = IdempotencyLayer::builder_shared(store)
        .single_tenant()
        .clock(clock_b)
        .lease(lease)
        .build()
        .unwrap();
    // Both instances serve the same route; A's handler hangs.
    let router_a = Router::new()
        .route("/orders", post(common::http::hang_handler))
        .layer(layer_a)
        .with_state(state_a.clone());
    let addr_a = serve(router_a).await;
    let addr_b = serve(app(state_b, layer_b)).await;
    let c = client();
    let key = common::unique("crash");

    let c2 = c.clone();
    let k2 = key.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr_a, "/orders", &k2, "").await });
    started.recv().await.unwrap();

    // Lease still held: B refuses.
    let early = post_key(&c, addr_b, "/orders", &key, "").await;
    assert_eq!(early.status, 409);

    // A's lease runs out on B's clock: the retry runs, once.
    time_b.advance(lease);
    let retry = post_key(&c, addr_b, "/orders", &key, "").await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, "B run 2 previous 1 body ");
    assert_eq!(runs.lock().unwrap()[&key], 2);

    // A wakes up and finishes: its completion is rejected by the fence.
    state_a.gate.notify_one();
    let late = first.await.unwrap();
    assert_eq!(late.status, 201);
    assert!(!late.replayed());
    assert_eq!(
        next_outcome(&mut outcomes_a).await,
        RequestOutcome::FenceRejected
    );

    // The stored result is B's, and nothing runs again.
    let after = post_key(&c, addr_b, "/orders", &key, "").await;
    assert!(after.replayed());
    assert_eq!(after.body, retry.body);
    assert_eq!(runs.lock().unwrap()[&key], 2);
}

macro_rules! per_store {
    ($modname:ident, $make:expr) => {
        mod $modname {
            use super::*;

            async fn make() -> Option<Arc<dyn Store>> {
                $make.await.map(|s| Arc::new(s) as Arc<dyn Store>)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exactly_once_under_concurrency() {
                if let Some(store) = make().await {
                    exactly_once(store, stringify!($modname)).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_client_that_hangs_up_does_not_run_the_write_twice() {
                if let Some(store) = make().await {
                    client_hangs_up(store).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cancel_on_disconnect_releases_the_key() {
                if let Some(store) = make().await {
                    client_hangs_up_with_cancel(store).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_recovery_with_fencing() {
                if let Some(store) = make().await {
                    crash_recovery(store).await;
                }
            }
        }
    };
}

per_store!(memory, async { Some(MemoryStore::new()) });

#[cfg(feature = "redb")]
per_store!(redb, async {
    let dir = tempfile::tempdir().unwrap().keep();
    Some(rebound_idempotency::RedbStore::open(dir.join("idem.redb")).unwrap())
});

#[cfg(feature = "redis")]
per_store!(redis, common::redis_store());

#[cfg(feature = "postgres")]
per_store!(postgres, common::postgres_store());
