//! The worker against real queues: a redb file and PostgreSQL on a manual
//! clock the tests move; Redis Streams, NATS JetStream and RabbitMQ on real
//! time (their leases and delays run on the broker's clock), with short
//! delays. Each service is used when its `REBOUND_*_URL` is set.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{self, Env};
use rebound::{Backoff, RandomSource};
use rebound_jobs::metrics::{
    DEAD_LETTER_DEPTH, DEAD_LETTER_MESSAGES_TOTAL, JOBS_FAILED_TOTAL, JOBS_HANDED_BACK_TOTAL,
    JOBS_LEASE_LOST_TOTAL, JOBS_PROCESSED_TOTAL, RETRY_ATTEMPTS_TOTAL,
};
use rebound_jobs::{
    dlq, DeadLetterFilter, DeadLetterReason, DeliveryPolicy, JobContext, JobError, JobStatus,
    NewJob, Queue, RedriveOptions, RunResult, Worker, WorkerBuilder,
};

const S: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_millis(100);

/// A policy whose retries wait one second of a manual clock, or 200 ms of
/// real time (no check here measures the backoff; `a_requested_delay` checks
/// a delay the handler asks for).
fn quick_policy(env: &Env, max_attempts: u32) -> DeliveryPolicy {
    let wait = match env.time {
        harness::Time::Manual(_) => S,
        harness::Time::Real => Duration::from_millis(200),
    };
    DeliveryPolicy::builder()
        .max_attempts(max_attempts)
        .backoff(Backoff::constant(wait).with_max_delay(wait))
        .build()
        .unwrap()
}

fn builder(env: &Env) -> WorkerBuilder {
    harness::metrics();
    Worker::builder(env.queue.clone(), env.name.clone())
        .clock(env.clock.clone())
        .random(RandomSource::seeded(7))
        .poll_interval(harness::poll_interval(env))
        .rescue_every(5 * S)
        .policy(quick_policy(env, 5))
}

/// Whether `n` jobs of the env's queue were acked (the worker counts an ack
/// once it is stored).
fn processed(env: &Env, n: u64) -> std::future::Ready<bool> {
    std::future::ready(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None) >= n)
}

macro_rules! worker_tests {
    ($env:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(env) = $env().await else { return };
                crate::$name(env).await;
            }
        )*
    };
}

macro_rules! all_backends {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "embedded")]
        mod embedded {
            worker_tests!(crate::common::harness::embedded_env; $($name),*);
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            worker_tests!(crate::common::harness::postgres_env; $($name),*);
        }
        #[cfg(feature = "redis")]
        mod redis {
            worker_tests!(crate::common::harness::redis_env; $($name),*);
        }
        #[cfg(feature = "nats")]
        mod nats {
            worker_tests!(crate::common::harness::nats_env; $($name),*);
        }
        #[cfg(feature = "amqp")]
        mod amqp {
            worker_tests!(crate::common::harness::amqp_env; $($name),*);
        }
    };
}

all_backends!(
    runs_every_job_once_and_counts_it,
    a_panic_is_a_failure_and_the_job_runs_again,
    a_timeout_cancels_the_run_and_counts_a_failure,
    exhaustion_dead_letters_once_and_counts_it_then_redrive_runs_it_again,
    permanent_errors_and_unreadable_payloads_dead_letter_as_permanent,
    a_requested_delay_is_honoured,
    graceful_shutdown_hands_running_jobs_back_uncounted,
    the_lease_is_renewed_while_a_long_job_runs,
    a_stalled_runner_loses_its_lease_and_its_late_ack_is_rejected,
    the_idempotency_key_is_the_same_on_every_delivery,
    aborting_a_worker_is_a_crash,
);

