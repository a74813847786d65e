//! One side of the story: an inventory, the chaos proxy in front of it, an
//! order service calling it through a configured client, and (rebound
//! side) the warehouse queue.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rebound::BudgetSnapshot;
use rebound_chaos::{ChaosProxy, Timeline};
use rebound_http::RetryMiddleware;
use reqwest_middleware::ClientBuilder;

use crate::fulfilment::Warehouse;
use crate::inventory::{self, Inventory};
use crate::order::{self, OrderService};
use crate::sample::{quantile, SideSample};
use crate::{clients, DemoError};

/// Which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 3 immediate retries, no key, no budget, no breaker.
    Naive,
    /// rebound's policy, keys, fallback queue, dead-letter queue.
    Rebound,
}

impl Kind {
    /// `naive` or `rebound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Naive => "naive",
            Kind::Rebound => "rebound",
        }
    }
}

/// Cumulative counters at the last sample.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    placed: u64,
    attempts: u64,
    confirmed: u64,
    queued: u64,
    failed: u64,
    sold_out: u64,
}

pub(crate) struct Side {
    pub kind: Kind,
    pub proxy: ChaosProxy,
    pub inventory: Inventory,
    pub orders: OrderService,
    pub warehouse: Option<Arc<Warehouse>>,
    middleware: RetryMiddleware,
    authority: String,
    /// Orders placed by the load generator.
    pub placed: AtomicU64,
    /// Response times (ms) of orders that ended since the last sample.
    pub latencies: Mutex<Vec<f64>>,
    seen: Mutex<Seen>,
}

impl Side {
    pub(crate) async fn start(
        kind: Kind,
        dir: &Path,
        timeline: Timeline,
        seed: u64,
        skus: u32,
        units: u32,
    ) -> Result<Side, DemoError> {
        let what = |e: &dyn std::fmt::Display| DemoError(format!("{}: {e}", kind.as_str()));
        let inventory = inventory::start(
            &dir.join(format!("inventory-{}.redb", kind.as_str())),
            skus,
            units,
        )
        .await
        .map_err(|e| what(&e))?;
        let proxy = ChaosProxy::builder(format!("http://{}", inventory.addr))
            .timeline(timeline)
            .seed(seed)
            .start()
            .await
            .map_err(|e| what(&e))?;
        let middleware = match kind {
            Kind::Naive => clients::naive(seed),
            Kind::Rebound => clients::rebound(seed),
        }
        .map_err(|e| what(&e))?;
        let http = reqwest::Client::builder().build().map_err(|e| what(&e))?;
        let client = ClientBuilder::new(http).with(middleware.clone()).build();
        let warehouse = match kind {
            Kind::Naive => None,
            Kind::Rebound => Some(Arc::new(
                Warehouse::start(
                    &dir.join("warehouse.redb"),
                    client.clone(),
                    proxy.url(),
                    seed,
                )
                .map_err(|e| what(&e))?,
            )),
        };
        let orders = order::start(client, proxy.url(), warehouse.clone())
            .await
            .map_err(|e| what(&e))?;
        Ok(Side {
            kind,
            authority: proxy.addr().to_string(),
            proxy,
            inventory,
            orders,
            warehouse,
            middleware,
            placed: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            seen: Mutex::new(Seen::default()),
        })
    }

    /// The figures since the last call; the drained response times are
    /// appended to `phase_latencies`.
    pub(crate) async fn sample(&self, phase_latencies: &mut Vec<f64>) -> SideSample {
        let now = Seen {
            placed: self.placed.load(Ordering::Relaxed),
            attempts: self.proxy.counts().requests(),
            confirmed: self.orders.counts.confirmed.load(Ordering::Relaxed),
            queued: self.orders.counts.queued.load(Ordering::Relaxed),
            failed: self.orders.counts.failed.load(Ordering::Relaxed),
            sold_out: self.orders.counts.sold_out.load(Ordering::Relaxed),
        };
        let before = std::mem::replace(
            &mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()),
            now,
        );
        let mut lat =
            std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|p| p.into_inner()));
        phase_latencies.extend_from_slice(&lat);
        let host = self.middleware.host(&self.authority);
        let orders = now.placed - before.placed;
        let attempts = now.attempts - before.attempts;
        let inv = &self.inventory.counts;
        SideSample {
            orders,
            attempts,
            load: if orders == 0 {
                0.0
            } else {
                attempts as f64 / orders as f64
            },
            breaker: host
                .as_ref()
                .and_then(|h| h.breaker().map(|b| b.state().as_str()))
                .unwrap_or(if self.kind == Kind::Naive {
                    "none"
                } else {
                    "closed"
                }),
            budget_left: match self.kind {
                Kind::Naive => None,
                Kind::Rebound => Some(
                    match host.as_ref().and_then(|h| h.budget()).map(|b| b.snapshot()) {
                        Some(BudgetSnapshot::Ratio {
                            retries, allowed, ..
                        }) => (allowed - retries as f64).max(0.0),
                        Some(BudgetSnapshot::TokenBucket { tokens, .. }) => tokens,
                        Some(_) | None => 0.0,
                    },
                ),
            },
            duplicates_prevented: inv.duplicates_prevented.load(Ordering::Relaxed),
            double_reservations: inv.double_reservations.load(Ordering::Relaxed),
            dead_letters: match &self.warehouse {
                Some(w) => Some(w.dead_letters().await),
                None => None,
            },
            p99_ms: quantile(&mut lat, 0.99),
            confirmed: now.confirmed - before.confirmed,
            queued: now.queued - before.queued,
            failed: now.failed - before.failed,
            sold_out: now.sold_out - before.sold_out,
        }
    }
}
