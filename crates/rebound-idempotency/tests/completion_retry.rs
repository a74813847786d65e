//! The store fails while a response is being saved: the client still gets
//! its response, duplicates are refused (never run), and the write is
//! retried in the background with the lease renewed until the store is back;
//! then the stored response is replayed. Redis and PostgreSQL are reached
//! through a TCP proxy the test cuts and restores.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http::{app, client, post_key, serve, AppState};
use common::proxy::Proxy;
use rebound::Clock;
use rebound_idempotency::problem::codes;
use rebound_idempotency::{Event, IdempotencyLayer, RequestOutcome, Store};
use tokio::sync::mpsc;

async fn completion_survives_a_store_outage(store: Arc<dyn Store>, proxy: Proxy) {
    let (clock, time) = Clock::manual();
    let (state, mut started) = AppState::tagged("F");
    let (tx, mut outcomes) = mpsc::unbounded_channel();
    let layer = IdempotencyLayer::builder_shared(store)
        .single_tenant()
        .clock(clock)
        .lease(Duration::from_secs(30))
        .renew_every(Some(Duration::from_secs(10)))
        .complete_retry_for(Duration::from_secs(120))
        .on_event(move |e: &Event<'_>| {
            let _ = tx.send(e.outcome);
        })
        .build()
        .unwrap();
    let addr = serve(app(state.clone(), layer)).await;
    let c = client();
    let key = common::unique("outage");

    let c2 = c.clone();
    let k2 = key.clone();
    let first = tokio::spawn(async move { post_key(&c2, addr, "/hang", &k2, "").await });
    started.recv().await.unwrap();
    proxy.cut();
    state.gate.notify_one();

    // The client has its response although it could not be stored.
    let first = first.await.unwrap();
    assert_eq!(
        (first.status, first.body.as_str(), first.replayed()),
        (201, "F run 1 previous 0 finished late", false)
    );
    assert_eq!(
        outcomes.recv().await,
        Some(RequestOutcome::CompletionRetrying)
    );

    // A duplicate while the store is down: refused, not run.
    let dup = post_key(&c, addr, "/hang", &key, "").await;
    assert_eq!(dup.status, 503);
    assert_eq!(dup.code(), codes::STORE_UNAVAILABLE);

    // The store comes back; the claim is still held (a duplicate gets 409
    // once the store answers), and the retried write lands.
    proxy.restore();
    let mut held = None;
    for _ in 0..100 {
        let r = post_key(&c, addr, "/hang", &key, "").await;
        if r.status != 503 {
            held = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // reconnecting
    }
    let held = held.expect("the store did not come back");
    assert_eq!(held.status, 409, "{}", held.body);
    assert_eq!(held.code(), codes::IN_PROGRESS);

    let mut stored = false;
    for _ in 0..20 {
        // Each step passes the longest backoff (5 s); renewals every 10 s.
        time.advance(Duration::from_secs(5));
        match tokio::time::timeout(Duration::from_millis(500), outcomes.recv()).await {
            Ok(Some(RequestOutcome::Stored)) => {
                stored = true;
                break;
            }
            Ok(Some(RequestOutcome::InProgress | RequestOutcome::StoreUnavailable)) | Err(_) => {}
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(stored, "the completion was never stored");

    let replay = post_key(&c, addr, "/hang", &key, "").await;
    assert_eq!(
        (replay.status, replay.body.as_str(), replay.replayed()),
        (201, first.body.as_str(), true)
    );
    assert_eq!(state.runs(&key), 1);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    let Some(url) = common::service_url("REBOUND_REDIS_URL") else {
        return;
    };
    let proxy = Proxy::start(common::proxy::host_port(&url)).await;
    let store = rebound_idempotency::RedisStore::connect(&common::proxy::via(&url, proxy.addr()))
        .await
        .unwrap()
        .with_prefix(format!("{}:", common::unique("rebound_test")))
        .unwrap();
    completion_survives_a_store_outage(Arc::new(store), proxy).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(url) = common::service_url("REBOUND_POSTGRES_URL") else {
        return;
    };
    // The table is made directly, then used through the proxy.
    let Some(direct) = common::postgres_store().await else {
        return;
    };
    let proxy = Proxy::start(common::proxy::host_port(&url)).await;
    let store =
        rebound_idempotency::PostgresStore::connect(&common::proxy::via(&url, proxy.addr()))
            .unwrap()
            .with_table(direct.table())
            .unwrap()
            .with_op_timeout(Duration::from_secs(2));
    completion_survives_a_store_outage(Arc::new(store), proxy).await;
    common::drop_table(&direct).await;
}
