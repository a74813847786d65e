//! The seeds' inventory service: `POST /inventory/reservations` behind the
//! idempotency layer on the embedded redb store. A reservation retried with
//! the same `Idempotency-Key` (the order service timed out and tried again)
//! never reserves twice.
//!
//! ```text
//! cargo run -p rebound-idempotency --example inventory            # demo, then exit
//! cargo run -p rebound-idempotency --example inventory -- serve   # keep serving on 127.0.0.1:3000
//! cargo run -p rebound-idempotency --example inventory -- memory  # demo on the memory store
//! ```

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rebound_idempotency::{IdempotencyContext, IdempotencyLayer, MemoryStore, RedbStore, Store};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct ReserveRequest {
    sku: String,
    quantity: u32,
}

#[derive(Serialize)]
struct Reservation {
    reservation_id: u64,
    sku: String,
    quantity: u32,
    remaining: u32,
}

#[derive(Default)]
struct Inventory {
    stock: HashMap<String, u32>,
    next_id: u64,
}

type Shared = Arc<Mutex<Inventory>>;

async fn reserve(
    State(inv): State<Shared>,
    ctx: Option<Extension<IdempotencyContext>>,
    Json(req): Json<ReserveRequest>,
) -> Result<(StatusCode, Json<Reservation>), (StatusCode, String)> {
    // Pretend the warehouse is slow: this is where the order service's
    // timeout fires and it retries.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut inv = inv.lock().unwrap();
    let left = inv.stock.get(&req.sku).copied().unwrap_or(0);
    if left < req.quantity {
        // Out of stock: 409, which the default store policy does not store
        // (its answer may change: stock comes back). Nothing was reserved,
        // so the key is released and a retry checks the stock again.
        return Err((
            StatusCode::CONFLICT,
            format!("only {left} of {} left", req.sku),
        ));
    }
    inv.stock.insert(req.sku.clone(), left - req.quantity);
    inv.next_id += 1;
    if let Some(Extension(ctx)) = ctx {
        println!(
            "  [inventory] reserving {} x {} under key {} (attempt {})",
            req.quantity,
            req.sku,
            ctx.key(),
            ctx.previous_attempts() + 1
        );
    }
    Ok((
        StatusCode::CREATED,
        Json(Reservation {
            reservation_id: inv.next_id,
            sku: req.sku,
            quantity: req.quantity,
            remaining: left - req.quantity,
        }),
    ))
}

async fn stock(State(inv): State<Shared>) -> Json<HashMap<String, u32>> {
    Json(inv.lock().unwrap().stock.clone())
}

fn app(store: Arc<dyn Store>, inv: Shared) -> Router {
    let idempotency = IdempotencyLayer::builder_shared(store)
        .name("inventory")
        .single_tenant() // one caller: the order service
        .require_key(true)
        .build()
        .expect("valid idempotency config");
    Router::new()
        .route("/inventory/reservations", post(reserve))
        .layer(idempotency)
        .route("/inventory/stock", get(stock))
        .with_state(inv)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve_forever = args.iter().any(|a| a == "serve");
    let store: Arc<dyn Store> = if args.iter().any(|a| a == "memory") {
        println!("store: memory");
        Arc::new(MemoryStore::new())
    } else {
        // `serve` keeps one file, so records survive restarts; the demo uses
        // a fresh file per run so it starts from an empty store.
        let name = if serve_forever {
            "rebound-inventory-example.redb".to_owned()
        } else {
            format!("rebound-inventory-example-{}.redb", std::process::id())
        };
        let path = std::env::temp_dir().join(name);
        println!("store: redb at {}", path.display());
        Arc::new(RedbStore::open(&path)?)
    };
    let inv: Shared = Arc::new(Mutex::new(Inventory::default()));
    inv.lock().unwrap().stock.insert("sku-last-item".into(), 1);

    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(axum::serve(listener, app(store, inv.clone())).into_future());
    println!("inventory service on http://{addr}");
    if serve_forever {
        println!("try: curl -i -X POST http://{addr}/inventory/reservations -H 'Idempotency-Key: order_123_line_1_reservation' -H 'content-type: application/json' -d '{{\"sku\":\"sku-last-item\",\"quantity\":1}}'");
        server.await??;
        return Ok(());
    }

    // The order service. Its first call succeeds on the server, but the
    // answer is lost on the way back; meanwhile an impatient retry arrives
    // while the first is still running. Then it retries once more.
    let client = reqwest::Client::new();
    let key = "order_123_line_1_reservation";
    let url = format!("http://{addr}/inventory/reservations");
    let send = || {
        client
            .post(&url)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(r#"{"sku":"sku-last-item","quantity":1}"#)
            .send()
    };
    let show = |what: &str, r: reqwest::Response| {
        let replayed = r.headers().contains_key("idempotent-replayed");
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" retry-after={v}"))
            .unwrap_or_default();
        let status = r.status();
        let what = what.to_owned();
        async move {
            let text = r.text().await.unwrap_or_default();
            println!("order service: {what}: {status} replayed={replayed}{retry_after} {text}");
        }
    };

    println!("order service: reserve the last item with Idempotency-Key: {key}");
    let first = send();
    let impatient = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        send().await
    };
    let (first, impatient) = tokio::join!(first, impatient);
    show("impatient duplicate while the first runs", impatient?).await;
    let _lost = first?;
    println!("order service: (the first answer was lost in the network)");
    show("retry", send().await?).await;
    show("another retry", send().await?).await;
    let stock = inv.lock().unwrap().stock["sku-last-item"];
    let reservations = inv.lock().unwrap().next_id;
    println!("stock left: {stock}, reservations made: {reservations}");
    assert_eq!(
        reservations, 1,
        "a retried reservation must never reserve twice"
    );

    // Another order wants the sold-out item: 409, not stored, so its retry
    // runs again (and would succeed had stock come back meanwhile).
    let other = || {
        client
            .post(&url)
            .header("Idempotency-Key", "order_124_line_1_reservation")
            .header("content-type", "application/json")
            .body(r#"{"sku":"sku-last-item","quantity":1}"#)
            .send()
    };
    let sold_out = other().await?;
    assert_eq!(sold_out.status(), StatusCode::CONFLICT);
    show("order 124: reserve the sold-out item", sold_out).await;
    let retried = other().await?;
    assert!(!retried.headers().contains_key("idempotent-replayed"));
    show("order 124: retry (runs again, not replayed)", retried).await;
    server.abort();
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!(
        "rebound-inventory-example-{}.redb",
        std::process::id()
    )));
    Ok(())
}
