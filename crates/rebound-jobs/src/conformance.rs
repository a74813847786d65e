//! The queue conformance suite: the rules of [`queue`](crate::queue),
//! checked against any [`Queue`]. Every backend runs it — the embedded and
//! PostgreSQL queues here, and broker adapters the same way:
//!
//! ```ignore
//! // tests/conformance.rs of an adapter (feature `conformance`):
//! async fn fresh() -> Option<MyBrokerQueue> { /* a new, empty queue */ }
//! rebound_jobs::conformance_suite!(fresh());
//! ```
//!
//! Each check gets a fresh queue from the expression (which may return
//! `None` to skip, e.g. when a service is not configured) and moves time
//! by hand: every time is an explicit [`Timestamp`], never slept on.

use std::collections::HashSet;
use std::time::Duration;

use crate::dlq::{self, DeadLetterFilter, RedriveOptions};
use crate::job::{ClaimedJob, JobStatus, NewJob, RunReport, RunResult, Settlement};
use crate::policy::DeadLetterReason;
use crate::queue::{ClaimRequest, Queue, QueueError};
use crate::time::Timestamp;

/// The lease every check takes.
pub const LEASE: Duration = Duration::from_secs(30);

/// The time every check starts at.
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

const S: Duration = Duration::from_secs(1);

/// Generates one `#[tokio::test]` per check, each on a fresh queue from
/// `$make` (an expression of type `impl Future<Output = Option<impl
/// Queue>>`; `None` skips the check).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            claim_counts_the_delivery_and_leases,
            enqueue_many_keeps_the_order,
            claims_only_due_jobs_in_due_order,
            ack_deletes_the_job,
            retry_keeps_the_state_until_due,
            hand_back_is_due_at_once,
            stale_leases_are_fenced,
            renewal_extends_the_lease,
            rescue_keeps_the_lost_delivery_counted,
            dead_letters_keep_payload_reason_and_history,
            dead_letters_filter_by_queue_reason_error_and_age,
            redrive_moves_back_with_a_fresh_budget,
            redrive_is_rate_limited,
            purge_deletes_only_dead_jobs,
            concurrent_claims_never_share_a_job,
            counts_by_place,
            bad_queue_names_are_refused,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(queue) = $make.await else { return };
                $crate::conformance::$name(&queue).await;
            }
        )*
    };
}

fn q(name: &str) -> String {
    name.to_owned()
}

async fn claim(queue: &dyn Queue, name: &str, now: Timestamp, max: usize) -> Vec<ClaimedJob> {
    queue
        .claim(ClaimRequest {
            queue: name,
            now,
            lease: LEASE,
            max,
            worker: "conformance",
        })
        .await
        .expect("claim")
}

async fn claim_one(queue: &dyn Queue, name: &str, now: Timestamp) -> ClaimedJob {
    let mut jobs = claim(queue, name, now, 1).await;
    assert_eq!(jobs.len(), 1, "expected one due job in {name} at {now}");
    jobs.remove(0)
}

fn failed(text: &str) -> RunReport {
    RunReport {
        result: RunResult::Failed,
        error: Some(text.to_owned()),
    }
}