async fn runs_every_job_once_and_counts_it(env: Env) {
    let mut ids = Vec::new();
    for i in 0..20u32 {
        ids.push(
            env.queue
                .enqueue(NewJob::json(&env.name, &i).unwrap())
                .await
                .unwrap(),
        );
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let worker = builder(&env)
        .concurrency(4)
        .handler(move |ctx: JobContext, n: u32| {
            let s = s.clone();
            async move {
                assert_eq!(ctx.attempt(), 1);
                assert!(ctx.previous_error().is_none());
                assert_eq!(
                    ctx.idempotency_key(),
                    format!("rebound-jobs:{}:{}", ctx.queue(), ctx.id())
                );
                s.lock().unwrap().push((ctx.id(), n));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "20 jobs", || processed(&env, 20))
        .await;
    worker.shutdown().await;
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    let want: Vec<_> = ids.iter().copied().zip(0..20u32).collect();
    assert_eq!(got, want);
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None), 20);
    assert_eq!(harness::counter(JOBS_FAILED_TOTAL, &env.name, None), 0);
    // Descriptions were registered when the worker was built.
    let (unit, help) = harness::description(DEAD_LETTER_MESSAGES_TOTAL).unwrap();
    assert_eq!(unit, Some(metrics::Unit::Count));
    assert!(help.contains("dead-letter"), "{help}");
}

async fn a_panic_is_a_failure_and_the_job_runs_again(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let worker = builder(&env)
        .handler(move |ctx: JobContext, _: u32| {
            let r = r.clone();
            async move {
                r.lock()
                    .unwrap()
                    .push((ctx.attempt(), ctx.previous_error().map(str::to_owned)));
                if ctx.attempt() == 1 {
                    panic!("boom in the handler");
                }
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the retry after the panic", || processed(&env, 1))
        .await;
    let _ = id;
    worker.shutdown().await;
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0], (1, None));
    assert_eq!(runs[1].0, 2);
    assert_eq!(runs[1].1.as_deref(), Some("panicked: boom in the handler"));
    assert_eq!(harness::counter(JOBS_FAILED_TOTAL, &env.name, None), 1);
    assert_eq!(harness::counter(RETRY_ATTEMPTS_TOTAL, &env.name, None), 1);
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None), 1);
}

async fn a_timeout_cancels_the_run_and_counts_a_failure(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    let cancelled = Arc::new(Mutex::new(false));
    let runs = Arc::new(Mutex::new(Vec::new()));
    let (c, r) = (cancelled.clone(), runs.clone());
    struct SetOnDrop(Arc<Mutex<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let worker = builder(&env)
        .job_timeout(Some(S))
        .handler(move |ctx: JobContext, _: u32| {
            let (c, r) = (c.clone(), r.clone());
            async move {
                r.lock()
                    .unwrap()
                    .push((ctx.attempt(), ctx.previous_error().map(str::to_owned)));
                if ctx.attempt() == 1 {
                    let _guard = SetOnDrop(c);
                    std::future::pending::<()>().await;
                }
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the retry after the timeout", || processed(&env, 1))
        .await;
    let _ = id;
    worker.shutdown().await;
    assert!(
        *cancelled.lock().unwrap(),
        "the timed-out run was not cancelled"
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1], (2, Some("timed out after 1s".to_owned())));
    assert_eq!(harness::counter(JOBS_FAILED_TOTAL, &env.name, None), 1);
}

async fn exhaustion_dead_letters_once_and_counts_it_then_redrive_runs_it_again(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &"invoice-9").unwrap())
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(0u32));
    let healthy = Arc::new(Mutex::new(false));
    let (r, h) = (runs.clone(), healthy.clone());
    let worker = builder(&env)
        .policy(quick_policy(&env, 3))
        .handler(move |ctx: JobContext, _: String| {
            let (r, h) = (r.clone(), h.clone());
            async move {
                *r.lock().unwrap() += 1;
                if *h.lock().unwrap() {
                    Ok(())
                } else {
                    Err(JobError::msg(format!(
                        "partner API 503 on attempt {}",
                        ctx.attempt()
                    )))
                }
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the dead letter", || async {
        env.queue.dead_letter_depth(Some(&env.name)).await.unwrap() == 1
    })
    .await;
    // More time passes: nothing runs again, nothing is counted twice.
    env.pass(3 * S).await;
    assert_eq!(*runs.lock().unwrap(), 3);
    let rec = env.queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Dead);
    assert_eq!(rec.reason, Some(DeadLetterReason::Exhausted));
    assert_eq!(rec.payload, br#""invoice-9""#);
    let errors: Vec<_> = rec
        .history
        .iter()
        .map(|h| (h.result, h.error.clone().unwrap()))
        .collect();
    assert_eq!(
        errors,
        (1..=3)
            .map(|n| (RunResult::Failed, format!("partner API 503 on attempt {n}")))
            .collect::<Vec<_>>()
    );
    assert!(rec.history.iter().all(|h| h.ended_at.is_some()));
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &env.name, Some("exhausted")),
        1
    );
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &env.name, None),
        1
    );
    assert_eq!(harness::counter(JOBS_FAILED_TOTAL, &env.name, None), 3);
    assert_eq!(harness::counter(RETRY_ATTEMPTS_TOTAL, &env.name, None), 2);
    assert_eq!(harness::gauge(DEAD_LETTER_DEPTH, &env.name), Some(1.0));

    // The partner is back: redrive, and the job runs again (fresh budget).
    *healthy.lock().unwrap() = true;
    let moved = dlq::redrive(
        &*env.queue,
        &DeadLetterFilter::default().queue(&env.name),
        RedriveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(moved, 1);
    env.eventually(STEP, "the redriven job", || processed(&env, 1))
        .await;
    worker.shutdown().await;
    assert!(env.queue.job(id).await.unwrap().is_none());
    assert_eq!(*runs.lock().unwrap(), 4);
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None), 1);
    assert_eq!(
        env.queue.dead_letter_depth(Some(&env.name)).await.unwrap(),
        0
    );
}

