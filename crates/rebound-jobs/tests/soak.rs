//! 10,000 jobs, 4 workers, random transient failures: every job is acked
//! or dead-lettered, none is lost, none runs in two places at once, and the
//! counters agree. Real time with millisecond backoffs (what is checked is
//! integrity, not timing).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::harness;
use rebound::{Backoff, RandomSource};
use rebound_jobs::metrics::{DEAD_LETTER_MESSAGES_TOTAL, JOBS_PROCESSED_TOTAL};
use rebound_jobs::time::wall;
use rebound_jobs::{
    dlq, DeadLetterFilter, DeliveryPolicy, JobContext, JobError, JobId, NewJob, Queue, Worker,
};

const JOBS: u32 = 10_000;

/// Whether run `attempt` of job `n` fails: about 30 % of runs, fixed by a
/// hash so the set of failures does not depend on scheduling.
fn fails(n: u32, attempt: u32) -> bool {
    // SplitMix64 of (n, attempt).
    let mut z = (u64::from(n) << 8 | u64::from(attempt)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 100 < 30
}

async fn soak(queue: Arc<dyn Queue>, name: String) {
    harness::metrics();
    let clock = queue.clock().clone();
    let jobs: Vec<_> = (0..JOBS)
        .map(|n| NewJob::json(&name, &n).unwrap())
        .collect();
    let mut ids = Vec::new();
    for chunk in jobs.chunks(1000) {
        ids.extend(
            queue
                .enqueue_many_at(chunk.to_vec(), wall(&clock))
                .await
                .unwrap(),
        );
    }
    let all: HashSet<JobId> = ids.iter().copied().collect();
    assert_eq!(all.len(), JOBS as usize);

    let running: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    let succeeded: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    let overlap = Arc::new(AtomicBool::new(false));
    let policy = DeliveryPolicy::builder()
        .max_attempts(3)
        .backoff(
            Backoff::constant(Duration::from_millis(2)).with_max_delay(Duration::from_millis(2)),
        )
        .build()
        .unwrap();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (running, succeeded, overlap) =
                (running.clone(), succeeded.clone(), overlap.clone());
            Worker::builder(queue.clone(), name.clone())
                .worker_id(format!("soak-{w}"))
                .concurrency(32)
                .poll_interval(Duration::from_millis(5))
                .random(RandomSource::seeded(w))
                .policy(policy)
                .handler(move |ctx: JobContext, n: u32| {
                    let (running, succeeded, overlap) =
                        (running.clone(), succeeded.clone(), overlap.clone());
                    async move {
                        if !running.lock().unwrap().insert(ctx.id()) {
                            overlap.store(true, Ordering::SeqCst);
                        }
                        tokio::task::yield_now().await;
                        running.lock().unwrap().remove(&ctx.id());
                        if fails(n, ctx.attempt()) {
                            return Err(JobError::msg(format!("flaky dependency ({n})")));
                        }
                        succeeded.lock().unwrap().insert(ctx.id());
                        Ok(())
                    }
                })
                .build()
                .unwrap()
                .spawn()
        })
        .collect();

    let started = Instant::now();
    loop {
        // Done when every job is acked or dead-lettered (what every
        // backend can tell, brokers included).
        let dead = queue.dead_letter_depth(Some(&name)).await.unwrap();
        let acked = harness::counter(JOBS_PROCESSED_TOTAL, &name, None);
        if dead + acked >= u64::from(JOBS) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "after 150 s: {acked} acked, {dead} dead-lettered of {JOBS}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for w in workers {
        w.shutdown().await;
    }

    assert!(
        !overlap.load(Ordering::SeqCst),
        "a job ran in two places at once"
    );
    let succeeded = succeeded.lock().unwrap().clone();
    let dead: HashSet<JobId> =
        dlq::list(&*queue, &DeadLetterFilter::default().queue(&name), 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
    let expected_dead: HashSet<JobId> = ids
        .iter()
        .zip(0..JOBS)
        .filter(|(_, n)| (1..=3).all(|a| fails(*n, a)))
        .map(|(id, _)| *id)
        .collect();
    // ~30 % of first runs fail, ~2.7 % of jobs fail all three.
    assert!((150..450).contains(&dead.len()), "{} dead", dead.len());
    assert!(succeeded.is_disjoint(&dead));
    assert_eq!(&succeeded | &dead, all, "a job was lost");
    assert_eq!(
        dead, expected_dead,
        "dead-lettered exactly the jobs that failed 3 times"
    );
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &name, Some("exhausted")),
        dead.len() as u64
    );
    assert_eq!(
        harness::counter(JOBS_PROCESSED_TOTAL, &name, None),
        succeeded.len() as u64
    );
    println!(
        "{JOBS} jobs through 4 workers in {:.1} s: {} acked, {} dead-lettered",
        started.elapsed().as_secs_f64(),
        succeeded.len(),
        dead.len()
    );
}

#[cfg(feature = "embedded")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_10k_jobs_4_workers_random_failures_none_lost() {
    let (q, _dir) = common::embedded_queue(rebound::Clock::default());
    soak(Arc::new(q), common::unique("soak")).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_10k_jobs_4_workers_random_failures_none_lost() {
    let Some(q) = common::postgres_queue(rebound::Clock::default()).await else {
        return;
    };
    soak(Arc::new(q), common::unique("soak")).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_10k_jobs_4_workers_random_failures_none_lost() {
    let Some(env) = harness::redis_env().await else {
        return;
    };
    soak(env.queue.clone(), env.name.clone()).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_10k_jobs_4_workers_random_failures_none_lost() {
    let Some(env) = harness::nats_env().await else {
        return;
    };
    soak(env.queue.clone(), env.name.clone()).await;
}

#[cfg(feature = "amqp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_10k_jobs_4_workers_random_failures_none_lost() {
    let Some(env) = harness::amqp_env().await else {
        return;
    };
    soak(env.queue.clone(), env.name.clone()).await;
}
