//! Exactly-once effects on at-least-once delivery: a worker charges a card
//! for a job, then dies before it can ack. The job is delivered again after
//! its lease; the charge, run through `JobContext::once` on an idempotency
//! store (a redb file here; PostgreSQL or Redis in production), is not made
//! twice: the second delivery gets the first charge's receipt back.
//!
//! The worker runs on a manual clock this example moves, so the lease runs
//! out at once. In production, leave the clock out.
//!
//! ```text
//! cargo run -p rebound-jobs --features idempotency --example exactly_once
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rebound::Clock;
use rebound_jobs::rebound_idempotency::once::Once;
use rebound_jobs::rebound_idempotency::RedbStore;
use rebound_jobs::{EmbeddedQueue, JobContext, JobError, NewJob, Queue, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Charge {
    order: String,
    cents: u64,
}

/// The card processor: every call is a charge.
#[derive(Default)]
struct Processor {
    charges: AtomicU32,
}

impl Processor {
    async fn charge(&self, job: &Charge) -> Result<String, JobError> {
        let n = self.charges.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(format!("ch_{n} for {} ({} cents)", job.order, job.cents))
    }
}

/// The handler: the charge goes through `ctx.once`; what follows it (here,
/// waiting for `die` to say whether this worker dies before its ack) does
/// not need to.
fn handler(
    once: Once,
    processor: Arc<Processor>,
    die: bool,
) -> impl Fn(JobContext, Charge) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>
       + Send
       + Sync
       + 'static {
    move |ctx: JobContext, job: Charge| {
        let (once, processor) = (once.clone(), processor.clone());
        Box::pin(async move {
            let receipt = ctx
                .once(&once, "charge", |_run| async {
                    processor.charge(&job).await
                })
                .await?;
            println!(
                "delivery {} of job {}: {} {}",
                ctx.attempt(),
                ctx.id(),
                if receipt.is_replayed() {
                    "replayed"
                } else {
                    "charged"
                },
                receipt.into_inner()
            );
            if die {
                println!("  ... and the worker dies before it can ack");
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (clock, manual) = Clock::manual();
    let queue = EmbeddedQueue::open(dir.path().join("jobs.redb"))?.with_clock(clock.clone());
    let once = Once::builder(RedbStore::open(dir.path().join("effects.redb"))?)
        .name("charges")
        .clock(clock.clone())
        .build()?;
    let processor = Arc::new(Processor::default());
    let id = queue
        .enqueue(NewJob::json(
            "charges",
            &Charge {
                order: "o-123".into(),
                cents: 4200,
            },
        )?)
        .await?;

    // The first worker charges, then dies (aborted: no ack, no hand-back).
    let dying = Worker::builder(queue.clone(), "charges")
        .clock(clock.clone())
        .handler(handler(once.clone(), processor.clone(), true))
        .build()?
        .spawn();
    while processor.charges.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dying.abort();

    // Its lease (30 s) runs out; the next worker rescues the job and runs
    // it again.
    let healthy = Worker::builder(queue.clone(), "charges")
        .clock(clock.clone())
        .handler(handler(once, processor.clone(), false))
        .build()?
        .spawn();
    let mut steps = 0;
    while queue.job(id).await?.is_some() {
        assert!(steps < 2_000, "the job was not redelivered");
        manual.advance(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(2)).await;
        steps += 1;
    }
    healthy.shutdown().await;
    let n = processor.charges.load(Ordering::SeqCst);
    println!("delivered twice, charged {n} time(s)");
    assert_eq!(n, 1);
    Ok(())
}
