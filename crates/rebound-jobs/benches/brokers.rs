//! Messages per second with a no-op handler through each broker adapter,
//! against the broker's own client consuming the same kind of stream in
//! the same run: the adapter's overhead.
//!
//! Each measured batch: publish N messages (not timed), then time from
//! starting the consumer until all N are acknowledged (the raw client) or
//! the handler has run N times (rebound-jobs; its last acknowledgements,
//! at most one claim batch, land just after). Both sides fetch 32 at a
//! time; rebound-jobs runs 32 jobs at once.
//!
//! * **Redis Streams**: the adapter (claim script: `XAUTOCLAIM` then
//!   `XREADGROUP`, the pending-entries count, a fenced settle script per
//!   job) against `XREADGROUP COUNT 32` + one `XACK` per batch.
//! * **NATS JetStream**: the adapter (durable pull consumer, acks waiting
//!   for the server's answer) against a durable pull consumer whose
//!   messages are acked without waiting (`Message::ack`).
//! * **RabbitMQ**: the adapter (quorum queue, prefetch 32) against a
//!   `basic.consume` on a quorum queue with prefetch 32 and one
//!   `basic.ack` per message.
//!
//! ```text
//! REBOUND_REDIS_URL=redis://127.0.0.1:6379 REBOUND_NATS_URL=nats://127.0.0.1:4222 \
//! REBOUND_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
//!   cargo bench -p rebound-jobs --all-features --bench brokers -- --warm-up-time 1 --measurement-time 3
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::StreamExt;
use rebound_jobs::{JobContext, JobError, NewJob, Queue, Worker};

const N: u64 = 1_000;
const BATCH: usize = 32;

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

/// One batch through an adapter: enqueue N (untimed), then the time from
/// starting a worker until its handler has run N times.
async fn rebound_batch(queue: Arc<dyn Queue>, name: &str) -> Duration {
    let now = rebound_jobs::time::wall(queue.clock());
    let jobs = (0..N).map(|i| NewJob::json(name, &i).unwrap()).collect();
    queue.enqueue_many_at(jobs, now).await.unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let (d, all) = (done.clone(), Arc::new(tokio::sync::Notify::new()));
    let a = all.clone();
    let start = Instant::now();
    let worker = Worker::builder(queue.clone(), name)
        .concurrency(BATCH)
        .claim_batch(BATCH)
        .poll_interval(Duration::from_millis(5))
        .handler(move |_ctx: JobContext, _: u64| {
            if d.fetch_add(1, Ordering::Relaxed) + 1 == N {
                a.notify_one();
            }
            async { Ok::<_, JobError>(()) }
        })
        .build()
        .unwrap()
        .spawn();
    all.notified().await;
    let took = start.elapsed();
    worker.shutdown().await;
    took
}

/// Runs `batch` `iters` times and sums the times.
fn iter_custom<F, Fut>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    id: BenchmarkId,
    batch: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    c.bench_function(id, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let batch = &batch;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += batch().await;
                }
                total
            }
        })
    });
}

mod redis_raw {
    use super::*;
    use redis::streams::{StreamReadOptions, StreamReadReply};
    use redis::AsyncCommands;

