//! The PostgreSQL connection is cut mid-job (a TCP proxy the test owns)
//! and comes back: nothing is lost. Needs `REBOUND_POSTGRES_URL`.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{self, eventually};
use common::proxy::Proxy;
use rebound::{Backoff, Clock};
use rebound_jobs::metrics::{DEAD_LETTER_MESSAGES_TOTAL, JOBS_PROCESSED_TOTAL};
use rebound_jobs::time::wall;
use rebound_jobs::{
    DeliveryPolicy, JobContext, JobError, JobId, NewJob, PostgresQueue, Queue, Worker,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_job_loses_nothing() {
    let Some(url) = common::service_url("REBOUND_POSTGRES_URL") else {
        return;
    };
    harness::metrics();
    let cfg: tokio_postgres::Config = url.parse().unwrap();
    let host = match &cfg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("REBOUND_POSTGRES_URL must use TCP for this test, not {other:?}"),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = format!(
        "postgres://{}@{}/{}",
        cfg.get_user().unwrap_or("postgres"),
        proxy.addr,
        cfg.get_dbname().unwrap_or("postgres")
    );

    let (clock, manual) = Clock::manual();
    let table = common::unique("jobs_test");
    let direct = common::postgres_queue_at(&url, &table, clock.clone()).await;
    let via_proxy = PostgresQueue::connect(&proxied)
        .unwrap()
        .with_table(&table)
        .unwrap()
        .with_clock(clock.clone())
        .with_op_timeout(Duration::from_secs(2));
    let name = common::unique("outage");
    let jobs = (0..20u32)
        .map(|i| NewJob::json(&name, &i).unwrap())
        .collect();
    let ids = direct.enqueue_many_at(jobs, wall(&clock)).await.unwrap();

    let runs: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let (r, rel) = (runs.clone(), release.clone());
    let worker = Worker::builder(via_proxy, name.clone())
        .clock(clock.clone())
        .concurrency(4)
        .lease(Duration::from_secs(6))
        .poll_interval(Duration::from_millis(100))
        .rescue_every(Duration::from_secs(1))
        .policy(
            DeliveryPolicy::builder()
                .backoff(
                    Backoff::constant(Duration::from_secs(1))
                        .with_max_delay(Duration::from_secs(1)),
                )
                .build()
                .unwrap(),
        )
        .handler(move |ctx: JobContext, _: u32| {
            let (r, mut rel) = (r.clone(), rel.clone());
            async move {
                *r.lock().unwrap().entry(ctx.id()).or_default() += 1;
                // The first four runs are mid-job when the connection goes.
                let _ = rel.wait_for(|go| *go).await;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();

    eventually(
        &manual,
        Duration::from_millis(100),
        "four runs in progress",
        || std::future::ready(runs.lock().unwrap().len() == 4),
    )
    .await;
    let held: Vec<JobId> = runs.lock().unwrap().keys().copied().collect();
    proxy.cut();
    release_tx.send(true).unwrap();
    // Twelve seconds of the worker's clock without the database: longer
    // than the lease, so the held runs give up settling.
    for _ in 0..120 {
        manual.advance(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let during = direct.counts(&name, wall(&clock)).await.unwrap();
    assert_eq!(during.pending(), 20, "nothing settled without the database");
    proxy.restore();
    eventually(&manual, Duration::from_millis(100), "every job", || async {
        direct.counts(&name, wall(&clock)).await.unwrap().pending() == 0
    })
    .await;
    worker.shutdown().await;

    let runs = runs.lock().unwrap().clone();
    for id in &ids {
        let n = runs.get(id).copied().unwrap_or(0);
        assert!((1..=2).contains(&n), "job {id} ran {n} times");
    }
    // The held runs' results could not be recorded while the database was
    // away; a run that gave up before it came back ran again after its
    // lease, one still retrying when it came back was recorded then.
    for id in &held {
        assert!((1..=2).contains(&runs[id]), "job {id}");
    }
    assert_eq!(direct.dead_letter_depth(Some(&name)).await.unwrap(), 0);
    assert_eq!(harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &name, None), 0);
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &name, None), 20);
}
