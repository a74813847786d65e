//! Coalescing outgoing GETs over a real socket: fifty concurrent identical
//! GETs reach the server once and all get its answer; a different
//! `Authorization` or a POST is its own request.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use rebound::coalesce::Coalescer;
use rebound_http::coalesce::CoalesceMiddleware;
use tokio::sync::{Notify, Semaphore};

struct Server {
    hits: AtomicU32,
    arrived: Notify,
    gate: Semaphore,
}

async fn serve() -> (String, Arc<Server>) {
    let server = Arc::new(Server {
        hits: AtomicU32::new(0),
        arrived: Notify::new(),
        gate: Semaphore::new(0),
    });
    let s = server.clone();
    let handler = move || {
        let s = s.clone();
        async move {
            let n = s.hits.fetch_add(1, Ordering::SeqCst) + 1;
            s.arrived.notify_one();
            s.gate.acquire().await.unwrap().forget();
            ([("x-hit", n.to_string())], format!("stock {n}"))
        }
    };
    let app = Router::new().route("/stock", get(handler.clone()).post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/stock"), server)
}

fn client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(CoalesceMiddleware::new(
            Coalescer::new().dependency("stock"),
        ))
        .build()
}

#[tokio::test]
async fn fifty_identical_gets_reach_the_server_once() {
    let (url, server) = serve().await;
    let client = client();
    let entered = Arc::new(AtomicU32::new(0));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, url, entered) = (client.clone(), url.clone(), entered.clone());
        calls.spawn(async move {
            entered.fetch_add(1, Ordering::SeqCst);
            let r = client.get(url).send().await.unwrap();
            let hit = r.headers()["x-hit"].to_str().unwrap().to_owned();
            (r.status().as_u16(), hit, r.text().await.unwrap())
        });
    }
    server.arrived.notified().await;
    // Every caller has asked (and so joined the one request in flight).
    while entered.load(Ordering::SeqCst) < 50 {
        tokio::task::yield_now().await;
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    server.gate.add_permits(1);
    for (status, hit, body) in calls.join_all().await {
        assert_eq!((status, hit.as_str(), body.as_str()), (200, "1", "stock 1"));
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn other_credentials_and_writes_are_not_merged() {
    let (url, server) = serve().await;
    let client = client();
    let (c, u) = (client.clone(), url.clone());
    let alice = tokio::spawn(async move { c.get(u).bearer_auth("alice").send().await });
    server.arrived.notified().await;
    let (c, u) = (client.clone(), url.clone());
    let bob = tokio::spawn(async move { c.get(u).bearer_auth("bob").send().await });
    server.arrived.notified().await; // bob's request reached the server too
    let (c, u) = (client.clone(), url.clone());
    let write = tokio::spawn(async move { c.post(u).send().await });
    server.arrived.notified().await;
    server.gate.add_permits(3);
    let mut hits: Vec<String> = Vec::new();
    for r in [alice.await, bob.await, write.await] {
        hits.push(r.unwrap().unwrap().text().await.unwrap());
    }
    hits.sort();
    assert_eq!(hits, ["stock 1", "stock 2", "stock 3"]);
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}