fn assert_lease_lost<T: std::fmt::Debug>(r: Result<T, QueueError>) {
    match r {
        Err(QueueError::LeaseLost { .. }) => {}
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

/// Dead-letters a fresh job of `name` after one failed run with `error`.
async fn dead_job(
    queue: &dyn Queue,
    name: &str,
    payload: &str,
    reason: DeadLetterReason,
    error: &str,
    at: Timestamp,
) -> crate::JobId {
    let id = queue
        .enqueue_at(NewJob::new(name, payload), at)
        .await
        .unwrap();
    let job = claim_one(queue, name, at).await;
    assert_eq!(job.id(), id);
    let mut state = job.state;
    state.failures += 1;
    queue
        .settle(
            &job.lease,
            Settlement::DeadLetter {
                state,
                reason,
                report: failed(error),
            },
            at,
        )
        .await
        .unwrap();
    id
}

/// A claim counts the delivery, takes fence 1, leases the job until
/// `now + lease` and opens a delivery record; the job cannot be claimed
/// again while leased.
pub async fn claim_counts_the_delivery_and_leases(queue: &dyn Queue) {
    let name = q("claim");
    let id = queue
        .enqueue_at(NewJob::new(&name, "p1"), T0)
        .await
        .unwrap();
    let job = claim_one(queue, &name, T0).await;
    assert_eq!(job.id(), id);
    assert_eq!(job.payload, b"p1");
    assert_eq!(job.queue, name);
    assert_eq!(job.state.deliveries, 1);
    assert_eq!(job.state.failures, 0);
    assert_eq!(job.state.enqueued_at, T0);
    assert_eq!(job.lease.token, 1);
    assert_eq!(job.lease.expires_at, T0 + LEASE);
    assert!(job.last_error.is_none());
    assert!(claim(queue, &name, T0 + S, 10).await.is_empty());
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Running);
    assert_eq!(rec.history.len(), 1);
    assert_eq!(rec.history[0].delivery, 1);
    assert_eq!(rec.history[0].claimed_at, T0);
    assert_eq!(rec.history[0].worker, "conformance");
    assert_eq!(rec.history[0].result, RunResult::NoOutcome);
}

/// A batch enqueue returns the ids in order; the jobs are claimed in that
/// order.
pub async fn enqueue_many_keeps_the_order(queue: &dyn Queue) {
    let name = q("many");
    let jobs = (0..50).map(|i| NewJob::new(&name, i.to_string())).collect();
    let ids = queue.enqueue_many_at(jobs, T0).await.unwrap();
    assert_eq!(ids.len(), 50);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let claimed = claim(queue, &name, T0, 100).await;
    let got: Vec<_> = claimed
        .iter()
        .map(|j| (j.id(), j.payload.clone()))
        .collect();
    let want: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i.to_string().into_bytes()))
        .collect();
    assert_eq!(got, want);
}

/// Only due jobs are claimed, earliest due first; other queues' jobs are
/// never handed out.
pub async fn claims_only_due_jobs_in_due_order(queue: &dyn Queue) {
    let name = q("order");
    let late = queue
        .enqueue_at(NewJob::new(&name, "late").delay(10 * S), T0)
        .await
        .unwrap();
    let soon = queue
        .enqueue_at(NewJob::new(&name, "soon").delay(5 * S), T0)
        .await
        .unwrap();
    let now_a = queue.enqueue_at(NewJob::new(&name, "a"), T0).await.unwrap();
    let now_b = queue.enqueue_at(NewJob::new(&name, "b"), T0).await.unwrap();
    queue
        .enqueue_at(NewJob::new("other", "x"), T0)
        .await
        .unwrap();
    let first: Vec<_> = claim(queue, &name, T0, 10)
        .await
        .iter()
        .map(|j| j.id())
        .collect();
    assert_eq!(first, [now_a, now_b]);
    let second: Vec<_> = claim(queue, &name, T0 + 10 * S, 10)
        .await
        .iter()
        .map(|j| j.id())
        .collect();
    assert_eq!(second, [soon, late]);
    // A job scheduled ahead counts its age from when it is due.
    let rec = queue.job(late).await.unwrap().unwrap();
    assert_eq!(rec.state.enqueued_at, T0 + 10 * S);
}

/// Ack deletes the job; a second ack under the same lease is refused.
pub async fn ack_deletes_the_job(queue: &dyn Queue) {
    let name = q("ack");
    let id = queue.enqueue_at(NewJob::new(&name, "x"), T0).await.unwrap();
    let job = claim_one(queue, &name, T0).await;
    queue
        .settle(&job.lease, Settlement::Ack, T0 + S)
        .await
        .unwrap();
    assert!(queue.job(id).await.unwrap().is_none());
    assert_lease_lost(queue.settle(&job.lease, Settlement::Ack, T0 + S).await);
    assert!(claim(queue, &name, T0 + 3600 * S, 10).await.is_empty());
}

