//! Checks of dead letters: what they keep, listing, redrive and purge.

use std::time::Duration;

use super::{dead_job, failed, Limit, Subject};
use crate::dlq::{self, DeadLetterFilter, RedriveOptions};
use crate::job::{JobStatus, NewJob, Settlement};
use crate::policy::DeadLetterReason;

/// A dead-lettered job keeps its payload, reason, time and every
/// delivery's error and time; depth counts it; it is not delivered again.
pub async fn dead_letters_keep_payload_reason_and_history(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("dead"));
    let t0 = s.at(0).await;
    let id = queue
        .enqueue_at(NewJob::new(&name, r#"{"invoice":7}"#), t0)
        .await
        .unwrap();
    let first = s.claim_one(&name, t0).await;
    let c1 = first.lease.expires_at.saturating_sub(s.lease());
    let mut st = first.state;
    st.failures = 1;
    let t1 = s.at(1).await;
    queue
        .settle(
            &first.lease,
            Settlement::Retry {
                state: st,
                run_at: s.time(10),
                report: failed("timeout talking to billing"),
            },
            t1,
        )
        .await
        .unwrap();
    let second = s.claim_one(&name, s.time(10)).await;
    let c2 = second.lease.expires_at.saturating_sub(s.lease());
    let mut st = second.state;
    st.failures = 2;
    let t11 = s.at(11).await;
    queue
        .settle(
            &second.lease,
            Settlement::DeadLetter {
                state: st,
                reason: DeadLetterReason::Exhausted,
                report: failed("billing answered 503"),
            },
            t11,
        )
        .await
        .unwrap();
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Dead);
    assert_eq!(rec.reason, Some(DeadLetterReason::Exhausted));
    assert_eq!(rec.dead_at, Some(t11));
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
            (1, Some(c1), Some(t1), Some("timeout talking to billing")),
            (2, Some(c2), Some(t11), Some("billing answered 503")),
        ]
    );
    assert_eq!(queue.dead_letter_depth(Some(&name)).await.unwrap(), 1);
    assert!(queue.dead_letter_depth(None).await.unwrap() >= 1);
    let later = t11 + s.lease() + s.units(2);
    s.assert_none_due(&name, later).await;
    assert_eq!(queue.rescue(s.until(later).await, 100).await.unwrap(), 0);
}

/// Listing filters by queue, reason, error text (any delivery's,
/// case-insensitive) and age, and pages by id.
pub async fn dead_letters_filter_by_queue_reason_error_and_age(s: &Subject) {
    let queue = s.queue();
    let one_queue = s.limited(
        Limit::OneQueue,
        "dead_letters_filter_by_queue_reason_error_and_age",
    );
    let (a, b) = (s.name("dlq-a"), s.name("dlq-b"));
    let ex = DeadLetterReason::Exhausted;
    let (x1, _) = dead_job(s, &a, "1", ex, "HTTP 503 from partner", s.time(0)).await;
    let perm = DeadLetterReason::Permanent;
    let (x2, _) = dead_job(s, &a, "2", perm, "invoice not found", s.time(10)).await;
    let (x3, _) = dead_job(s, &b, "3", ex, "http 503 again", s.time(20)).await;
    let ids = |v: Vec<crate::JobRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = DeadLetterFilter::default();
    let list = |f: DeadLetterFilter| async move { ids(dlq::list(queue, &f, 100).await.unwrap()) };
    if one_queue {
        // All three are the one queue's; no other queue has any.
        assert_eq!(list(all.clone().queue(&a)).await, [x1, x2, x3]);
        assert!(list(all.clone().queue("elsewhere")).await.is_empty());
    } else {
        assert_eq!(list(all.clone().queue(&a)).await, [x1, x2]);
    }
    assert_eq!(list(all.clone().reason(ex)).await, [x1, x3]);
    assert_eq!(list(all.clone().error_contains("HTTP 503")).await, [x1, x3]);
    // Ages at a time the timeline has not reached: the filter's own.
    let now = s.time(30);
    let span = s.units(15);
    assert_eq!(list(all.clone().older_than(span, now)).await, [x1, x2]);
    assert_eq!(list(all.clone().newer_than(span, now)).await, [x3]);
    let page = queue.dead_letters(&all, Some(x1), 1).await.unwrap();
    assert_eq!(ids(page), [x2]);
    assert_eq!(ids(dlq::list(queue, &all, 2).await.unwrap()), [x1, x2]);
}

