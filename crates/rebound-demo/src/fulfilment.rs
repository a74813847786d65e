//! The warehouse: two queues in one embedded (redb) file, each worked by a
//! rebound-jobs worker. `reservations` holds orders the order service could
//! not reserve (its fallback queued them); `shipping` holds confirmed
//! orders to pack and ship. Some orders carry an address the label printer
//! cannot print: those jobs fail every time and end in the dead-letter
//! queue instead of blocking the warehouse.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rebound::{Backoff, Clock, Jitter, RandomSource};
use rebound_jobs::{
    DeliveryPolicy, EmbeddedQueue, JobContext, JobError, NewJob, Queue, Worker, WorkerHandle,
};
use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};

use crate::order::{reserve, Reserved};

/// The queue of orders waiting for a reservation.
pub const RESERVATIONS: &str = "reservations";
/// The queue of confirmed orders waiting to ship.
pub const SHIPPING: &str = "shipping";

/// A job: an order to reserve later, or to ship.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderJob {
    /// The order.
    pub order: u64,
    /// Its product.
    pub sku: u32,
    /// Whether its shipping label cannot be printed (a poison task).
    pub bad_address: bool,
}

/// What the warehouse counted.
#[derive(Debug, Default)]
pub struct WarehouseCounts {
    /// Orders shipped.
    pub shipped: AtomicU64,
    /// Queued orders reserved by the worker.
    pub reserved_later: AtomicU64,
}

/// The queue file and its two workers.
pub struct Warehouse {
    /// The embedded queue.
    pub queue: EmbeddedQueue,
    /// What it counted.
    pub counts: Arc<WarehouseCounts>,
    workers: Vec<WorkerHandle>,
}

impl Warehouse {
    /// Opens the queue at `path` and starts the workers; queued
    /// reservations call the inventory through `client` at `inventory`.
    pub fn start(
        path: &Path,
        client: ClientWithMiddleware,
        inventory: String,
        seed: u64,
    ) -> Result<Warehouse, Box<dyn std::error::Error + Send + Sync>> {
        let queue = EmbeddedQueue::open(path)?;
        let counts = Arc::new(WarehouseCounts::default());
        // Reservations wait out an outage: many attempts, backing off to 2 s.
        let later = DeliveryPolicy::builder()
            .max_attempts(50)
            .backoff(
                Backoff::exponential(Duration::from_millis(250))
                    .with_max_delay(Duration::from_secs(2))
                    .with_jitter(Jitter::Full),
            )
            .build()?;
        // A label that fails three times will not print: dead-letter it.
        let ship = DeliveryPolicy::builder()
            .max_attempts(3)
            .backoff(Backoff::exponential(Duration::from_millis(100)).with_jitter(Jitter::Full))
            .build()?;
        let (c, q) = (counts.clone(), queue.clone());
        let reserver = Worker::builder(queue.clone(), RESERVATIONS)
            .policy(later)
            .concurrency(4)
            .poll_interval(Duration::from_millis(50))
            .random(RandomSource::seeded(seed ^ 0x1a7e))
            .handler(move |_ctx: JobContext, job: OrderJob| {
                let (client, inventory, c, q) =
                    (client.clone(), inventory.clone(), c.clone(), q.clone());
                async move {
                    match reserve(&client, &inventory, job.order, job.sku, true).await {
                        Reserved::Confirmed => {
                            c.reserved_later.fetch_add(1, Ordering::Relaxed);
                            q.enqueue(NewJob::json(SHIPPING, &job)?).await?;
                            Ok(())
                        }
                        // The customer is told it sold out; nothing to retry.
                        Reserved::SoldOut => Ok(()),
                        Reserved::Failed(cause) => Err(JobError::msg(format!(
                            "inventory unavailable ({})",
                            cause.as_str()
                        ))),
                    }
                }
            })
            .build()?
            .spawn();
        let c = counts.clone();
        let shipper = Worker::builder(queue.clone(), SHIPPING)
            .policy(ship)
            .concurrency(4)
            .poll_interval(Duration::from_millis(50))
            .random(RandomSource::seeded(seed ^ 0x5419))
            .handler(move |_ctx: JobContext, job: OrderJob| {
                let c = c.clone();
                async move {
                    if job.bad_address {
                        return Err(JobError::msg(format!(
                            "label printer: cannot print the address of order {}",
                            job.order
                        )));
                    }
                    c.shipped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            })
            .build()?
            .spawn();
        Ok(Warehouse {
            queue,
            counts,
            workers: vec![reserver, shipper],
        })
    }

    /// Puts an order in a queue.
    pub async fn enqueue(
        &self,
        queue: &str,
        job: &OrderJob,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let delay = if queue == RESERVATIONS {
            Duration::from_millis(500)
        } else {
            Duration::ZERO
        };
        self.queue
            .enqueue(NewJob::json(queue, job)?.delay(delay))
            .await?;
        Ok(())
    }

    /// Jobs in the dead-letter queue, both queues together.
    pub async fn dead_letters(&self) -> u64 {
        let now = rebound_jobs::time::wall(&Clock::default());
        let mut dead = 0;
        for q in [RESERVATIONS, SHIPPING] {
            if let Ok(c) = self.queue.counts(q, now).await {
                dead += c.dead;
            }
        }
        dead
    }

    /// Stops the workers.
    pub async fn shutdown(self) {
        for w in self.workers {
            w.shutdown().await;
        }
    }
}
