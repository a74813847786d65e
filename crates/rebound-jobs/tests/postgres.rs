//! What only the PostgreSQL queue does: enqueue inside the caller's own
//! transaction (a transactional outbox), and clear errors for bad
//! settings. Needs `REBOUND_POSTGRES_URL`.
#![cfg(feature = "postgres")]

mod common;

use rebound::Clock;
use rebound_jobs::{NewJob, PostgresQueue, Queue, QueueError};

#[tokio::test]
async fn a_job_enqueued_in_a_transaction_exists_only_if_it_commits() {
    let Some(queue) = common::postgres_queue(Clock::system()).await else {
        return;
    };
    let name = common::unique("outbox");
    let mut client = queue.pool().get().await.unwrap();
    let business = common::unique("invoices");
    client
        .batch_execute(&format!(
            "CREATE TABLE {business} (id BIGINT PRIMARY KEY, state TEXT)"
        ))
        .await
        .unwrap();

    // Rolled back: neither the invoice nor its job.
    let tx = client.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {business} VALUES (1, 'issued')"), &[])
        .await
        .unwrap();
    let lost = queue
        .enqueue_in(&*tx, NewJob::new(&name, "1"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(queue.job(lost).await.unwrap().is_none());

    // Committed: both.
    let tx = client.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {business} VALUES (2, 'issued')"), &[])
        .await
        .unwrap();
    let kept = queue
        .enqueue_in(&*tx, NewJob::new(&name, "2"))
        .await
        .unwrap();
    // Not visible to workers before the commit.
    assert!(queue.job(kept).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(queue.job(kept).await.unwrap().unwrap().payload, b"2");
    assert_eq!(
        queue
            .counts(&name, rebound_jobs::time::wall(&Clock::system()))
            .await
            .unwrap()
            .due,
        1
    );
    client
        .batch_execute(&format!(
            "DROP TABLE {business}; DROP TABLE {}",
            queue.table()
        ))
        .await
        .unwrap();
}

#[test]
fn bad_settings_are_named() {
    match PostgresQueue::connect("mysql://nope") {
        Err(QueueError::Invalid {
            field: "url",
            reason,
        }) => {
            assert!(reason.contains("not a PostgreSQL URL"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let q = PostgresQueue::connect("postgres://postgres@127.0.0.1:1/test").unwrap();
    for bad in ["Jobs", "a.b.c", "1jobs", "jobs;drop"] {
        match q.clone().with_table(bad) {
            Err(QueueError::Invalid { field: "table", .. }) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_not_a_hang() {
    let q = PostgresQueue::connect("postgres://postgres@127.0.0.1:1/test").unwrap();
    let e = q.enqueue(NewJob::new("x", "y")).await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
}