/// Redrive moves a dead job back, due at once, with fresh counts, backoff
/// and age, its history kept and its fence not reused; a job no longer dead
/// is not moved twice.
pub async fn redrive_moves_back_with_a_fresh_budget(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("redrive"));
    let check = "redrive_moves_back_with_a_fresh_budget";
    let poison = DeadLetterReason::Poison;
    let (id, _) = dead_job(s, &name, "x", poison, "crashed", s.time(0)).await;
    let now = s.at(5).await;
    assert_eq!(queue.redrive(&[id], now).await.unwrap(), 1);
    assert_eq!(queue.redrive(&[id], now).await.unwrap(), 0);
    if !s.limited(Limit::WaitingNotLookedUp, check) {
        let rec = queue.job(id).await.unwrap().unwrap();
        assert_eq!(rec.status, JobStatus::Available);
        assert_eq!(rec.reason, None);
        assert_eq!(rec.redrives, 1);
        assert_eq!(rec.state, crate::DeliveryState::new(now));
        assert_eq!(rec.history.len(), 1);
    }
    let job = s.claim_one(&name, now).await;
    assert_eq!(job.id(), id);
    let mut fresh = crate::DeliveryState::new(now);
    fresh.deliveries = 1;
    assert_eq!(job.state, fresh);
    assert_eq!(job.lease.token, 2);
    let rec = queue.job(id).await.unwrap().unwrap();
    assert_eq!(rec.reason, None);
    assert_eq!(rec.redrives, 1);
    assert_eq!(rec.history.len(), 2);
    assert_eq!(rec.history[1].redrive, 1);
    assert_eq!(rec.history[1].delivery, 1);
}

/// [`dlq::redrive`] paces itself on the queue's clock: 10 jobs at 10 a
/// second take about 1 s of that clock, and all of them move.
pub async fn redrive_is_rate_limited(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("pace"));
    for i in 0..10 {
        let e = DeadLetterReason::Exhausted;
        dead_job(s, &name, &i.to_string(), e, "e", s.time(0)).await;
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
    assert_eq!(moved, 10);
    let took = clock.now() - started;
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert_eq!(queue.dead_letter_depth(Some(&name)).await.unwrap(), 0);
}

/// Purge deletes dead jobs only.
pub async fn purge_deletes_only_dead_jobs(s: &Subject) {
    let (queue, name) = (s.queue(), s.name("purge"));
    let expired = DeadLetterReason::Expired;
    let (dead, _) = dead_job(s, &name, "x", expired, "old", s.time(0)).await;
    let live = queue
        .enqueue_at(
            NewJob::new(&name, "y").delay(s.units(86_400)),
            s.until(s.time(0)).await,
        )
        .await
        .unwrap();
    assert_eq!(queue.purge(&[dead, live]).await.unwrap(), 1);
    assert!(queue.job(dead).await.unwrap().is_none());
    if !s.limited(Limit::WaitingNotLookedUp, "purge_deletes_only_dead_jobs") {
        assert!(queue.job(live).await.unwrap().is_some());
    }
    let (older, _) = dead_job(s, &name, "z", expired, "old", s.time(0)).await;
    let (newer, _) = dead_job(s, &name, "w", expired, "new", s.time(10)).await;
    let purged = dlq::purge(
        queue,
        &DeadLetterFilter::default()
            .queue(&name)
            .older_than(s.units(5), s.time(10)),
    )
    .await
    .unwrap();
    assert_eq!(purged, 1);
    assert!(queue.job(older).await.unwrap().is_none());
    assert!(queue.job(newer).await.unwrap().is_some());
}
