//! `kill -9` of a worker process mid-handler. The worker is a child
//! process: this test binary run again with `child_worker` selected, which
//! claims the job, prints `RUNNING <id> <attempt>` from the handler and
//! then hangs until it is killed with SIGKILL. The parent moves its own
//! (manual) clock past the child's lease, rescues the job and inspects it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{self, eventually};
use rebound::Clock;
use rebound_jobs::metrics::{DEAD_LETTER_MESSAGES_TOTAL, JOBS_FAILED_TOTAL, JOBS_PROCESSED_TOTAL};
use rebound_jobs::time::wall;
use rebound_jobs::{
    DeadLetterReason, JobContext, JobError, JobId, JobStatus, NewJob, Queue, RunResult, Worker,
};

const CHILD: &str = "REBOUND_JOBS_CHILD";
const CHILD_LEASE: Duration = Duration::from_secs(2);

/// The child worker: runs only when the parent sets `REBOUND_JOBS_CHILD`
/// (ignored in normal runs; the parent selects it explicitly).
#[test]
#[ignore = "the worker process the crash tests spawn and kill"]
fn child_worker() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (backend, target, name) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let queue: Arc<dyn Queue> = match backend.as_str() {
            #[cfg(feature = "embedded")]
            "embedded" => Arc::new(rebound_jobs::EmbeddedQueue::open_existing(&target).unwrap()),
            #[cfg(feature = "postgres")]
            "postgres" => {
                let (url, table) = target.split_once('#').unwrap();
                Arc::new(
                    rebound_jobs::PostgresQueue::connect(url)
                        .unwrap()
                        .with_table(table)
                        .unwrap(),
                )
            }
            #[cfg(feature = "redis")]
            "redis" => {
                let (url, stream) = target.split_once('#').unwrap();
                Arc::new(
                    rebound_jobs::RedisStreamQueue::connect(url, stream)
                        .await
                        .unwrap(),
                )
            }
            #[cfg(feature = "nats")]
            "nats" => {
                let (url, stream) = target.split_once('#').unwrap();
                Arc::new(
                    rebound_jobs::NatsQueue::connect(url, stream)
                        .await
                        .unwrap()
                        .with_lease(CHILD_LEASE)
                        .unwrap(),
                )
            }
            #[cfg(feature = "amqp")]
            "amqp" => {
                let (url, queue) = target.split_once('#').unwrap();
                Arc::new(rebound_jobs::AmqpQueue::connect(url, queue).await.unwrap())
            }
            other => panic!("unknown backend {other}"),
        };
        let worker = Worker::builder(queue, name)
            .lease(CHILD_LEASE)
            .poll_interval(Duration::from_millis(20))
            .worker_id(format!("child-{}", std::process::id()))
            .handler(|ctx: JobContext, _: String| async move {
                // Straight to the file descriptor: the test harness's
                // output capture does not reach the runtime's threads.
                {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "RUNNING {} {}", ctx.id(), ctx.attempt()).unwrap();
                    out.flush().unwrap();
                }
                std::future::pending::<()>().await;
                Ok::<_, JobError>(())
            })
            .build()
            .unwrap();
        worker.run(std::future::pending()).await;
    });
}

/// Runs a child worker until its handler has started on a job, then kills
/// it with SIGKILL; returns (job id, attempt) the child reported.
fn run_child_and_kill(spec: &str) -> (u64, u32) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_worker",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, spec)
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("REBOUND_JOBS_CHILD_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The harness's "test child_worker ... " has no newline of its
            // own: the marker may follow it on the same line.
            if let Some(rest) = line.split("RUNNING ").nth(1) {
                let mut it = rest.split(' ');
                let id = it.next().unwrap().parse::<u64>().unwrap();
                let attempt = it.next().unwrap().parse::<u32>().unwrap();
                let _ = tx.send((id, attempt));
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(60));
    // std's Child::kill sends SIGKILL on Unix: no destructor, no shutdown.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    got.expect("the child worker never started the job")
}

