//! JetStream's own `max_deliver` fires before the delivery policy decides:
//! the server stops delivering the message and says so only in a
//! max-deliveries advisory. The adapter's advisory handler dead-letters it,
//! so nothing is lost. Needs `REBOUND_NATS_URL`.
#![cfg(feature = "nats")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{self, real_eventually};
use rebound::{Backoff, RandomSource};
use rebound_jobs::metrics::{DEAD_LETTER_MESSAGES_TOTAL, JOBS_PROCESSED_TOTAL};
use rebound_jobs::{
    dlq, DeadLetterFilter, DeadLetterReason, DeliveryPolicy, JobContext, JobError, JobStatus,
    NatsQueue, NewJob, Queue, RedriveOptions, Worker, WorkerBuilder,
};

const S: Duration = Duration::from_secs(1);
const LIMIT: Duration = Duration::from_secs(60);

/// A stream of its own whose consumer stops after two deliveries.
async fn queue() -> Option<(NatsQueue, String, common::NatsCleanup)> {
    let url = common::service_url("REBOUND_NATS_URL")?;
    let name = common::unique("rebound-adv");
    let q = NatsQueue::connect(&url, &name)
        .await
        .unwrap()
        .with_lease(S)
        .unwrap()
        .with_max_deliver(2)
        .unwrap();
    let guard = common::NatsCleanup::new(&url, &name);
    Some((q, name, guard))
}

/// A worker whose policy would allow far more than the broker does: 25
/// attempts, poison after 5 deliveries without an outcome.
fn builder(q: &NatsQueue, name: &str) -> WorkerBuilder {
    harness::metrics();
    Worker::builder(q.clone(), name)
        .random(RandomSource::seeded(3))
        .poll_interval(Duration::from_millis(100))
        .rescue_every(Duration::from_millis(300))
        .policy(
            DeliveryPolicy::builder()
                .max_attempts(25)
                .poison_after(5)
                .backoff(Backoff::constant(S).with_max_delay(S))
                .build()
                .unwrap(),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_runs_stopped_by_max_deliver_are_dead_lettered_as_exhausted() {
    let Some((q, name, _guard)) = queue().await else {
        return;
    };
    let id = q
        .enqueue(NewJob::json(&name, &"invoice-9").unwrap())
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let worker = builder(&q, &name)
        .handler(move |ctx: JobContext, _: String| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push(ctx.attempt());
                Err::<(), _>(JobError::msg(format!(
                    "partner 503 on attempt {}",
                    ctx.attempt()
                )))
            }
        })
        .build()
        .unwrap()
        .spawn();
    real_eventually(LIMIT, "the advisory's dead letter", || async {
        q.dead_letter_depth(Some(&name)).await.unwrap() == 1
    })
    .await;
    // Give a (wrong) third delivery the time to show up: the retry delay
    // is 1 s and the poll 100 ms.
    tokio::time::sleep(2 * S).await;
    worker.shutdown().await;
    assert_eq!(
        *runs.lock().unwrap(),
        [1, 2],
        "the broker allowed two deliveries"
    );

    // Nothing lost: the dead letter keeps the payload, both failures and
    // the broker's limit, and is counted once as exhausted.
    let rec = q.job(id).await.unwrap().expect("the dead-lettered job");
    assert_eq!(rec.status, JobStatus::Dead);
    assert_eq!(rec.reason, Some(DeadLetterReason::Exhausted));
    assert_eq!(rec.payload, br#""invoice-9""#);
    assert_eq!((rec.state.deliveries, rec.state.failures), (2, 2));
    let errors: Vec<_> = rec.history.iter().map(|h| h.error.clone()).collect();
    assert_eq!(
        errors,
        [
            Some("partner 503 on attempt 1".to_owned()),
            Some("partner 503 on attempt 2".to_owned())
        ]
    );
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &name, Some("exhausted")),
        1
    );
    assert_eq!(harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &name, None), 1);

    // And it can be redriven: a fresh message, run to success.
    let moved = dlq::redrive(
        &q,
        &DeadLetterFilter::default().queue(&name),
        RedriveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(moved, 1);
    let worker = builder(&q, &name)
        .handler(|_: JobContext, payload: String| async move {
            assert_eq!(payload, "invoice-9");
            Ok::<_, JobError>(())
        })
        .build()
        .unwrap()
        .spawn();
    real_eventually(LIMIT, "the redriven run", || {
        std::future::ready(harness::counter(JOBS_PROCESSED_TOTAL, &name, None) == 1)
    })
    .await;
    worker.shutdown().await;
    assert_eq!(q.dead_letter_depth(Some(&name)).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_deliveries_stopped_by_max_deliver_are_dead_lettered_as_poison() {
    let Some((q, name, _guard)) = queue().await else {
        return;
    };
    let id = q
        .enqueue(NewJob::json(&name, &"invoice-13").unwrap())
        .await
        .unwrap();
    // Two workers die mid-handler (aborted: no outcome, no hand-back);
    // each delivery is then redelivered by the server after its ack wait.
    for crash in 1..=2u32 {
        let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let worker = builder(&q, &name)
            .handler(move |ctx: JobContext, _: String| {
                let tx = tx.clone();
                async move {
                    tx.send(ctx.attempt()).unwrap();
                    std::future::pending::<()>().await;
                    Ok::<_, JobError>(())
                }
            })
            .build()
            .unwrap()
            .spawn();
        let attempt = tokio::time::timeout(LIMIT, started.recv())
            .await
            .expect("a delivery")
            .unwrap();
        assert_eq!(attempt, crash);
        worker.abort();
    }
    // A healthy worker never sees it again: the server stopped at two
    // deliveries, and the advisory dead-letters it as poison (no run
    // reported an outcome).
    let runs = Arc::new(Mutex::new(0u32));
    let r = runs.clone();
    let worker = builder(&q, &name)
        .handler(move |_: JobContext, _: String| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() += 1;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
        .spawn();
    real_eventually(LIMIT, "the advisory's dead letter", || async {
        q.dead_letter_depth(Some(&name)).await.unwrap() == 1
    })
    .await;
    worker.shutdown().await;
    assert_eq!(*runs.lock().unwrap(), 0, "the server delivers it no more");
    let rec = q.job(id).await.unwrap().expect("the dead-lettered job");
    assert_eq!(rec.reason, Some(DeadLetterReason::Poison));
    assert_eq!(rec.payload, br#""invoice-13""#);
    assert_eq!((rec.state.deliveries, rec.state.failures), (2, 0));
    assert!(
        rec.last_error()
            .unwrap()
            .contains("max_deliver limit (2 deliveries)"),
        "{:?}",
        rec.last_error()
    );
    assert_eq!(
        harness::counter(DEAD_LETTER_MESSAGES_TOTAL, &name, Some("poison")),
        1
    );
}
