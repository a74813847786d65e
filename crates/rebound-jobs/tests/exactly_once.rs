//! Exactly-once effects on at-least-once delivery: a handler runs its side
//! effect through rebound-idempotency's `Once` (`JobContext::once`) on a
//! real store (a redb file; PostgreSQL when `REBOUND_POSTGRES_URL` is set),
//! the same job is delivered twice, and the effect happens once.
#![cfg(feature = "idempotency")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{self, Env};
use rebound::{Backoff, Clock, RandomSource};
use rebound_idempotency::once::Once;
use rebound_idempotency::{PostgresStore, RedbStore};
use rebound_jobs::metrics::{JOBS_LEASE_LOST_TOTAL, JOBS_PROCESSED_TOTAL};
use rebound_jobs::{
    DeliveryPolicy, JobContext, JobError, JobId, JobStatus, NewJob, Queue, Worker, WorkerBuilder,
};

const S: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_millis(100);

fn builder(env: &Env) -> WorkerBuilder {
    harness::metrics();
    Worker::builder(env.queue.clone(), env.name.clone())
        .clock(env.clock.clone())
        .random(RandomSource::seeded(7))
        .poll_interval(harness::poll_interval(env))
        .lease(S)
        .rescue_every(S)
        .policy(
            DeliveryPolicy::builder()
                .max_attempts(5)
                .backoff(Backoff::constant(S).with_max_delay(S))
                .build()
                .unwrap(),
        )
}

/// A `Once` on a fresh redb file, reading `clock`.
fn redb_once(clock: Clock) -> (Once, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("effects.redb")).unwrap();
    let once = Once::builder(store)
        .name("exactly-once-test")
        .clock(clock)
        .build()
        .unwrap();
    (once, dir)
}

/// A `Once` on a fresh PostgreSQL table, reading `clock`, or `None`.
async fn postgres_once(clock: Clock) -> Option<Once> {
    let url = common::service_url("REBOUND_POSTGRES_URL")?;
    let store = PostgresStore::connect(&url)
        .unwrap()
        .with_table(&common::unique("jobs_test"))
        .unwrap();
    store.migrate().await.unwrap();
    Some(
        Once::builder(store)
            .name("exactly-once-test")
            .clock(clock)
            .build()
            .unwrap(),
    )
}

/// Runner A does the effect, then freezes (its whole runtime blocked:
/// think of a stalled process) before it can ack; its lease runs out and
/// runner B gets the job again. B's effect is replayed, not run; A's late
/// ack is rejected. The effect happened once.
async fn a_late_ack_redelivers_but_the_effect_happens_once(env: Env, once: Once) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &4200u32).unwrap())
        .await
        .unwrap();
    let charges = Arc::new(AtomicU32::new(0));
    let (started_tx, started) = std::sync::mpsc::channel();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let release = Arc::new(Mutex::new(release));
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let (c, o) = (charges.clone(), once.clone());
    let worker_a = builder(&env)
        .worker_id("runner-a")
        .handler(move |ctx: JobContext, amount: u32| {
            let (c, o, started_tx, release) =
                (c.clone(), o.clone(), started_tx.clone(), release.clone());
            async move {
                let ran = ctx
                    .once(&o, "charge", |_| async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, JobError>(format!("charged {amount}"))
                    })
                    .await?;
                started_tx.send(ran.is_replayed()).unwrap();
                release.lock().unwrap().recv().unwrap();
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let a = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(worker_a.run(async move {
                let _ = stop.await;
            }))
    });
    let mut first = None;
    env.eventually(STEP, "runner A's effect", || {
        first = first.or(started.try_recv().ok());
        std::future::ready(first.is_some())
    })
    .await;
    assert_eq!(first, Some(false), "runner A ran the effect itself");
    assert_eq!(charges.load(Ordering::SeqCst), 1);

    // (job, attempt, whether the effect was replayed, its value)
    type Seen = Vec<(JobId, u32, bool, String)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let (c, o, s) = (charges.clone(), once.clone(), seen.clone());
    let worker_b = builder(&env)
        .worker_id("runner-b")
        .handler(move |ctx: JobContext, amount: u32| {
            let (c, o, s) = (c.clone(), o.clone(), s.clone());
            async move {
                let ran = ctx
                    .once(&o, "charge", |_| async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, JobError>(format!("charged {amount}"))
                    })
                    .await?;
                let replayed = ran.is_replayed();
                s.lock()
                    .unwrap()
                    .push((ctx.id(), ctx.attempt(), replayed, ran.into_inner()));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "runner B's ack", || {
        std::future::ready(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None) == 1)
    })
    .await;
    // Delivered twice, charged once: B got A's stored value back.
    assert_eq!(
        *seen.lock().unwrap(),
        [(id, 2, true, "charged 4200".to_owned())]
    );
    assert_eq!(charges.load(Ordering::SeqCst), 1);

    // A wakes up and acks: fenced off. Still one charge.
    release_tx.send(()).unwrap();
    env.eventually(STEP, "A's rejected ack", || {
        std::future::ready(harness::counter(JOBS_LEASE_LOST_TOTAL, &env.name, None) == 1)
    })
    .await;
    worker_b.shutdown().await;
    stop_tx.send(()).unwrap();
    a.join().unwrap();
    assert_eq!(charges.load(Ordering::SeqCst), 1);
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None), 1);
    assert!(env.queue.job(id).await.unwrap().is_none());
}