/// A retry keeps the state the policy computed (failures, backoff) and is
/// not due before its time; the next claim counts a second delivery and
/// sees the last error.
pub async fn retry_keeps_the_state_until_due(queue: &dyn Queue) {
    let name = q("retry");
    let id = queue.enqueue_at(NewJob::new(&name, "x"), T0).await.unwrap();
    let job = claim_one(queue, &name, T0).await;
    let mut state = job.state;
    state.failures = 1;
    state.backoff_retries = 1;
    state.backoff_previous_nanos = Some(1_234_567_891);
    queue
        .settle(
            &job.lease,
            Settlement::Retry {
                state,
                run_at: T0 + 60 * S,
                report: failed("partner API answered 503"),
            },
            T0 + S,
        )
        .await
        .unwrap();
    assert!(claim(queue, &name, T0 + 59 * S, 10).await.is_empty());
    let again = claim_one(queue, &name, T0 + 60 * S).await;
    assert_eq!(again.id(), id);
    assert_eq!(again.state.deliveries, 2);
    assert_eq!(again.state.failures, 1);
    assert_eq!(again.state.backoff_retries, 1);
    assert_eq!(again.state.backoff_previous_nanos, Some(1_234_567_891));
    assert_eq!(again.lease.token, 2);
    assert_eq!(
        again.last_error.as_deref(),
        Some("partner API answered 503")
    );
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.history.len(), 2);
    assert_eq!(rec.history[0].result, RunResult::Failed);
    assert_eq!(rec.history[0].ended_at, Some(T0 + S));
    assert_eq!(
        rec.history[0].error.as_deref(),
        Some("partner API answered 503")
    );
    assert_eq!(rec.history[1].result, RunResult::NoOutcome);
}

/// A handed-back job is due at once with its interrupt counted.
pub async fn hand_back_is_due_at_once(queue: &dyn Queue) {
    let name = q("handback");
    queue.enqueue_at(NewJob::new(&name, "x"), T0).await.unwrap();
    let job = claim_one(queue, &name, T0).await;
    let mut state = job.state;
    state.interrupts += 1;
    queue
        .settle(
            &job.lease,
            Settlement::HandBack {
                state,
                report: RunReport {
                    result: RunResult::Interrupted,
                    error: None,
                },
            },
            T0 + 2 * S,
        )
        .await
        .unwrap();
    let again = claim_one(queue, &name, T0 + 2 * S).await;
    assert_eq!(again.state.deliveries, 2);
    assert_eq!(again.state.interrupts, 1);
    assert_eq!(again.state.attempt(), 1);
}