async fn permanent_errors_and_unreadable_payloads_dead_letter_as_permanent(env: Env) {
    let bad = env
        .queue
        .enqueue(NewJob::new(&env.name, "not json"))
        .await
        .unwrap();
    let missing = env
        .queue
        .enqueue(NewJob::json(&env.name, &404u32).unwrap())
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(0));
    let r = runs.clone();
    let worker = builder(&env)
        .handler(move |_ctx: JobContext, n: u32| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() += 1;
                Err(JobError::permanent(std::io::Error::other(format!(
                    "invoice {n} does not exist"
                ))))
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "two dead letters", || async {
        env.queue.dead_letter_depth(Some(&env.name)).await.unwrap() == 2
    })
    .await;
    worker.shutdown().await;
    assert_eq!(
        *runs.lock().unwrap(),
        1,
        "the unreadable payload never reached the handler"
    );
    let b = env.queue.job(bad).await.unwrap().unwrap();
    assert_eq!(b.reason, Some(DeadLetterReason::Permanent));
    let e = b.last_error().unwrap();
    assert!(e.starts_with("payload is not a valid u32"), "{e}");
    let m = env.queue.job(missing).await.unwrap().unwrap();
    assert_eq!(m.reason, Some(DeadLetterReason::Permanent));
    assert_eq!(m.last_error(), Some("invoice 404 does not exist"));
    assert_eq!(m.history.len(), 1);
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &env.name, Some("permanent")),
        2
    );
}

