//! `rebound dlq` against a real embedded queue file (and PostgreSQL when
//! `REBOUND_POSTGRES_URL` is set): the binary, its output and its errors.

use std::process::Command;
use std::time::Duration;

use rebound_jobs::{
    ClaimRequest, DeadLetterReason, EmbeddedQueue, JobId, NewJob, Queue, RunReport, RunResult,
    Settlement,
};

fn rebound(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(args)
        .env_remove("REBOUND_JOBS_POSTGRES_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Dead-letters a job of `queue` after one failed run with `error`.
async fn dead(
    q: &dyn Queue,
    queue: &str,
    payload: &str,
    reason: DeadLetterReason,
    error: &str,
) -> JobId {
    let now = rebound_jobs::time::wall(q.clock());
    let id = q
        .enqueue_at(NewJob::new(queue, payload), now)
        .await
        .unwrap();
    let job = q
        .claim(ClaimRequest {
            queue,
            now,
            lease: Duration::from_secs(30),
            max: 1,
            worker: "test-worker",
        })
        .await
        .unwrap()
        .remove(0);
    let mut state = job.state;
    state.failures += 1;
    q.settle(
        &job.lease,
        Settlement::DeadLetter {
            state,
            reason,
            report: RunReport {
                result: RunResult::Failed,
                error: Some(error.into()),
            },
        },
        now,
    )
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_redrive_purge_an_embedded_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.redb");
    let file = path.to_str().unwrap().to_owned();
    let (a, b) = {
        let q = EmbeddedQueue::open(&path).unwrap();
        let a = dead(
            &q,
            "invoices",
            r#"{"invoice":42}"#,
            DeadLetterReason::Exhausted,
            "partner API 503",
        )
        .await;
        let b = dead(
            &q,
            "emails",
            "hello",
            DeadLetterReason::Permanent,
            "no such mailbox",
        )
        .await;
        (a, b)
    };

    let (ok, out, err) = rebound(&["dlq", "--file", &file, "list"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("2 dead-lettered jobs in all; 2 listed"),
        "{out}"
    );
    assert!(
        out.contains("invoices") && out.contains("exhausted") && out.contains("partner API 503"),
        "{out}"
    );
    assert!(out.contains("emails") && out.contains("permanent"), "{out}");

    let (ok, out, _) = rebound(&["dlq", "--file", &file, "list", "--reason", "permanent"]);
    assert!(ok);
    assert!(
        out.contains("no such mailbox") && !out.contains("partner"),
        "{out}"
    );

    let (ok, out, _) = rebound(&["dlq", "--file", &file, "--json", "list", "--error", "503"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(v["jobs"][0]["id"], a.0);
    assert_eq!(v["jobs"][0]["payload"], r#"{"invoice":42}"#);
    assert_eq!(v["jobs"][0]["reason"], "exhausted");
    assert_eq!(v["jobs"][0]["history"][0]["error"], "partner API 503");

    let (ok, out, _) = rebound(&["dlq", "--file", &file, "show", &a.to_string()]);
    assert!(ok);
    assert!(out.contains(r#"payload:   {"invoice":42}"#), "{out}");
    assert!(out.contains("dead-lettered (exhausted)"), "{out}");
    assert!(
        out.contains("by test-worker  failed") && out.contains("partner API 503"),
        "{out}"
    );

    // Redrive needs a filter or --all.
    let (ok, _, err) = rebound(&["dlq", "--file", &file, "redrive"]);
    assert!(!ok);
    assert!(err.contains("--all"), "{err}");
    let (ok, out, err) = rebound(&[
        "dlq", "--file", &file, "redrive", "--queue", "invoices", "--rate", "50",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Moved 1 job back to its queue, each with a fresh attempt budget.\n"
    );
    let (_, out, _) = rebound(&["dlq", "--file", &file, "--json", "depth"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["depth"],
        1
    );

    // Purge: only what is old enough.
    let (ok, out, _) = rebound(&["dlq", "--file", &file, "purge", "--older-than", "1h"]);
    assert!(ok);
    assert!(out.starts_with("Deleted 0 dead-lettered jobs"), "{out}");
    let (ok, out, _) = rebound(&["dlq", "--file", &file, "purge", "--older-than", "0s"]);
    assert!(ok);
    assert!(out.starts_with("Deleted 1 dead-lettered job "), "{out}");
    let q = EmbeddedQueue::open(&path).unwrap();
    assert!(q.job(b).await.unwrap().is_none());
    assert_eq!(q.job(a).await.unwrap().unwrap().redrives, 1);
}

#[test]
fn errors_say_what_is_wrong() {
    let (ok, _, err) = rebound(&["dlq", "list"]);
    assert!(!ok);
    assert!(
        err.contains("--file PATH") && err.contains("--postgres URL"),
        "{err}"
    );

    let (ok, _, err) = rebound(&["dlq", "--file", "/nonexistent/jobs.redb", "list"]);
    assert!(!ok);
    assert!(
        err.contains("no queue file at /nonexistent/jobs.redb"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.redb");
    let _held = EmbeddedQueue::open(&path).unwrap();
    let (ok, _, err) = rebound(&["dlq", "--file", path.to_str().unwrap(), "list"]);
    assert!(!ok);
    assert!(err.contains("open in another process"), "{err}");

    let (ok, _, err) = rebound(&["dlq", "--file", "x", "list", "--reason", "tired"]);
    assert!(!ok);
    assert!(
        err.contains("expected one of: exhausted, expired, permanent, poison"),
        "{err}"
    );
    let (ok, _, err) = rebound(&["dlq", "--file", "x", "purge", "--older-than", "soon"]);
    assert!(!ok);
    assert!(err.contains("write it like 30d"), "{err}");
    let (ok, _, err) = rebound(&["dlq", "--file", "x", "show", "forty-two"]);
    assert!(!ok);
    assert!(err.contains("not a job id"), "{err}");
    let (ok, _, err) = rebound(&[
        "dlq",
        "--postgres",
        "postgres://postgres@127.0.0.1:1/x",
        "depth",
    ]);
    assert!(!ok);
    assert!(err.contains("postgres queue unavailable"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_against_postgres_too() {
    let Ok(url) = std::env::var("REBOUND_POSTGRES_URL") else {
        assert!(
            std::env::var("REBOUND_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "REBOUND_POSTGRES_URL is not set but REBOUND_REQUIRE_SERVICES=1 requires it"
        );
        println!("skipped: REBOUND_POSTGRES_URL not set");
        return;
    };
    let table = format!(
        "jobs_test_{}_{}_cli",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        std::process::id()
    );
    let q = rebound_jobs::PostgresQueue::connect(&url)
        .unwrap()
        .with_table(&table)
        .unwrap();
    q.migrate().await.unwrap();
    let id = dead(&q, "invoices", "{}", DeadLetterReason::Poison, "no outcome").await;
    let (ok, out, err) = rebound(&["dlq", "--postgres", &url, "--table", &table, "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("poison"), "{out}");
    let (ok, out, _) = rebound(&[
        "dlq",
        "--postgres",
        &url,
        "--table",
        &table,
        "redrive",
        "--all",
    ]);
    assert!(ok);
    assert!(out.starts_with("Moved 1 job"), "{out}");
    assert_eq!(q.job(id).await.unwrap().unwrap().redrives, 1);
    let c = q.pool().get().await.unwrap();
    c.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

/// Dead-letters a job on a broker adapter: the claim waits for the
/// broker's delivery.
async fn dead_on_broker(q: &dyn Queue, queue: &str, payload: &str, error: &str) -> JobId {
    let id = q.enqueue(NewJob::new(queue, payload)).await.unwrap();
    let started = std::time::Instant::now();
    let job = loop {
        let now = rebound_jobs::time::wall(q.clock());
        let mut got = q
            .claim(ClaimRequest {
                queue,
                now,
                lease: Duration::from_secs(30),
                max: 1,
                worker: "test-worker",
            })
            .await
            .unwrap();
        if let Some(j) = got.pop() {
            break j;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job.id(), id);
    let mut state = job.state;
    state.failures += 1;
    let now = rebound_jobs::time::wall(q.clock());
    q.settle(
        &job.lease,
        Settlement::DeadLetter {
            state,
            reason: DeadLetterReason::Exhausted,
            report: RunReport {
                result: RunResult::Failed,
                error: Some(error.into()),
            },
        },
        now,
    )
    .await
    .unwrap();
    id
}

/// list, show, redrive and purge through the binary against a broker,
/// given its flags (`--redis URL --stream S`, ...).
async fn broker_round_trip(q: &dyn Queue, name: &str, flags: &[&str]) {
    let a = dead_on_broker(q, name, r#"{"invoice":1}"#, "partner API 503").await;
    let b = dead_on_broker(q, name, r#"{"invoice":2}"#, "invoice not found").await;
    let args = |rest: &[&str]| {
        let mut v: Vec<String> = vec!["dlq".into()];
        v.extend(flags.iter().map(|s| s.to_string()));
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let run = |rest: &[&str]| {
        let v = args(rest);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        rebound(&refs)
    };
    let (ok, out, err) = run(&["list"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("2 dead-lettered jobs in all; 2 listed"),
        "{out}"
    );
    assert!(
        out.contains("partner API 503") && out.contains("invoice not found"),
        "{out}"
    );
    let (ok, out, err) = run(&["show", &a.to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains(r#"payload:   {"invoice":1}"#), "{out}");
    assert!(out.contains("dead-lettered (exhausted)"), "{out}");
    let (ok, out, err) = run(&["redrive", "--error", "503"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Moved 1 job back"), "{out}");
    let (ok, out, _) = run(&["--json", "depth"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        r#"{
  "depth": 1
}"#
    );
    let (ok, out, err) = run(&["purge", "--older-than", "0s"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Deleted 1 dead-lettered job"), "{out}");
    let (_, out, _) = run(&["show", &b.to_string()]);
    assert!(out.is_empty());
    assert_eq!(q.dead_letter_depth(None).await.unwrap(), 0);
}

fn unique(prefix: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!(
        "{prefix}-{}-{}-{}",
        now.as_secs(),
        std::process::id(),
        now.subsec_nanos()
    )
}

fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("REBOUND_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{var} is not set but REBOUND_REQUIRE_SERVICES=1 requires it"
            );
            println!("skipped: {var} not set");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_against_a_redis_stream() {
    let Some(url) = service("REBOUND_REDIS_URL") else {
        return;
    };
    let name = unique("cli-dlq");
    let q = rebound_jobs::RedisStreamQueue::connect(&url, &name)
        .await
        .unwrap();
    broker_round_trip(&q, &name, &["--redis", &url, "--stream", &name]).await;
    // Only this test's keys.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&name)
        .arg(format!("{name}:rebound:dead"))
        .arg(format!("{name}:rebound:ids"))
        .query(&mut c)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_against_a_nats_stream() {
    let Some(url) = service("REBOUND_NATS_URL") else {
        return;
    };
    let name = unique("cli-dlq");
    let q = rebound_jobs::NatsQueue::connect(&url, &name).await.unwrap();
    broker_round_trip(&q, &name, &["--nats", &url, "--stream", &name]).await;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    for s in [
        name.clone(),
        format!("{name}_DEAD"),
        format!("{name}_ADVISORIES"),
        format!("{name}_REBOUND"),
    ] {
        let _ = js.delete_stream(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_against_a_rabbitmq_queue() {
    let Some(url) = service("REBOUND_AMQP_URL") else {
        return;
    };
    let name = unique("cli-dlq");
    let q = rebound_jobs::AmqpQueue::connect(&url, &name).await.unwrap();
    broker_round_trip(&q, &name, &["--amqp", &url, "--queue", &name]).await;
    let conn = lapin::Connection::connect(&url, Default::default())
        .await
        .unwrap();
    for n in [name.clone(), format!("{name}.dead")] {
        let ch = conn.create_channel().await.unwrap();
        let _ = ch.queue_delete(n.as_str().into(), Default::default()).await;
    }
}

#[test]
fn broker_flags_need_their_stream_or_queue() {
    let (ok, _, err) = rebound(&["dlq", "--redis", "redis://127.0.0.1:1", "list"]);
    assert!(!ok);
    assert!(err.contains("--redis needs --stream NAME"), "{err}");
    let (ok, _, err) = rebound(&["dlq", "--amqp", "amqp://127.0.0.1:1/%2f", "list"]);
    assert!(!ok);
    assert!(err.contains("--amqp needs --queue NAME"), "{err}");
    let (ok, _, err) = rebound(&[
        "dlq",
        "--redis",
        "redis://x",
        "--nats",
        "nats://y",
        "--stream",
        "s",
        "list",
    ]);
    assert!(!ok);
    assert!(err.contains("give one of"), "{err}");
}