/// Once a lease has expired and the job was claimed again, the old holder
/// can neither renew nor settle; the new holder can.
pub async fn stale_leases_are_fenced(queue: &dyn Queue) {
    let name = q("fence");
    let id = queue.enqueue_at(NewJob::new(&name, "x"), T0).await.unwrap();
    let old = claim_one(queue, &name, T0).await;
    let later = T0 + LEASE + S;
    assert!(queue.rescue(later, 100).await.unwrap() >= 1);
    let new = claim_one(queue, &name, later).await;
    assert_eq!(new.id(), id);
    assert!(new.lease.token > old.lease.token);
    assert_lease_lost(queue.renew(&old.lease, later, LEASE).await);
    assert_lease_lost(queue.settle(&old.lease, Settlement::Ack, later).await);
    let mut st = old.state;
    st.failures += 1;
    assert_lease_lost(
        queue
            .settle(
                &old.lease,
                Settlement::DeadLetter {
                    state: st,
                    reason: DeadLetterReason::Permanent,
                    report: failed("late"),
                },
                later,
            )
            .await,
    );
    assert_eq!(
        queue.job(id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    queue
        .settle(&new.lease, Settlement::Ack, later)
        .await
        .unwrap();
    assert!(queue.job(id).await.unwrap().is_none());
}

/// Renewing moves the lease's end; rescue respects it.
pub async fn renewal_extends_the_lease(queue: &dyn Queue) {
    let name = q("renew");
    queue.enqueue_at(NewJob::new(&name, "x"), T0).await.unwrap();
    let job = claim_one(queue, &name, T0).await;
    let until = queue.renew(&job.lease, T0 + 20 * S, LEASE).await.unwrap();
    assert_eq!(until, T0 + 50 * S);
    assert_eq!(queue.rescue(T0 + 40 * S, 100).await.unwrap(), 0);
    assert!(claim(queue, &name, T0 + 40 * S, 10).await.is_empty());
    assert_eq!(queue.rescue(T0 + 50 * S, 100).await.unwrap(), 1);
    // The renewed lease was still the same lease.
    let again = claim_one(queue, &name, T0 + 50 * S).await;
    assert_eq!(again.lease.token, job.lease.token + 1);
}

/// A rescued job is due at once, its lost delivery still counted and its
/// record left without an outcome (what poison detection reads).
pub async fn rescue_keeps_the_lost_delivery_counted(queue: &dyn Queue) {
    let name = q("rescue");
    let id = queue.enqueue_at(NewJob::new(&name, "x"), T0).await.unwrap();
    claim_one(queue, &name, T0).await;
    let later = T0 + LEASE;
    assert_eq!(queue.rescue(later, 100).await.unwrap(), 1);
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Available);
    assert_eq!(rec.state.deliveries, 1);
    let again = claim_one(queue, &name, later).await;
    assert_eq!(again.state.deliveries, 2);
    assert_eq!(again.state.failures, 0);
    assert_eq!(again.state.unreported(), 1);
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.history[0].result, RunResult::NoOutcome);
    assert_eq!(rec.history[0].ended_at, None);
}

