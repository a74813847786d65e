//! Checks of claiming, settling, leases and counts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{assert_lease_lost, dead_job, failed, Limit, Pace, Subject};
use crate::job::{JobStatus, NewJob, RunReport, RunResult, Settlement};
use crate::policy::DeadLetterReason;
use crate::queue::QueueError;
use crate::time::wall;

/// A claim counts the delivery, takes fence 1, leases the job until
/// `now + lease` and opens a delivery record; the job cannot be claimed
/// again while leased.
pub async fn claim_counts_the_delivery_and_leases(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("claim"));
    let t0 = s.at(0).await;
    let id = queue
        .enqueue_at(NewJob::new(&name, "p1"), t0)
        .await
        .unwrap();
    let enqueued = wall(queue.clock());
    let job = s.claim_one(&name, t0).await;
    let claimed_at = job.lease.expires_at.saturating_sub(s.lease());
    assert_eq!(job.id(), id);
    assert_eq!(job.payload, b"p1");
    assert_eq!(job.queue, name);
    assert_eq!(job.state.deliveries, 1);
    assert_eq!(job.state.failures, 0);
    if s.limited(
        Limit::BrokerEnqueueTime,
        "claim_counts_the_delivery_and_leases",
    ) {
        let slack = Duration::from_secs(1);
        let at = job.state.enqueued_at;
        assert!(
            at >= t0.saturating_sub(slack) && at <= enqueued + slack,
            "enqueued at {at}, published between {t0} and {enqueued}"
        );
    } else {
        assert_eq!(job.state.enqueued_at, t0);
    }
    assert_eq!(job.lease.token, 1);
    // Leased from the claim's time (t0 on a manual clock).
    assert!(claimed_at >= t0, "lease from {claimed_at}, before {t0}");
    if let Pace::Manual(_) = s.pace() {
        assert_eq!(job.lease.expires_at, t0 + s.lease());
    }
    assert!(job.last_error.is_none());
    s.assert_none_due(&name, s.time(1)).await;
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Running);
    assert_eq!(rec.history.len(), 1);
    assert_eq!(rec.history[0].delivery, 1);
    assert_eq!(rec.history[0].claimed_at, Some(claimed_at));
    assert_eq!(rec.history[0].worker, "conformance");
    assert_eq!(rec.history[0].result, RunResult::NoOutcome);
}

/// A batch enqueue returns the ids in order; the jobs are claimed in that
/// order.
pub async fn enqueue_many_keeps_the_order(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("many"));
    let t0 = s.at(0).await;
    let jobs = (0..50).map(|i| NewJob::new(&name, i.to_string())).collect();
    let ids = queue.enqueue_many_at(jobs, t0).await.unwrap();
    assert_eq!(ids.len(), 50);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let claimed = s.claim_exactly(&name, t0, 50).await;
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
/// never handed out (a one-queue adapter refuses them).
pub async fn claims_only_due_jobs_in_due_order(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("order"));
    let u = s.unit();
    let t0 = s.at(0).await;
    let late = queue
        .enqueue_at(NewJob::new(&name, "late").delay(20 * u), t0)
        .await
        .unwrap();
    let soon = queue
        .enqueue_at(NewJob::new(&name, "soon").delay(10 * u), t0)
        .await
        .unwrap();
    let now_a = queue.enqueue_at(NewJob::new(&name, "a"), t0).await.unwrap();
    let now_b = queue.enqueue_at(NewJob::new(&name, "b"), t0).await.unwrap();
    let other = queue.enqueue_at(NewJob::new("other", "x"), t0).await;
    if s.limited(Limit::OneQueue, "claims_only_due_jobs_in_due_order") {
        match other {
            Err(QueueError::Invalid {
                field: "queue",
                reason,
            }) => {
                assert!(reason.contains("\"other\""), "{reason}");
            }
            r => panic!("expected the queue name refused, got {r:?}"),
        }
    } else {
        other.unwrap();
    }
    let ids = |v: Vec<crate::ClaimedJob>| v.iter().map(|j| j.id()).collect::<Vec<_>>();
    assert_eq!(ids(s.claim_exactly(&name, t0, 2).await), [now_a, now_b]);
    s.assert_none_due(&name, s.time(8)).await;
    assert_eq!(
        ids(s.claim_exactly(&name, s.time(20), 2).await),
        [soon, late]
    );
    // A job scheduled ahead counts its age from when it is due.
    let rec = queue.job(late).await.unwrap().unwrap();
    assert_eq!(rec.state.enqueued_at, t0 + 20 * u);
}

