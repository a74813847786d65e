//! The inventory service: `POST /reservations` behind rebound's
//! idempotency layer on the embedded redb store. It counts what the story
//! is about: an order reserved more than once.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rebound_idempotency::{IdempotencyLayer, RedbStore, RequestOutcome};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// A reservation request: one unit of `sku` for `order`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reserve {
    /// The order the unit is for.
    pub order: u64,
    /// The product.
    pub sku: u32,
}

/// What the inventory counts, read by the sampler.
#[derive(Debug, Default)]
pub struct InventoryCounts {
    /// Requests that reached the handler (the idempotency layer let them
    /// through).
    pub handled: AtomicU64,
    /// Units reserved.
    pub reserved: AtomicU64,
    /// Units reserved for an order that already had one: a customer's
    /// retry took a second unit, which another customer then could not buy.
    pub double_reservations: AtomicU64,
    /// Retries the idempotency layer answered from its store (replayed) or
    /// held off (in progress) instead of reserving again.
    pub duplicates_prevented: AtomicU64,
    /// Reservations refused: the product was sold out.
    pub sold_out: AtomicU64,
}

struct Stock {
    units: Vec<u32>,
    per_order: HashMap<u64, u32>,
}

#[derive(Clone)]
struct App {
    stock: Arc<Mutex<Stock>>,
    counts: Arc<InventoryCounts>,
}

/// A running inventory service.
pub struct Inventory {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it counted.
    pub counts: Arc<InventoryCounts>,
    task: JoinHandle<()>,
}

impl Drop for Inventory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn reserve(State(app): State<App>, Json(req): Json<Reserve>) -> (StatusCode, String) {
    app.counts.handled.fetch_add(1, Ordering::Relaxed);
    let mut stock = app.stock.lock().unwrap_or_else(|p| p.into_inner());
    let Some(left) = stock.units.get_mut(req.sku as usize) else {
        return (StatusCode::NOT_FOUND, format!("no sku {}", req.sku));
    };
    if *left == 0 {
        app.counts.sold_out.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::CONFLICT, format!("sku {} sold out", req.sku));
    }
    *left -= 1;
    let left = *left;
    let n = stock.per_order.entry(req.order).or_insert(0);
    *n += 1;
    if *n > 1 {
        app.counts
            .double_reservations
            .fetch_add(1, Ordering::Relaxed);
    }
    app.counts.reserved.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        format!(
            r#"{{"order":{},"sku":{},"left":{left}}}"#,
            req.order, req.sku
        ),
    )
}

/// Starts the inventory on 127.0.0.1 with `skus` products of `units` each,
/// its idempotency records in a redb file at `store`.
pub async fn start(store: &Path, skus: u32, units: u32) -> std::io::Result<Inventory> {
    let counts = Arc::new(InventoryCounts::default());
    let store = RedbStore::open(store).map_err(std::io::Error::other)?;
    let seen = counts.clone();
    let idempotency = IdempotencyLayer::builder(store)
        .name("inventory")
        .single_tenant()
        // The naive side sends no key: its requests pass through unprotected.
        .require_key(false)
        .on_event(move |e| {
            // A retry answered from the store, or held off while the first
            // attempt runs: a second reservation that did not happen.
            if matches!(
                e.outcome,
                RequestOutcome::Replayed | RequestOutcome::InProgress | RequestOutcome::Waiting
            ) {
                seen.duplicates_prevented.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .map_err(std::io::Error::other)?;
    let app = App {
        stock: Arc::new(Mutex::new(Stock {
            units: vec![units; skus as usize],
            per_order: HashMap::new(),
        })),
        counts: counts.clone(),
    };
    let router = Router::new()
        .route("/reservations", post(reserve))
        .layer(idempotency)
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).into_future().await;
    });
    Ok(Inventory { addr, counts, task })
}