/// One backend's crash scenario, with `open` reopening the parent's view of
/// the queue after each kill (the embedded file is free only once the child
/// is dead).
async fn crashes_then_poison<Q: Queue + Clone>(
    open: impl Fn(Clock) -> Q,
    close: impl Fn(Q),
    spec: String,
    name: String,
) {
    harness::metrics();
    let (clock, manual) = Clock::manual();
    let queue = open(clock.clone());
    let id = queue
        .enqueue(NewJob::json(&name, &"invoice-13").unwrap())
        .await
        .unwrap();
    close(queue);

    for crash in 1..=3u32 {
        let (got, attempt) = run_child_and_kill(&spec);
        assert_eq!((JobId(got), attempt), (id, crash));
        let queue = open(clock.clone());
        let rec = queue.job(id).await.unwrap().unwrap();
        // Counted as a delivery at claim, not as a failure.
        assert_eq!(rec.status, JobStatus::Running);
        assert_eq!((rec.state.deliveries, rec.state.failures), (crash, 0));
        let last = rec.history.last().unwrap();
        assert_eq!(last.result, RunResult::NoOutcome);
        assert!(last.worker.starts_with("child-"), "{}", last.worker);
        if crash == 1 {
            // Not before the lease ends (later children ran at real time,
            // behind the parent's clock, which has moved on by hours)...
            assert_eq!(queue.rescue(wall(&clock), 10).await.unwrap(), 0);
        }
        // ...then redelivered.
        manual.advance(Duration::from_secs(3600));
        assert_eq!(queue.rescue(wall(&clock), 10).await.unwrap(), 1);
        assert_eq!(
            queue.job(id).await.unwrap().unwrap().status,
            JobStatus::Available
        );
        close(queue);
    }

    // Three deliveries without an outcome: poison. Dead-lettered without
    // running again.
    let queue = open(clock.clone());
    let runs = Arc::new(Mutex::new(0));
    let r = runs.clone();
    let worker = Worker::builder(queue.clone(), name.clone())
        .clock(clock.clone())
        .poll_interval(Duration::from_millis(100))
        .handler(move |_ctx: JobContext, _: String| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() += 1;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    eventually(
        &manual,
        Duration::from_millis(100),
        "the poison job",
        || async { queue.dead_letter_depth(Some(&name)).await.unwrap() == 1 },
    )
    .await;
    worker.shutdown().await;
    assert_eq!(*runs.lock().unwrap(), 0, "a poison job must not run again");
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.reason, Some(DeadLetterReason::Poison));
    let results: Vec<_> = rec.history.iter().map(|h| h.result).collect();
    assert_eq!(
        results,
        [
            RunResult::NoOutcome,
            RunResult::NoOutcome,
            RunResult::NoOutcome,
            RunResult::NotRun
        ]
    );
    assert!(rec.last_error().unwrap().contains("3 earlier deliveries"));
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &name, Some("poison")),
        1
    );
}