/// The worker dies (aborted: no ack, no renewal, no hand-back) after the
/// job's first effect; the next delivery skips it and runs the second.
/// A step that failed runs again; a step that completed never does.
async fn a_crash_after_the_effect_redelivers_and_only_missing_steps_run(env: Env, once: Once) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &7u32).unwrap())
        .await
        .unwrap();
    let charges = Arc::new(AtomicU32::new(0));
    let emails = Arc::new(AtomicU32::new(0));
    let (charged_tx, mut charged) = tokio::sync::mpsc::unbounded_channel();
    let (c, o) = (charges.clone(), once.clone());
    let worker = builder(&env)
        .handler(move |ctx: JobContext, _: u32| {
            let (c, o, charged_tx) = (c.clone(), o.clone(), charged_tx.clone());
            async move {
                ctx.once(&o, "charge", |_| async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, JobError>(())
                })
                .await?;
                charged_tx.send(()).unwrap();
                // The process dies here, before the email and the ack.
                std::future::pending::<()>().await;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    let mut got = false;
    env.eventually(STEP, "the first delivery's charge", || {
        got = got || charged.try_recv().is_ok();
        std::future::ready(got)
    })
    .await;
    worker.abort();
    if env.live_records {
        let rec = env.queue.job(id).await.unwrap().unwrap();
        assert_eq!(rec.status, JobStatus::Running);
    }

    // Deliveries 2 and 3: the email fails once, then succeeds.
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let (c, e, o, a) = (
        charges.clone(),
        emails.clone(),
        once.clone(),
        attempts.clone(),
    );
    let worker = builder(&env)
        .handler(move |ctx: JobContext, _: u32| {
            let (c, e, o, a) = (c.clone(), e.clone(), o.clone(), a.clone());
            async move {
                let charge = ctx
                    .once(&o, "charge", |_| async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, JobError>(())
                    })
                    .await?;
                let email = ctx
                    .once(&o, "email", |run| async move {
                        e.fetch_add(1, Ordering::SeqCst);
                        if run.previous_attempts() == 0 {
                            Err(JobError::msg("smtp: 421 try again later"))
                        } else {
                            Ok(())
                        }
                    })
                    .await;
                a.lock()
                    .unwrap()
                    .push((ctx.attempt(), charge.is_replayed(), email.is_ok()));
                email.map(drop)
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the job's ack", || {
        std::future::ready(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None) == 1)
    })
    .await;
    worker.shutdown().await;
    // Attempt 2 (after the crash): charge replayed, email failed.
    // Attempt 3: charge replayed, email sent.
    assert_eq!(
        *attempts.lock().unwrap(),
        [(2, true, false), (3, true, true)]
    );
    assert_eq!(charges.load(Ordering::SeqCst), 1, "charged once");
    assert_eq!(emails.load(Ordering::SeqCst), 2, "a failed step runs again");
    assert!(env.queue.job(id).await.unwrap().is_none());
}

macro_rules! on {
    ($module:ident, $env:path, $feature:literal) => {
        #[cfg(feature = $feature)]
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_late_ack_redelivers_but_the_effect_happens_once() {
                let Some(env) = $env().await else { return };
                let (once, _dir) = crate::redb_once(env.clock.clone());
                crate::a_late_ack_redelivers_but_the_effect_happens_once(env, once).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_crash_after_the_effect_redelivers_and_only_missing_steps_run() {
                let Some(env) = $env().await else { return };
                let (once, _dir) = crate::redb_once(env.clock.clone());
                crate::a_crash_after_the_effect_redelivers_and_only_missing_steps_run(env, once)
                    .await;
            }
        }
    };
}

on!(embedded, crate::common::harness::embedded_env, "embedded");
on!(redis, crate::common::harness::redis_env, "redis");
on!(nats, crate::common::harness::nats_env, "nats");
on!(amqp, crate::common::harness::amqp_env, "amqp");

/// Jobs and effects both in PostgreSQL: the queue's table and the
/// idempotency store's table.
#[cfg(feature = "postgres")]
mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_ack_redelivers_but_the_effect_happens_once() {
        let Some(env) = crate::common::harness::postgres_env().await else {
            return;
        };
        let once = crate::postgres_once(env.clock.clone()).await.unwrap();
        crate::a_late_ack_redelivers_but_the_effect_happens_once(env, once).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_after_the_effect_redelivers_and_only_missing_steps_run() {
        let Some(env) = crate::common::harness::postgres_env().await else {
            return;
        };
        let once = crate::postgres_once(env.clock.clone()).await.unwrap();
        crate::a_crash_after_the_effect_redelivers_and_only_missing_steps_run(env, once).await;
    }
}
