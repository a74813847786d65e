//! Jobs per second with a no-op handler: rebound-jobs' PostgreSQL queue
//! against apalis' PostgreSQL backend (apalis-postgres) in the same run, on
//! the same database; and rebound-jobs' embedded queue.
//!
//! Each measured batch: enqueue N jobs (not timed), then time from starting
//! a worker until the database shows all N completed (rebound: no rows
//! left; apalis: N rows `Done`), then stop the worker. Both workers run 32
//! jobs at once and fetch 32 at a time.
//!
//! ```text
//! REBOUND_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p rebound-jobs --all-features --bench throughput
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rebound_jobs::{JobContext, JobError, NewJob, Queue, Worker};

const N: u64 = 2_000;
const CONCURRENCY: usize = 32;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    )
}

/// One batch through a rebound-jobs queue: the time from starting the
/// worker until no job is left.
async fn rebound_batch(queue: Arc<dyn Queue>, name: &str) -> Duration {
    let now = rebound_jobs::time::wall(queue.clock());
    let jobs = (0..N).map(|i| NewJob::json(name, &i).unwrap()).collect();
    queue.enqueue_many_at(jobs, now).await.unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let start = Instant::now();
    let worker = Worker::builder(queue.clone(), name)
        .concurrency(CONCURRENCY)
        .claim_batch(CONCURRENCY)
        .poll_interval(Duration::from_millis(5))
        .handler(move |_ctx: JobContext, _: u64| {
            d.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, JobError>(()) }
        })
        .build()
        .unwrap()
        .spawn();
    loop {
        let c = queue
            .counts(name, rebound_jobs::time::wall(queue.clock()))
            .await
            .unwrap();
        if c.pending() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    worker.shutdown().await;
    assert_eq!(done.load(Ordering::Relaxed), N);
    took
}

mod apalis_side {
    use super::*;
    use apalis::prelude::*;
    use apalis_postgres::{Config, PgPool, PostgresStorage};
    use futures::stream::{self, StreamExt};

    async fn noop(_: u64) -> Result<(), BoxDynError> {
        Ok(())
    }

    pub struct Apalis {
        pub pool: PgPool,
        pub queue: String,
        pub client: tokio_postgres::Client,
    }

    impl Apalis {
        pub async fn connect(url: &str) -> Apalis {
            let pool = PgPool::connect(url).await.unwrap();
            PostgresStorage::setup(&pool).await.unwrap();
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            Apalis {
                pool,
                queue: unique("rebound_bench_apalis"),
                client,
            }
        }

        /// One batch: the time from starting the worker until the database
        /// has all N jobs `Done`.
        pub async fn batch(&self, round: u64) -> Duration {
            let config = Config::default().queue(&self.queue).batch_size(CONCURRENCY);
            let mut storage = PostgresStorage::<u64>::new(&self.pool).with_config(config);
            let mut items = stream::iter(0..N).map(|i| TaskBuilder::new(i).build());
            storage.push_all(&mut items).await.unwrap();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let start = Instant::now();
            let worker = WorkerBuilder::new(format!("{}-{round}", self.queue))
                .backend(storage)
                .parallelize(tokio::spawn)
                .concurrency(CONCURRENCY)
                .build(noop);
            let task = tokio::spawn(worker.run_until(async move {
                let _ = stop_rx.await;
                Ok::<(), std::io::Error>(())
            }));
            loop {
                let row = self
                    .client
                    .query_one(
                        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'",
                        &[&self.queue],
                    )
                    .await
                    .unwrap();
                if row.get::<_, i64>(0) as u64 >= N {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let took = start.elapsed();
            let _ = stop_tx.send(());
            let _ = task.await;
            self.client
                .execute(
                    "DELETE FROM apalis.jobs WHERE job_type = $1",
                    &[&self.queue],
                )
                .await
                .unwrap();
            took
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("jobs_noop");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(20));

    match std::env::var("REBOUND_POSTGRES_URL") {
        Ok(url) => {
            let table = unique("jobs_bench");
            let queue: Arc<dyn Queue> = rt.block_on(async {
                let q = rebound_jobs::PostgresQueue::connect(&url)
                    .unwrap()
                    .with_table(&table)
                    .unwrap();
                q.migrate().await.unwrap();
                Arc::new(q)
            });
            let name = unique("bench");
            group.bench_function(BenchmarkId::new("postgres", "rebound-jobs"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (queue, name) = (queue.clone(), name.clone());
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += rebound_batch(queue.clone(), &name).await;
                        }
                        total
                    }
                })
            });
            let apalis = rt.block_on(apalis_side::Apalis::connect(&url));
            let round = AtomicU64::new(0);
            group.bench_function(BenchmarkId::new("postgres", "apalis-postgres"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let apalis = &apalis;
                    let round = &round;
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += apalis.batch(round.fetch_add(1, Ordering::Relaxed)).await;
                        }
                        total
                    }
                })
            });
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let _ = client.batch_execute(&format!("DROP TABLE {table}")).await;
            });
        }
        Err(_) => println!("REBOUND_POSTGRES_URL not set: PostgreSQL benchmarks skipped"),
    }

    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Queue> =
        Arc::new(rebound_jobs::EmbeddedQueue::open(dir.path().join("bench.redb")).unwrap());
    group.bench_function(BenchmarkId::new("embedded", "rebound-jobs"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let queue = embedded.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rebound_batch(queue.clone(), "bench").await;
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