/// One crash, then a healthy worker: the job runs as attempt 2 and is
/// acked; no failure was counted.
async fn crash_then_redelivered<Q: Queue + Clone>(
    open: impl Fn(Clock) -> Q,
    close: impl Fn(Q),
    spec: String,
    name: String,
) {
    harness::metrics();
    let (clock, manual) = Clock::manual();
    let queue = open(clock.clone());
    let id = queue
        .enqueue(NewJob::json(&name, &"invoice-14").unwrap())
        .await
        .unwrap();
    close(queue);
    assert_eq!(run_child_and_kill(&spec), (id.0, 1));
    let queue = open(clock.clone());
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let worker = Worker::builder(queue.clone(), name.clone())
        .clock(clock.clone())
        .poll_interval(Duration::from_millis(100))
        .rescue_every(Duration::from_secs(1))
        .handler(move |ctx: JobContext, _: String| {
            let s = s.clone();
            async move {
                *s.lock().unwrap() = Some((ctx.attempt(), ctx.previous_error().map(str::to_owned)));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    eventually(
        &manual,
        Duration::from_millis(500),
        "the redelivery",
        || async { queue.job(id).await.unwrap().is_none() },
    )
    .await;
    worker.shutdown().await;
    assert_eq!(*seen.lock().unwrap(), Some((2, None)));
    assert_eq!(harness::counter(JOBS_FAILED_TOTAL, &name, None), 0);
    assert_eq!(harness::counter(JOBS_PROCESSED_TOTAL, &name, None), 1);
}

#[cfg(feature = "embedded")]
mod embedded {
    use super::*;
    use rebound_jobs::EmbeddedQueue;

    fn setup() -> (tempfile::TempDir, std::path::PathBuf, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        let name = common::unique("crash");
        let spec = format!("embedded|{}|{name}", path.display());
        (dir, path, spec, name)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_mid_handler_is_redelivered_then_poison_without_running() {
        let (_dir, path, spec, name) = setup();
        crashes_then_poison(
            |c| EmbeddedQueue::open(&path).unwrap().with_clock(c),
            drop,
            spec,
            name,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_mid_handler_then_a_healthy_worker_runs_it_as_attempt_2() {
        let (_dir, path, spec, name) = setup();
        crash_then_redelivered(
            |c| EmbeddedQueue::open(&path).unwrap().with_clock(c),
            drop,
            spec,
            name,
        )
        .await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use rebound_jobs::PostgresQueue;

    async fn setup() -> Option<(PostgresQueue, String, String)> {
        let url = common::service_url("REBOUND_POSTGRES_URL")?;
        let table = common::unique("jobs_test");
        let q = common::postgres_queue_at(&url, &table, Clock::system()).await;
        let name = common::unique("crash");
        let spec = format!("postgres|{url}#{table}|{name}");
        Some((q, spec, name))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_mid_handler_is_redelivered_then_poison_without_running() {
        let Some((q, spec, name)) = setup().await else {
            return;
        };
        crashes_then_poison(move |c| q.clone().with_clock(c), drop, spec, name).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_mid_handler_then_a_healthy_worker_runs_it_as_attempt_2() {
        let Some((q, spec, name)) = setup().await else {
            return;
        };
        crash_then_redelivered(move |c| q.clone().with_clock(c), drop, spec, name).await;
    }
}

/// The crash scenario on a broker, in real time: three children take the
/// job and are killed mid-handler, each redelivery counted by the broker
/// (after the lease in Redis and JetStream; at once in RabbitMQ, which
/// returns a dead connection's deliveries); then a healthy worker
/// dead-letters it as poison without running it.
#[cfg(any(feature = "redis", feature = "nats", feature = "amqp"))]
async fn broker_crashes_then_poison(queue: Arc<dyn Queue>, spec: String, name: String) {
    harness::metrics();
    let id = queue
        .enqueue(NewJob::json(&name, &"invoice-13").unwrap())
        .await
        .unwrap();
    for crash in 1..=3u32 {
        let (got, attempt) = run_child_and_kill(&spec);
        assert_eq!((JobId(got), attempt), (id, crash));
    }
    let runs = Arc::new(Mutex::new(0));
    let r = runs.clone();
    let worker = Worker::builder(queue.clone(), name.clone())
        .lease(CHILD_LEASE)
        .poll_interval(Duration::from_millis(50))
        .handler(move |_ctx: JobContext, _: String| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() += 1;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    harness::real_eventually(Duration::from_secs(30), "the poison job", || async {
        queue.dead_letter_depth(Some(&name)).await.unwrap() == 1
    })
    .await;
    worker.shutdown().await;
    assert_eq!(*runs.lock().unwrap(), 0, "a poison job must not run again");
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.reason, Some(DeadLetterReason::Poison));
    let results: Vec<_> = rec.history.iter().map(|h| h.result).collect();
    assert_eq!(
        results,
        [
            RunResult::NoOutcome,
            RunResult::NoOutcome,
            RunResult::NoOutcome,
            RunResult::NotRun
        ]
    );
    assert!(rec.last_error().unwrap().contains("3 earlier deliveries"));
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &name, Some("poison")),
        1
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_kill_9_mid_handler_is_redelivered_then_poison_without_running() {
    let Some(env) = harness::redis_env().await else {
        return;
    };
    let url = std::env::var("REBOUND_REDIS_URL").unwrap();
    let spec = format!("redis|{url}#{}|{}", env.name, env.name);
    broker_crashes_then_poison(env.queue.clone(), spec, env.name.clone()).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_kill_9_mid_handler_is_redelivered_then_poison_without_running() {
    let Some(env) = harness::nats_env().await else {
        return;
    };
    let url = std::env::var("REBOUND_NATS_URL").unwrap();
    let spec = format!("nats|{url}#{}|{}", env.name, env.name);
    broker_crashes_then_poison(env.queue.clone(), spec, env.name.clone()).await;
}

#[cfg(feature = "amqp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_kill_9_mid_handler_is_redelivered_then_poison_without_running() {
    let Some(env) = harness::amqp_env().await else {
        return;
    };
    let url = std::env::var("REBOUND_AMQP_URL").unwrap();
    let spec = format!("amqp|{url}#{}|{}", env.name, env.name);
    broker_crashes_then_poison(env.queue.clone(), spec, env.name.clone()).await;
}