/// Ack deletes the job; a second ack under the same lease is refused; the
/// job is not delivered again, even after its lease would have ended.
pub async fn ack_deletes_the_job(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("ack"));
    let t0 = s.at(0).await;
    let id = queue.enqueue_at(NewJob::new(&name, "x"), t0).await.unwrap();
    let job = s.claim_one(&name, t0).await;
    let t1 = s.at(1).await;
    queue.settle(&job.lease, Settlement::Ack, t1).await.unwrap();
    assert!(queue.job(id).await.unwrap().is_none());
    assert_lease_lost(queue.settle(&job.lease, Settlement::Ack, t1).await);
    let later = s.time(1) + s.lease() + s.units(2);
    s.assert_none_due(&name, later).await;
    assert_eq!(queue.rescue(s.until(later).await, 100).await.unwrap(), 0);
    s.assert_none_due(&name, later).await;
}

/// A retry keeps the state the policy computed (failures, backoff) and is
/// not due before its time; the next claim counts a second delivery and
/// sees the last error.
pub async fn retry_keeps_the_state_until_due(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("retry"));
    let t0 = s.at(0).await;
    let id = queue.enqueue_at(NewJob::new(&name, "x"), t0).await.unwrap();
    let job = s.claim_one(&name, t0).await;
    let mut state = job.state;
    state.failures = 1;
    state.backoff_retries = 1;
    state.backoff_previous_nanos = Some(1_234_567_891);
    let t1 = s.at(1).await;
    queue
        .settle(
            &job.lease,
            Settlement::Retry {
                state,
                run_at: s.time(20),
                report: failed("partner API answered 503"),
            },
            t1,
        )
        .await
        .unwrap();
    s.assert_none_due(&name, s.time(18)).await;
    let again = s.claim_one(&name, s.time(20)).await;
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
    assert_eq!(rec.history[0].ended_at, Some(t1));
    assert_eq!(
        rec.history[0].error.as_deref(),
        Some("partner API answered 503")
    );
    assert_eq!(rec.history[1].result, RunResult::NoOutcome);
}

/// A handed-back job is due at once with its interrupt counted.
pub async fn hand_back_is_due_at_once(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("handback"));
    let t0 = s.at(0).await;
    queue.enqueue_at(NewJob::new(&name, "x"), t0).await.unwrap();
    let job = s.claim_one(&name, t0).await;
    let mut state = job.state;
    state.interrupts += 1;
    let t2 = s.at(2).await;
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
            t2,
        )
        .await
        .unwrap();
    let again = s.claim_one(&name, t2).await;
    assert_eq!(again.state.deliveries, 2);
    assert_eq!(again.state.interrupts, 1);
    assert_eq!(again.state.attempt(), 1);
}

/// Once a lease has expired and the job was claimed again, the old holder
/// can neither renew nor settle; the new holder can.
pub async fn stale_leases_are_fenced(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("fence"));
    let t0 = s.at(0).await;
    let id = queue.enqueue_at(NewJob::new(&name, "x"), t0).await.unwrap();
    let old = s.claim_one(&name, t0).await;
    let later = s.until(old.lease.expires_at + s.unit()).await;
    assert!(queue.rescue(later, 100).await.unwrap() >= 1);
    let new = s.claim_one(&name, later).await;
    let later = s.until(later).await;
    assert_eq!(new.id(), id);
    assert!(new.lease.token > old.lease.token);
    assert_lease_lost(queue.renew(&old.lease, later, s.lease()).await);
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
pub async fn renewal_extends_the_lease(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("renew"));
    let t0 = s.at(0).await;
    queue.enqueue_at(NewJob::new(&name, "x"), t0).await.unwrap();
    let job = s.claim_one(&name, t0).await;
    let t20 = s.at(20).await;
    let until = queue.renew(&job.lease, t20, s.lease()).await.unwrap();
    assert_eq!(until, t20 + s.lease());
    let before = s.until(until.saturating_sub(s.units(10))).await;
    assert_eq!(queue.rescue(before, 100).await.unwrap(), 0);
    s.assert_none_due(&name, before).await;
    let after = s.until(until).await;
    assert_eq!(queue.rescue(after, 100).await.unwrap(), 1);
    // The renewed lease was still the same lease.
    let again = s.claim_one(&name, after).await;
    assert_eq!(again.lease.token, job.lease.token + 1);
}