/// A dead-lettered job keeps its payload, reason, time and every
/// delivery's error and time; depth counts it.
pub async fn dead_letters_keep_payload_reason_and_history(queue: &dyn Queue) {
    let name = q("dead");
    let id = queue
        .enqueue_at(NewJob::new(&name, r#"{"invoice":7}"#), T0)
        .await
        .unwrap();
    let first = claim_one(queue, &name, T0).await;
    let mut st = first.state;
    st.failures = 1;
    queue
        .settle(
            &first.lease,
            Settlement::Retry {
                state: st,
                run_at: T0 + 10 * S,
                report: failed("timeout talking to billing"),
            },
            T0 + S,
        )
        .await
        .unwrap();
    let second = claim_one(queue, &name, T0 + 10 * S).await;
    let mut st = second.state;
    st.failures = 2;
    queue
        .settle(
            &second.lease,
            Settlement::DeadLetter {
                state: st,
                reason: DeadLetterReason::Exhausted,
                report: failed("billing answered 503"),
            },
            T0 + 11 * S,
        )
        .await
        .unwrap();
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Dead);
    assert_eq!(rec.reason, Some(DeadLetterReason::Exhausted));
    assert_eq!(rec.dead_at, Some(T0 + 11 * S));
    assert_eq!(rec.payload, br#"{"invoice":7}"#);
    assert_eq!(rec.state.failures, 2);
    let errors: Vec<_> = rec
        .history
        .iter()
        .map(|h| (h.delivery, h.claimed_at, h.ended_at, h.error.as_deref()))
        .collect();
    assert_eq!(
        errors,
        [
            (1, T0, Some(T0 + S), Some("timeout talking to billing")),
            (
                2,
                T0 + 10 * S,
                Some(T0 + 11 * S),
                Some("billing answered 503")
            ),
        ]
    );
    assert_eq!(queue.dead_letter_depth(Some(&name)).await.unwrap(), 1);
    assert!(queue.dead_letter_depth(None).await.unwrap() >= 1);
    assert!(claim(queue, &name, T0 + 3600 * S, 10).await.is_empty());
    assert_eq!(queue.rescue(T0 + 3600 * S, 100).await.unwrap(), 0);
}

/// Listing filters by queue, reason, error text (any delivery's,
/// case-insensitive) and age, and pages by id.
pub async fn dead_letters_filter_by_queue_reason_error_and_age(queue: &dyn Queue) {
    let (a, b) = (q("dlq-a"), q("dlq-b"));
    let x1 = dead_job(
        queue,
        &a,
        "1",
        DeadLetterReason::Exhausted,
        "HTTP 503 from partner",
        T0,
    )
    .await;
    let x2 = dead_job(
        queue,
        &a,
        "2",
        DeadLetterReason::Permanent,
        "invoice not found",
        T0 + 100 * S,
    )
    .await;
    let x3 = dead_job(
        queue,
        &b,
        "3",
        DeadLetterReason::Exhausted,
        "http 503 again",
        T0 + 200 * S,
    )
    .await;
    let ids = |v: Vec<crate::JobRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = DeadLetterFilter::default();
    assert_eq!(
        ids(dlq::list(queue, &all.clone().queue(&a), 100).await.unwrap()),
        [x1, x2]
    );
    assert_eq!(
        ids(
            dlq::list(queue, &all.clone().reason(DeadLetterReason::Exhausted), 100)
                .await
                .unwrap()
        ),
        [x1, x3]
    );
    assert_eq!(
        ids(
            dlq::list(queue, &all.clone().error_contains("HTTP 503"), 100)
                .await
                .unwrap()
        ),
        [x1, x3]
    );
    let now = T0 + 300 * S;
    assert_eq!(
        ids(dlq::list(queue, &all.clone().older_than(150 * S, now), 100)
            .await
            .unwrap()),
        [x1, x2]
    );
    assert_eq!(
        ids(dlq::list(queue, &all.clone().newer_than(150 * S, now), 100)
            .await
            .unwrap()),
        [x3]
    );
    let page = queue.dead_letters(&all, Some(x1), 1).await.unwrap();
    assert_eq!(ids(page), [x2]);
    assert_eq!(ids(dlq::list(queue, &all, 2).await.unwrap()), [x1, x2]);
}

/// Redrive moves a dead job back, due at once, with fresh counts, backoff
/// and age, its history kept and its fence not reused; a job no longer dead
/// is not moved twice.
pub async fn redrive_moves_back_with_a_fresh_budget(queue: &dyn Queue) {
    let name = q("redrive");
    let id = dead_job(queue, &name, "x", DeadLetterReason::Poison, "crashed", T0).await;
    let now = T0 + 86_400 * S;
    assert_eq!(queue.redrive(&[id], now).await.unwrap(), 1);
    assert_eq!(queue.redrive(&[id], now).await.unwrap(), 0);
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Available);
    assert_eq!(rec.reason, None);
    assert_eq!(rec.redrives, 1);
    assert_eq!(rec.state, crate::DeliveryState::new(now));
    assert_eq!(rec.history.len(), 1);
    let job = claim_one(queue, &name, now).await;
    assert_eq!(job.state.deliveries, 1);
    assert_eq!(job.lease.token, 2);
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.history[1].redrive, 1);
    assert_eq!(rec.history[1].delivery, 1);
}