async fn a_requested_delay_is_honoured(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let clock = env.clock.clone();
    let worker = builder(&env)
        .handler(move |ctx: JobContext, _: u32| {
            let (r, clock) = (r.clone(), clock.clone());
            async move {
                r.lock().unwrap().push(rebound_jobs::time::wall(&clock));
                if ctx.attempt() == 1 {
                    return Err(JobError::retry_after(
                        3 * S,
                        std::io::Error::other("429 Too Many Requests"),
                    ));
                }
                Ok(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the delayed retry", || processed(&env, 1))
        .await;
    worker.shutdown().await;
    let _ = id;
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2);
    // Not before the delay; after it, within the backend's resolution.
    let gap = runs[1].saturating_since(runs[0]);
    assert!(gap >= 3 * S, "retried after {gap:?}");
    assert!(gap <= 3 * S + env.resolution, "retried after {gap:?}");
}

async fn graceful_shutdown_hands_running_jobs_back_uncounted(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let worker = builder(&env)
        .shutdown_timeout(S)
        .handler(move |ctx: JobContext, _: u32| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(ctx.attempt());
                std::future::pending::<()>().await;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    let mut attempt = None;
    env.eventually(STEP, "the run to start", || {
        attempt = attempt.or(started.try_recv().ok());
        std::future::ready(attempt.is_some())
    })
    .await;
    assert_eq!(attempt, Some(1));
    let stopping = tokio::spawn(worker.shutdown());
    env.eventually(STEP, "the shutdown", || {
        std::future::ready(stopping.is_finished())
    })
    .await;
    let report = stopping.await.unwrap();
    assert_eq!(report.running_at_shutdown, 1);
    assert_eq!(report.handed_back, 1);
    if env.live_records {
        let rec = env.queue.job(id).await.unwrap().unwrap();
        assert_eq!(rec.status, JobStatus::Available);
        assert_eq!(
            (
                rec.state.deliveries,
                rec.state.failures,
                rec.state.interrupts
            ),
            (1, 0, 1)
        );
        assert_eq!(rec.state.attempt(), 0);
        assert_eq!(rec.history[0].result, RunResult::Interrupted);
    }
    assert_eq!(harness::counter(JOBS_HANDED_BACK_TOTAL, &env.name, None), 1);
    assert_eq!(harness::counter(JOBS_FAILED_TOTAL, &env.name, None), 0);
    // The next worker runs it as attempt 1 again, and sees the hand-back.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let worker = builder(&env)
        .handler(move |ctx: JobContext, _: u32| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((ctx.id(), ctx.attempt()));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the handed-back job", || processed(&env, 1))
        .await;
    worker.shutdown().await;
    assert_eq!(*seen.lock().unwrap(), [(id, 1)]);
}

async fn the_lease_is_renewed_while_a_long_job_runs(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(0));
    let clock = env.clock.clone();
    // Two workers on one queue, each with a 1 s lease: a run of 4 s (four
    // leases) is never taken over by the other, because its lease is
    // renewed.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (clock, runs) = (clock.clone(), runs.clone());
            builder(&env)
                .lease(S)
                .rescue_every(S)
                .job_timeout(None)
                .handler(move |_ctx: JobContext, _: u32| {
                    let (clock, runs) = (clock.clone(), runs.clone());
                    async move {
                        *runs.lock().unwrap() += 1;
                        let until = clock.now() + 4 * S;
                        while clock.now() < until {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Ok::<_, JobError>(())
                    }
                })
                .build()
                .unwrap()
                .spawn()
        })
        .collect();
    // Another party rescues expired leases all along, too.
    env.eventually(STEP, "the long job", || async {
        env.queue.rescue(env.now(), 100).await.unwrap();
        processed(&env, 1).await
    })
    .await;
    for w in workers {
        w.shutdown().await;
    }
    let _ = id;
    assert_eq!(*runs.lock().unwrap(), 1);
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None), 1);
    assert_eq!(harness::counter(JOBS_LEASE_LOST_TOTAL, &env.name, None), 0);
}

async fn a_stalled_runner_loses_its_lease_and_its_late_ack_is_rejected(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    // Runner A stalls its whole runtime (a blocking handler: think of a
    // frozen process): it cannot renew its lease.
    let (started_tx, started) = std::sync::mpsc::channel();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let release = Arc::new(Mutex::new(release));
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let worker_a = builder(&env)
        .lease(S)
        .worker_id("runner-a")
        .handler(move |_ctx: JobContext, _: u32| {
            let (started_tx, release) = (started_tx.clone(), release.clone());
            async move {
                started_tx.send(()).unwrap();
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
    let mut got = false;
    env.eventually(STEP, "runner A to start", || {
        got = got || started.try_recv().is_ok();
        std::future::ready(got)
    })
    .await;
    // Its lease runs out; runner B takes the job over and acks it.
    let runs_b = Arc::new(Mutex::new(Vec::new()));
    let r = runs_b.clone();
    let worker_b = builder(&env)
        .lease(S)
        .rescue_every(S)
        .worker_id("runner-b")
        .handler(move |ctx: JobContext, _: u32| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push((ctx.id(), ctx.attempt()));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "runner B's run", || processed(&env, 1))
        .await;
    assert_eq!(*runs_b.lock().unwrap(), [(id, 2)]);
    // A wakes up and acks: fenced off.
    release_tx.send(()).unwrap();
    env.eventually(STEP, "A's rejected ack", || {
        std::future::ready(harness::counter(JOBS_LEASE_LOST_TOTAL, &env.name, None) == 1)
    })
    .await;
    worker_b.shutdown().await;
    stop_tx.send(()).unwrap();
    a.join().unwrap();
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &env.name, None), 1);
    assert!(env.queue.job(id).await.unwrap().is_none());
    assert_eq!(
        env.queue.dead_letter_depth(Some(&env.name)).await.unwrap(),
        0
    );
}

async fn the_idempotency_key_is_the_same_on_every_delivery(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let k = keys.clone();
    let worker = builder(&env)
        .policy(quick_policy(&env, 2))
        .handler(move |ctx: JobContext, _: u32| {
            let k = k.clone();
            async move {
                let mut keys = k.lock().unwrap();
                keys.push(ctx.idempotency_key().to_owned());
                // Fails on every run but the fourth: attempts 1 and 2
                // (exhausted), then attempt 1 after a redrive, then 2.
                if keys.len() == 4 {
                    Ok(())
                } else {
                    Err(JobError::msg("flaky"))
                }
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the dead letter", || async {
        env.queue.dead_letter_depth(Some(&env.name)).await.unwrap() == 1
    })
    .await;
    dlq::redrive(
        &*env.queue,
        &DeadLetterFilter::default().queue(&env.name),
        RedriveOptions::default(),
    )
    .await
    .unwrap();
    env.eventually(STEP, "the redriven job", || processed(&env, 1))
        .await;
    worker.shutdown().await;
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 4);
    let want = format!("rebound-jobs:{}:{}", env.name, id);
    assert!(keys.iter().all(|k| *k == want), "{keys:?}");
}

async fn aborting_a_worker_is_a_crash(env: Env) {
    let id = env
        .queue
        .enqueue(NewJob::json(&env.name, &1).unwrap())
        .await
        .unwrap();
    struct SetOnDrop(Arc<Mutex<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let (started, cancelled) = (Arc::new(Mutex::new(false)), Arc::new(Mutex::new(false)));
    let (s, c) = (started.clone(), cancelled.clone());
    let worker = builder(&env)
        .lease(S)
        .handler(move |_ctx: JobContext, _: u32| {
            let (s, c) = (s.clone(), c.clone());
            async move {
                let _guard = SetOnDrop(c);
                *s.lock().unwrap() = true;
                std::future::pending::<()>().await;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the run to start", || {
        std::future::ready(*started.lock().unwrap())
    })
    .await;
    worker.abort();
    env.eventually(STEP, "the run to be cancelled", || {
        std::future::ready(*cancelled.lock().unwrap())
    })
    .await;
    // Nothing was settled: the delivery stays counted, without an outcome.
    if env.live_records {
        let rec = env.queue.job(id).await.unwrap().unwrap();
        assert_eq!(rec.status, JobStatus::Running);
        assert_eq!((rec.state.deliveries, rec.state.failures), (1, 0));
    }
    // After its lease, the next worker runs it as attempt 2, with no
    // failure reported before.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let worker = builder(&env)
        .lease(S)
        .rescue_every(S)
        .handler(move |ctx: JobContext, _: u32| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push((ctx.attempt(), ctx.previous_error().map(str::to_owned)));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    env.eventually(STEP, "the redelivery", || processed(&env, 1))
        .await;
    worker.shutdown().await;
    assert_eq!(*seen.lock().unwrap(), [(2, None)]);
    assert!(env.queue.job(id).await.unwrap().is_none());
}
