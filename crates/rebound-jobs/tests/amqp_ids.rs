//! Job ids on RabbitMQ, which numbers no messages: each producer makes its
//! own, and two producers enqueuing into one queue in the same millisecond
//! must not hand out the same id. Against the real broker.

#![cfg(feature = "amqp")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use rebound_jobs::{AmqpQueue, ClaimRequest, NewJob, Queue, Settlement, Timestamp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_producers_in_one_millisecond_never_share_an_id() {
    let Some(url) = common::service_url("REBOUND_AMQP_URL") else {
        return;
    };
    let name = common::unique("rebound-ids");
    let _guard = common::AmqpCleanup::new(&url, &name);
    let a = AmqpQueue::connect(&url, &name)
        .await
        .unwrap()
        .with_producer_id(1)
        .unwrap();
    let b = AmqpQueue::connect(&url, &name)
        .await
        .unwrap()
        .with_producer_id(2)
        .unwrap();
    // Both at the same instant, each more than a millisecond's worth.
    let now = Timestamp::from_millis(1_764_800_000_000);
    let batch = |tag: &str| {
        (0..100)
            .map(|i| NewJob::new(&name, format!("{tag}{i}")))
            .collect()
    };
    let from_a = a.enqueue_many_at(batch("a"), now).await.unwrap();
    let from_b = b.enqueue_many_at(batch("b"), now).await.unwrap();
    assert!(from_a.windows(2).all(|w| w[0] < w[1]), "{from_a:?}");
    let sent: HashSet<_> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(sent.len(), 200, "an id was handed out twice");

    // The ids travel with the messages: a consumer sees each one once.
    let mut claimed = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while claimed.len() < 200 && tokio::time::Instant::now() < deadline {
        let jobs = a
            .claim(ClaimRequest {
                queue: &name,
                now: Timestamp::from_system(a.clock().wall()),
                lease: Duration::from_secs(30),
                max: 50,
                worker: "ids",
            })
            .await
            .unwrap();
        if jobs.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for job in jobs {
            assert!(claimed.insert(job.id()), "{:?} delivered twice", job.id());
            a.settle(
                &job.lease,
                Settlement::Ack,
                Timestamp::from_system(a.clock().wall()),
            )
            .await
            .unwrap();
        }
    }
    assert_eq!(claimed, sent);
}

#[tokio::test]
async fn a_producer_id_out_of_range_is_refused_by_name() {
    let Some(url) = common::service_url("REBOUND_AMQP_URL") else {
        return;
    };
    let name = common::unique("rebound-ids");
    let _guard = common::AmqpCleanup::new(&url, &name);
    let q = AmqpQueue::connect(&url, &name).await.unwrap();
    assert!(q.producer_id() < 1 << 22, "a random number within 22 bits");
    let e = q.with_producer_id(1 << 22).unwrap_err();
    assert!(e.to_string().contains("producer_id"), "{e}");
    let q = AmqpQueue::connect(&url, &name).await.unwrap();
    assert_eq!(
        q.with_producer_id((1 << 22) - 1).unwrap().producer_id(),
        (1 << 22) - 1
    );
}