/// A rescued job is due at once, its lost delivery still counted and its
/// record left without an outcome (what poison detection reads).
pub async fn rescue_keeps_the_lost_delivery_counted(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("rescue"));
    let check = "rescue_keeps_the_lost_delivery_counted";
    let t0 = s.at(0).await;
    let id = queue.enqueue_at(NewJob::new(&name, "x"), t0).await.unwrap();
    let first = s.claim_one(&name, t0).await;
    let claimed_at = first.lease.expires_at.saturating_sub(s.lease());
    let later = s.until(first.lease.expires_at).await;
    assert_eq!(queue.rescue(later, 100).await.unwrap(), 1);
    if !s.limited(Limit::WaitingNotLookedUp, check) {
        let rec = queue.job(id).await.unwrap().unwrap();
        assert_eq!(rec.status, JobStatus::Available);
        assert_eq!(rec.state.deliveries, 1);
    }
    let again = s.claim_one(&name, later).await;
    assert_eq!(again.state.deliveries, 2);
    assert_eq!(again.state.failures, 0);
    assert_eq!(again.state.unreported(), 1);
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.history[0].result, RunResult::NoOutcome);
    assert_eq!(rec.history[0].ended_at, None);
    if s.limited(Limit::UntimedLostDeliveries, check) {
        assert_eq!(rec.history[0].claimed_at, None);
        assert_eq!(rec.history[0].worker, "");
    } else {
        assert_eq!(rec.history[0].claimed_at, Some(claimed_at));
        assert_eq!(rec.history[0].worker, "conformance");
    }
}

/// Eight claimers racing over 300 jobs, settling what they claim: every
/// job is handed out exactly once.
pub async fn concurrent_claims_never_share_a_job(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("race"));
    let t0 = s.at(0).await;
    let mut ids = HashSet::new();
    for i in 0..300 {
        ids.insert(
            queue
                .enqueue_at(NewJob::new(&name, i.to_string()), t0)
                .await
                .unwrap(),
        );
    }
    let total = AtomicUsize::new(0);
    let deadline = match s.pace() {
        Pace::Manual(_) => None,
        Pace::Broker { resolution, .. } => {
            Some(std::time::Instant::now() + *resolution + Duration::from_secs(5))
        }
    };
    let claimers = (0..8).map(|_| async {
        let mut mine = Vec::new();
        loop {
            let now = s.until(t0).await;
            let got = s.claim(&name, now, 7).await;
            if got.is_empty() {
                // A store hands out everything due at once; a broker's
                // deliveries arrive over time.
                match deadline {
                    None => return mine,
                    Some(d)
                        if total.load(Ordering::SeqCst) >= 300 || std::time::Instant::now() > d =>
                    {
                        return mine
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            for j in got {
                total.fetch_add(1, Ordering::SeqCst);
                mine.push(j.id());
                queue.settle(&j.lease, Settlement::Ack, now).await.unwrap();
            }
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
pub async fn counts_by_place(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("counts"));
    let t0 = s.at(0).await;
    dead_job(s, &name, "dead", DeadLetterReason::Permanent, "bad", t0).await;
    queue
        .enqueue_at(NewJob::new(&name, "run"), t0)
        .await
        .unwrap();
    s.claim_one(&name, t0).await;
    queue
        .enqueue_at(NewJob::new(&name, "due"), t0)
        .await
        .unwrap();
    queue
        .enqueue_at(NewJob::new(&name, "later").delay(s.units(60)), t0)
        .await
        .unwrap();
    let c = queue.counts(&name, s.until(t0).await).await.unwrap();
    if s.limited(Limit::ScheduledNotCounted, "counts_by_place") {
        assert_eq!(c.dead, 1, "{c:?}");
        assert!(c.running >= 1, "{c:?}");
    } else {
        assert_eq!((c.due, c.scheduled, c.running, c.dead), (1, 1, 1, 1));
    }
    assert_eq!(c.pending(), 3);
}

/// Bad queue names are refused with a message naming the problem.
pub async fn bad_queue_names_are_refused(s: &Subject) {
    let t0 = s.at(0).await;
    let long = "x".repeat(65);
    for bad in ["", "has space", "ünïcode", long.as_str()] {
        match s.queue().enqueue_at(NewJob::new(bad, "x"), t0).await {
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
