//! The broker becomes unreachable mid-stream and comes back: the worker
//! reaches it through a TCP proxy the test owns (`common::proxy`), which
//! the test cuts while jobs are running — every open connection closed,
//! new ones refused — and restores. The worker reconnects and nothing is
//! lost. One test per broker; each reads its `REBOUND_*_URL`.
#![cfg(any(feature = "redis", feature = "nats", feature = "amqp"))]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{self, real_eventually};
use common::proxy::Proxy;
use rebound::{Backoff, RandomSource};
use rebound_jobs::metrics::DEAD_LETTER_MESSAGES_TOTAL;
use rebound_jobs::{DeliveryPolicy, JobContext, JobError, NewJob, Queue, Worker};

const S: Duration = Duration::from_secs(1);
const LIMIT: Duration = Duration::from_secs(90);
const FIRST: u32 = 20;
const DURING: u32 = 10;

/// A proxy in front of the `host:port` of `url`, and `url` pointed at it.
async fn proxied(url: &str) -> (Proxy, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (format!("{u}@"), r),
        None => (String::new(), rest),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let upstream = tokio::net::lookup_host(authority)
        .await
        .unwrap_or_else(|e| panic!("{url}: cannot resolve {authority}: {e}"))
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    let url = format!("{scheme}://{userinfo}{}{path}", proxy.addr);
    (proxy, url)
}

/// `FIRST` jobs enqueued directly; a worker reading through the proxy
/// holds four of them mid-run when the proxy is cut; `DURING` more are
/// enqueued while it is down. After the restore every job runs to an ack:
/// none lost, none dead-lettered.
async fn the_broker_goes_away_mid_stream_and_nothing_is_lost<Q, F, Fut>(
    name: &str,
    direct: Arc<dyn Queue>,
    proxy: Proxy,
    via_proxy: F,
) where
    Q: Queue + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Q>,
{
    harness::metrics();
    let jobs = (0..FIRST)
        .map(|i| NewJob::json(name, &i).unwrap())
        .collect();
    direct
        .enqueue_many_at(jobs, rebound_jobs::time::wall(direct.clock()))
        .await
        .unwrap();

    let done: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
    let started: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let (d, st) = (done.clone(), started.clone());
    let worker = Worker::builder(via_proxy().await, name)
        .random(RandomSource::seeded(11))
        .concurrency(4)
        .lease(2 * S)
        .poll_interval(Duration::from_millis(100))
        .rescue_every(S)
        .policy(
            DeliveryPolicy::builder()
                .max_attempts(25)
                .poison_after(25)
                .backoff(Backoff::constant(S).with_max_delay(S))
                .build()
                .unwrap(),
        )
        .handler(move |_: JobContext, i: u32| {
            let (d, st, mut rel) = (d.clone(), st.clone(), release.clone());
            async move {
                st.lock().unwrap().insert(i);
                // The first runs are mid-job when the broker goes away.
                let _ = rel.wait_for(|go| *go).await;
                *d.lock().unwrap().entry(i).or_default() += 1;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    real_eventually(LIMIT, "four runs in progress", || {
        std::future::ready(started.lock().unwrap().len() == 4)
    })
    .await;

    proxy.cut();
    release_tx.send(true).unwrap();
    let more = (FIRST..FIRST + DURING)
        .map(|i| NewJob::json(name, &i).unwrap())
        .collect();
    direct
        .enqueue_many_at(more, rebound_jobs::time::wall(direct.clock()))
        .await
        .unwrap();
    // Three seconds without the broker: past the worker's lease, so the
    // runs in flight give up settling, and past reconnect attempts.
    tokio::time::sleep(3 * S).await;
    // The jobs enqueued during the outage cannot have reached the worker.
    let early: Vec<u32> = done
        .lock()
        .unwrap()
        .keys()
        .copied()
        .filter(|i| *i >= FIRST)
        .collect();
    assert!(
        early.is_empty(),
        "ran while the broker was cut off: {early:?}"
    );
    proxy.restore();

    real_eventually(LIMIT, "every job, after the broker came back", || {
        std::future::ready(done.lock().unwrap().len() == (FIRST + DURING) as usize)
    })
    .await;
    worker.shutdown().await;
    let done = done.lock().unwrap().clone();
    let missing: Vec<u32> = (0..FIRST + DURING)
        .filter(|i| !done.contains_key(i))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(direct.dead_letter_depth(Some(name)).await.unwrap(), 0);
    assert_eq!(harness::counter(DEAD_LETTER_MESSAGES_TOTAL, name, None), 0);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_mid_stream_the_worker_reconnects_and_nothing_is_lost() {
    use rebound_jobs::RedisStreamQueue;
    let Some(url) = common::service_url("REBOUND_REDIS_URL") else {
        return;
    };
    let name = common::unique("rebound-outage");
    let _guard = common::RedisCleanup::new(&url, &name);
    let direct = RedisStreamQueue::connect(&url, &name).await.unwrap();
    let (proxy, proxied) = proxied(&url).await;
    the_broker_goes_away_mid_stream_and_nothing_is_lost(&name, Arc::new(direct), proxy, || async {
        RedisStreamQueue::connect(&proxied, &name).await.unwrap()
    })
    .await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_unreachable_mid_stream_the_worker_reconnects_and_nothing_is_lost() {
    use rebound_jobs::NatsQueue;
    let Some(url) = common::service_url("REBOUND_NATS_URL") else {
        return;
    };
    let name = common::unique("rebound-outage");
    let _guard = common::NatsCleanup::new(&url, &name);
    let direct = NatsQueue::connect(&url, &name)
        .await
        .unwrap()
        .with_lease(2 * S)
        .unwrap();
    let (proxy, proxied) = proxied(&url).await;
    the_broker_goes_away_mid_stream_and_nothing_is_lost(&name, Arc::new(direct), proxy, || async {
        NatsQueue::connect(&proxied, &name)
            .await
            .unwrap()
            .with_lease(2 * S)
            .unwrap()
    })
    .await;
}

#[cfg(feature = "amqp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_unreachable_mid_stream_the_worker_reconnects_and_nothing_is_lost() {
    use rebound_jobs::AmqpQueue;
    let Some(url) = common::service_url("REBOUND_AMQP_URL") else {
        return;
    };
    let name = common::unique("rebound-outage");
    let _guard = common::AmqpCleanup::new(&url, &name);
    let direct = AmqpQueue::connect(&url, &name).await.unwrap();
    let (proxy, proxied) = proxied(&url).await;
    the_broker_goes_away_mid_stream_and_nothing_is_lost(&name, Arc::new(direct), proxy, || async {
        AmqpQueue::connect(&proxied, &name).await.unwrap()
    })
    .await;
}
