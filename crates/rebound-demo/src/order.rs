//! The order service: `POST /orders` reserves a unit at the inventory
//! (through the chaos proxy) and answers the customer. The rebound side
//! sends the order's `Idempotency-Key`, and when the inventory cannot be
//! reached its fallback queues the order for the warehouse to reserve
//! later; the naive side tells the customer it failed.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rebound::fallback::{Cause, Fallback};
use rebound_http::RetryReport;
use reqwest_middleware::ClientWithMiddleware;
use tokio::task::JoinHandle;

use crate::fulfilment::{OrderJob, Warehouse, RESERVATIONS, SHIPPING};

/// How a reservation ended, as the order service sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// 201: a unit is the customer's.
    Confirmed,
    /// 409: none left.
    SoldOut,
    /// The inventory could not be reached, and why (as a fallback sees it).
    Failed(Cause),
}

/// Reserves one unit of `sku` for `order` at `inventory` through `client`
/// (which retries as it is configured to). With `keyed`, the request
/// carries the order's `Idempotency-Key`, the same on every attempt.
pub async fn reserve(
    client: &ClientWithMiddleware,
    inventory: &str,
    order: u64,
    sku: u32,
    keyed: bool,
) -> Reserved {
    let mut request = client
        .post(format!("{inventory}/reservations"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"order":{order},"sku":{sku}}}"#));
    if keyed {
        request = request.header("Idempotency-Key", format!("\"order-{order}\""));
    }
    match request.send().await {
        Ok(r) if r.status() == StatusCode::CREATED => Reserved::Confirmed,
        // The inventory's own 409; the idempotency layer's 409 (another
        // attempt with this key is still running) is a problem document,
        // and not an answer about the stock.
        Ok(r) if r.status() == StatusCode::CONFLICT && !is_problem(&r) => Reserved::SoldOut,
        Ok(r) => Reserved::Failed(
            RetryReport::of(&r)
                .and_then(|report| Cause::from_stop(report.stop(), false))
                .unwrap_or(Cause::Failed),
        ),
        Err(reqwest_middleware::Error::Middleware(e)) => Reserved::Failed(
            e.downcast_ref::<rebound_http::Error>()
                .and_then(|e| Cause::from_stop(e.stop(), e.is_timeout()))
                .unwrap_or(Cause::Failed),
        ),
        Err(e) if e.is_timeout() => Reserved::Failed(Cause::Timeout),
        Err(_) => Reserved::Failed(Cause::Failed),
    }
}

/// Whether the response is an RFC 9457 problem document.
fn is_problem(r: &reqwest::Response) -> bool {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"))
}

/// A customer's order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlaceOrder {
    /// The order number.
    pub order: u64,
    /// The product.
    pub sku: u32,
    /// Whether the shipping address is one the label printer chokes on.
    pub bad_address: bool,
}

/// What the order service counted.
#[derive(Debug, Default)]
pub struct OrderCounts {
    /// Reserved at once.
    pub confirmed: AtomicU64,
    /// Queued by the fallback (rebound side).
    pub queued: AtomicU64,
    /// Sold out.
    pub sold_out: AtomicU64,
    /// Failed: the customer saw an error.
    pub failed: AtomicU64,
}

#[derive(Clone)]
struct App {
    client: ClientWithMiddleware,
    inventory: String,
    keyed: bool,
    fallback: Option<(Fallback, Arc<Warehouse>)>,
    counts: Arc<OrderCounts>,
}

async fn place(State(app): State<App>, Json(o): Json<PlaceOrder>) -> (StatusCode, &'static str) {
    let job = OrderJob {
        order: o.order,
        sku: o.sku,
        bad_address: o.bad_address,
    };
    match reserve(&app.client, &app.inventory, o.order, o.sku, app.keyed).await {
        Reserved::Confirmed => {
            app.counts.confirmed.fetch_add(1, Ordering::Relaxed);
            if let Some((_, warehouse)) = &app.fallback {
                let _ = warehouse.enqueue(SHIPPING, &job).await;
            }
            (StatusCode::CREATED, "confirmed")
        }
        Reserved::SoldOut => {
            app.counts.sold_out.fetch_add(1, Ordering::Relaxed);
            (StatusCode::CONFLICT, "sold out")
        }
        Reserved::Failed(cause) => match &app.fallback {
            Some((fallback, warehouse)) if fallback.covers(cause) => {
                match warehouse.enqueue(RESERVATIONS, &job).await {
                    Ok(()) => {
                        fallback.record_use(cause);
                        app.counts.queued.fetch_add(1, Ordering::Relaxed);
                        (StatusCode::ACCEPTED, "queued: we will confirm by email")
                    }
                    Err(_) => {
                        app.counts.failed.fetch_add(1, Ordering::Relaxed);
                        (StatusCode::SERVICE_UNAVAILABLE, "failed")
                    }
                }
            }
            _ => {
                app.counts.failed.fetch_add(1, Ordering::Relaxed);
                (StatusCode::SERVICE_UNAVAILABLE, "failed")
            }
        },
    }
}

/// A running order service.
pub struct OrderService {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it counted.
    pub counts: Arc<OrderCounts>,
    task: JoinHandle<()>,
}

impl Drop for OrderService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an order service on 127.0.0.1 calling `inventory` through
/// `client`; with a `warehouse`, it sends keys and queues what fails.
pub async fn start(
    client: ClientWithMiddleware,
    inventory: String,
    warehouse: Option<Arc<Warehouse>>,
) -> std::io::Result<OrderService> {
    let counts = Arc::new(OrderCounts::default());
    let app = App {
        client,
        inventory,
        keyed: warehouse.is_some(),
        fallback: warehouse.map(|w| (Fallback::builder().dependency("inventory").build(), w)),
        counts: counts.clone(),
    };
    let router = Router::new().route("/orders", post(place)).with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).into_future().await;
    });
    Ok(OrderService { addr, counts, task })
}