/// [`dlq::redrive`] paces itself on the queue's clock: 30 jobs at 10 a
/// second take about 3 s of that clock, and all of them move.
pub async fn redrive_is_rate_limited(queue: &dyn Queue) {
    let name = q("pace");
    for i in 0..30 {
        dead_job(
            queue,
            &name,
            &i.to_string(),
            DeadLetterReason::Exhausted,
            "e",
            T0,
        )
        .await;
    }
    let clock = queue.clock().clone();
    let started = clock.now();
    let moved = dlq::redrive(
        queue,
        &DeadLetterFilter::default().queue(&name),
        RedriveOptions {
            per_second: 10,
            limit: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(moved, 30);
    let took = clock.now() - started;
    assert!(took >= Duration::from_millis(2900), "took {took:?}");
    assert_eq!(queue.dead_letter_depth(Some(&name)).await.unwrap(), 0);
}

/// Purge deletes dead jobs only.
pub async fn purge_deletes_only_dead_jobs(queue: &dyn Queue) {
    let name = q("purge");
    let dead = dead_job(queue, &name, "x", DeadLetterReason::Expired, "old", T0).await;
    let live = queue
        .enqueue_at(NewJob::new(&name, "y").delay(86_400 * S), T0)
        .await
        .unwrap();
    assert_eq!(queue.purge(&[dead, live]).await.unwrap(), 1);
    assert!(queue.job(dead).await.unwrap().is_none());
    assert!(queue.job(live).await.unwrap().is_some());
    let older = dead_job(queue, &name, "z", DeadLetterReason::Expired, "old", T0).await;
    let newer = dead_job(
        queue,
        &name,
        "w",
        DeadLetterReason::Expired,
        "new",
        T0 + 3600 * S,
    )
    .await;
    let purged = dlq::purge(
        queue,
        &DeadLetterFilter::default()
            .queue(&name)
            .older_than(1800 * S, T0 + 3600 * S),
    )
    .await
    .unwrap();
    assert_eq!(purged, 1);
    assert!(queue.job(older).await.unwrap().is_none());
    assert!(queue.job(newer).await.unwrap().is_some());
}

/// Eight claimers racing over 300 jobs: every job is handed out exactly
/// once.
pub async fn concurrent_claims_never_share_a_job(queue: &dyn Queue) {
    let name = q("race");
    let mut ids = HashSet::new();
    for i in 0..300 {
        ids.insert(
            queue
                .enqueue_at(NewJob::new(&name, i.to_string()), T0)
                .await
                .unwrap(),
        );
    }
    let claimers = (0..8).map(|_| async {
        let mut mine = Vec::new();
        loop {
            let got = claim(queue, &name, T0, 7).await;
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|j| j.id()));
        }
    });
    let all: Vec<_> = futures_util::future::join_all(claimers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 300, "a job was claimed twice or lost");
    assert_eq!(unique, ids);
}

/// Counts tell due, scheduled, running and dead apart.
pub async fn counts_by_place(queue: &dyn Queue) {
    let name = q("counts");
    dead_job(queue, &name, "dead", DeadLetterReason::Permanent, "bad", T0).await;
    queue
        .enqueue_at(NewJob::new(&name, "run"), T0)
        .await
        .unwrap();
    claim_one(queue, &name, T0).await;
    queue
        .enqueue_at(NewJob::new(&name, "due"), T0)
        .await
        .unwrap();
    queue
        .enqueue_at(NewJob::new(&name, "later").delay(60 * S), T0)
        .await
        .unwrap();
    let c = queue.counts(&name, T0).await.unwrap();
    assert_eq!((c.due, c.scheduled, c.running, c.dead), (1, 1, 1, 1));
    assert_eq!(c.pending(), 3);
}

/// Bad queue names are refused with a message naming the problem.
pub async fn bad_queue_names_are_refused(queue: &dyn Queue) {
    let long = "x".repeat(65);
    for bad in ["", "has space", "ünïcode", long.as_str()] {
        match queue.enqueue_at(NewJob::new(bad, "x"), T0).await {
            Err(QueueError::Invalid {
                field: "queue",
                reason,
            }) => {
                assert!(reason.contains("queue name"), "{reason}");
            }
            other => panic!("{bad:?}: expected Invalid, got {other:?}"),
        }
    }
}