    pub async fn batch(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> Duration {
        let mut pipe = redis::pipe();
        for i in 0..N {
            pipe.xadd(stream, "*", &[("payload", i.to_string())])
                .ignore();
        }
        let _: () = pipe.query_async(conn).await.unwrap();
        let opts = StreamReadOptions::default()
            .group("raw", "bench")
            .count(BATCH);
        let start = Instant::now();
        let mut acked = 0;
        while acked < N {
            let reply: StreamReadReply =
                conn.xread_options(&[stream], &[">"], &opts).await.unwrap();
            let ids: Vec<String> = reply
                .keys
                .into_iter()
                .flat_map(|k| k.ids.into_iter().map(|e| e.id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let n: u64 = conn.xack(stream, "raw", &ids).await.unwrap();
            acked += n;
        }
        start.elapsed()
    }
}

mod nats_raw {
    use super::*;
    use async_nats::jetstream::{self, consumer, stream};

    pub struct Raw {
        pub js: jetstream::Context,
        pub consumer: consumer::Consumer<consumer::pull::Config>,
        pub subject: String,
    }

    pub async fn setup(url: &str, name: &str) -> Raw {
        let js = jetstream::new(async_nats::connect(url).await.unwrap());
        let s = js
            .get_or_create_stream(stream::Config {
                name: name.to_owned(),
                subjects: vec![name.to_owned()],
                ..Default::default()
            })
            .await
            .unwrap();
        let consumer = s
            .get_or_create_consumer(
                "raw",
                consumer::pull::Config {
                    durable_name: Some("raw".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    max_ack_pending: -1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        Raw {
            js,
            consumer,
            subject: name.to_owned(),
        }
    }

    pub async fn batch(raw: &Raw) -> Duration {
        let mut acks = Vec::new();
        for i in 0..N {
            acks.push(
                raw.js
                    .publish(raw.subject.clone(), i.to_string().into())
                    .await
                    .unwrap(),
            );
        }
        for a in acks {
            a.await.unwrap();
        }
        let start = Instant::now();
        let mut acked = 0;
        while acked < N {
            let mut msgs = raw
                .consumer
                .fetch()
                .max_messages(BATCH)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .unwrap();
            while let Some(m) = msgs.next().await {
                m.unwrap().ack().await.unwrap();
                acked += 1;
            }
        }
        start.elapsed()
    }
}

mod amqp_raw {
    use super::*;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    pub struct Raw {
        pub channel: lapin::Channel,
        pub consumer: lapin::Consumer,
        pub queue: String,
        _conn: Connection,
    }

    pub async fn setup(url: &str, queue: &str) -> Raw {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
            .unwrap();
        channel
            .basic_qos(BATCH as u16, BasicQosOptions::default())
            .await
            .unwrap();
        let consumer = channel
            .basic_consume(
                queue.into(),
                "raw".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Raw {
            channel,
            consumer,
            queue: queue.to_owned(),
            _conn: conn,
        }
    }

    /// Publishes (confirmed, untimed), then times consuming N.
    pub async fn batch(raw: &mut Raw, publisher: &lapin::Channel) -> Duration {
        let mut confirms = Vec::new();
        for i in 0..N {
            confirms.push(
                publisher
                    .basic_publish(
                        "".into(),
                        raw.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        i.to_string().as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap(),
            );
        }
        for c in confirms {
            c.await.unwrap();
        }
        let start = Instant::now();
        let mut acked = 0;
        while acked < N {
            let d = raw.consumer.next().await.unwrap().unwrap();
            d.ack(BasicAckOptions::default()).await.unwrap();
            acked += 1;
        }
        let _ = &raw.channel;
        start.elapsed()
    }

    pub async fn publisher(url: &str) -> (Connection, lapin::Channel) {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        (conn, ch)
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("broker_noop");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);

    match std::env::var("REBOUND_REDIS_URL") {
        Ok(url) => {
            let name = unique("rebound-bench");
            let queue: Arc<dyn Queue> = rt.block_on(async {
                Arc::new(
                    rebound_jobs::RedisStreamQueue::connect(&url, &name)
                        .await
                        .unwrap(),
                )
            });
            iter_custom(
                &mut group,
                &rt,
                BenchmarkId::new("redis", "rebound-jobs"),
                || rebound_batch(queue.clone(), &name),
            );
            let raw_stream = unique("rebound-bench-raw");
            let client = redis::Client::open(url.as_str()).unwrap();
            let conn = rt.block_on(async {
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let _: () = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&raw_stream)
                    .arg("raw")
                    .arg("$")
                    .arg("MKSTREAM")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                conn
            });
            iter_custom(
                &mut group,
                &rt,
                BenchmarkId::new("redis", "redis-rs XREADGROUP"),
                || {
                    let mut conn = conn.clone();
                    let s = raw_stream.clone();
                    async move { redis_raw::batch(&mut conn, &s).await }
                },
            );
            rt.block_on(async {
                let mut conn = conn.clone();
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(&raw_stream)
                    .arg(&name)
                    .arg(format!("{name}:rebound:dead"))
                    .arg(format!("{name}:rebound:schedule"))
                    .arg(format!("{name}:rebound:scheduled"))
                    .arg(format!("{name}:rebound:ids"))
                    .query_async(&mut conn)
                    .await;
            });
        }
        Err(_) => println!("REBOUND_REDIS_URL not set: Redis benchmarks skipped"),
    }

    match std::env::var("REBOUND_NATS_URL") {
        Ok(url) => {
            let name = unique("rebound-bench");
            let queue: Arc<dyn Queue> = rt.block_on(async {
                Arc::new(rebound_jobs::NatsQueue::connect(&url, &name).await.unwrap())
            });
            iter_custom(
                &mut group,
                &rt,
                BenchmarkId::new("nats", "rebound-jobs"),
                || rebound_batch(queue.clone(), &name),
            );
            let raw_name = unique("rebound-bench-raw");
            let raw = rt.block_on(nats_raw::setup(&url, &raw_name));
            iter_custom(
                &mut group,
                &rt,
                BenchmarkId::new("nats", "async-nats pull consumer"),
                || nats_raw::batch(&raw),
            );
            rt.block_on(async {
                for s in [
                    raw_name.clone(),
                    name.clone(),
                    format!("{name}_DEAD"),
                    format!("{name}_ADVISORIES"),
                    format!("{name}_REBOUND"),
                ] {
                    let _ = raw.js.delete_stream(&s).await;
                }
            });
        }
        Err(_) => println!("REBOUND_NATS_URL not set: NATS benchmarks skipped"),
    }

    match std::env::var("REBOUND_AMQP_URL") {
        Ok(url) => {
            let name = unique("rebound-bench");
            let queue: Arc<dyn Queue> = rt.block_on(async {
                Arc::new(
                    rebound_jobs::AmqpQueue::connect(&url, &name)
                        .await
                        .unwrap()
                        .with_prefetch(BATCH as u16)
                        .unwrap(),
                )
            });
            iter_custom(
                &mut group,
                &rt,
                BenchmarkId::new("amqp", "rebound-jobs"),
                || rebound_batch(queue.clone(), &name),
            );
            let raw_name = unique("rebound-bench-raw");
            let raw = tokio::sync::Mutex::new(rt.block_on(amqp_raw::setup(&url, &raw_name)));
            let (_pconn, publisher) = rt.block_on(amqp_raw::publisher(&url));
            iter_custom(
                &mut group,
                &rt,
                BenchmarkId::new("amqp", "lapin basic.consume"),
                || async {
                    let mut raw = raw.lock().await;
                    amqp_raw::batch(&mut raw, &publisher).await
                },
            );
            rt.block_on(async {
                for q in [raw_name.clone(), name.clone(), format!("{name}.dead")] {
                    let _ = publisher
                        .queue_delete(q.as_str().into(), Default::default())
                        .await;
                }
            });
        }
        Err(_) => println!("REBOUND_AMQP_URL not set: RabbitMQ benchmarks skipped"),
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
