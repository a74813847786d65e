//! The invoice-sync worker: push invoices to a partner's API that is down
//! for three hours. Jobs retry with full-jitter backoff until it is back;
//! an invoice the partner will never accept is dead-lettered at once; after
//! the fix, the dead-letter queue is redriven.
//!
//! Six hours pass in a few seconds: the worker runs on a manual clock that
//! this example moves forward ten seconds at a time, every 2 ms (so times
//! printed are late by the example's steps while the worker writes to
//! disk). In production, leave the clock out and it reads the real one.
//!
//! ```text
//! cargo run -p rebound-jobs --example invoice_sync
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound::{Clock, RandomSource};
use rebound_jobs::time::wall;
use rebound_jobs::{
    dlq, DeadLetterFilter, EmbeddedQueue, JobContext, JobError, NewJob, Queue, RedriveOptions,
    Timestamp, Worker,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct SyncInvoice {
    invoice: u64,
}

/// The partner's API: unreachable until `back_at`, and it only knows some
/// invoices. Pushes are keyed, so a second push of the same job is a no-op.
struct Partner {
    back_at: Timestamp,
    known: Mutex<HashSet<u64>>,
    pushed: Mutex<HashSet<String>>,
}

impl Partner {
    fn push(&self, now: Timestamp, key: &str, invoice: u64) -> Result<(), JobError> {
        if now < self.back_at {
            return Err(JobError::msg("partner API: 503 Service Unavailable"));
        }
        if !self.known.lock().unwrap().contains(&invoice) {
            return Err(JobError::permanent(std::io::Error::other(format!(
                "partner API: 422 unknown customer on invoice {invoice}"
            ))));
        }
        self.pushed.lock().unwrap().insert(key.to_owned());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("invoices.redb");
    let (clock, manual) = Clock::manual();
    let start = wall(&clock);
    let minutes = move |t: Timestamp| t.saturating_since(start).as_secs() / 60;

    // 1. Enqueue: one job per invoice, in a queue file that survives restarts.
    let queue = EmbeddedQueue::open(&path)?.with_clock(clock.clone());
    for invoice in [1001, 1002, 1003] {
        queue
            .enqueue(NewJob::json("invoices", &SyncInvoice { invoice })?)
            .await?;
    }

    // 2. The handler. Transient errors are retried with the default policy
    //    (25 attempts, exponential from 15 s, capped at 4 h, full jitter, a
    //    7-day maximum age); permanent ones go to the dead-letter queue.
    let partner = Arc::new(Partner {
        back_at: start + Duration::from_secs(3 * 3600),
        known: Mutex::new(HashSet::from([1001, 1002])),
        pushed: Mutex::new(HashSet::new()),
    });
    let p = partner.clone();
    let c = clock.clone();
    let worker = Worker::builder(queue.clone(), "invoices")
        .random(RandomSource::seeded(2024))
        // This example moves its clock in jumps; a lease shorter than a
        // few jumps would look like a worker freezing.
        .lease(Duration::from_secs(600))
        .handler(move |ctx: JobContext, job: SyncInvoice| {
            let (p, c) = (p.clone(), c.clone());
            async move {
                let now = wall(&c);
                let result = p.push(now, ctx.idempotency_key(), job.invoice);
                println!(
                    "  +{:>3} min  invoice {}  attempt {:>2}  {}",
                    minutes(now),
                    job.invoice,
                    ctx.attempt(),
                    match &result {
                        Ok(()) => "synced".to_owned(),
                        Err(e) => e.to_string(),
                    }
                );
                result
            }
        })
        .build()?
        .spawn();

    // 3. Six hours go by.
    println!("The partner API is down for 3 hours:");
    for _ in 0..6 * 360 {
        manual.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // 4. The dead-letter queue: payload, reason, every attempt's error.
    let dead = dlq::list(&queue, &DeadLetterFilter::default(), 100).await?;
    println!("\nDead-lettered:");
    for job in &dead {
        println!(
            "  job {} ({}): {}  payload {}",
            job.id,
            job.reason.map_or("?", |r| r.as_str()),
            job.last_error().unwrap_or("-"),
            job.payload_text().unwrap_or("(binary)")
        );
    }

    // 5. The customer is fixed at the partner: redrive (rate-limited; the
    //    job gets a fresh attempt budget).
    partner.known.lock().unwrap().insert(1003);
    let moved = dlq::redrive(
        &queue,
        &DeadLetterFilter::default(),
        RedriveOptions::default(),
    )
    .await?;
    println!("\nRedrove {moved} job(s) after the fix:");
    for _ in 0..30 {
        manual.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.shutdown().await;
    let counts = queue.counts("invoices", wall(&clock)).await?;
    println!(
        "\n{} invoices synced, {} waiting, {} dead-lettered.",
        partner.pushed.lock().unwrap().len(),
        counts.pending(),
        counts.dead
    );
    drop(queue);
    println!(
        "Inspect the queue file with the CLI (while no worker holds it):\n  \
         rebound dlq --file {} list\n  rebound dlq --file {} show 3",
        path.display(),
        path.display()
    );
    Ok(())
}
