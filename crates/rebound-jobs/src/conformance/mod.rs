//! The queue conformance suite: the rules of [`queue`](crate::queue),
//! checked against any [`Queue`](crate::Queue). Every backend runs the same checks — the
//! embedded and PostgreSQL queues on a manual clock, the Redis, NATS and
//! RabbitMQ adapters on real time:
//!
//! ```ignore
//! // tests/conformance.rs (feature `conformance`):
//! // a store, on a manual clock:
//! async fn fresh() -> Option<MyStoreQueue> { /* a new, empty queue */ }
//! rebound_jobs::conformance_suite!(fresh());
//!
//! // a broker, on real time, with what it cannot guarantee:
//! async fn broker() -> Option<Subject> {
//!     let q = MyBrokerQueue::connect(URL, &name).await.ok()?;
//!     Some(Subject::broker(q, &name, UNIT, RESOLUTION)
//!         .limit(Limit::OneQueue)
//!         .keep(cleanup_guard))
//! }
//! rebound_jobs::conformance_suite!(subject: broker());
//! ```
//!
//! Each check gets a fresh [`Subject`] from the expression (which may
//! return `None` to skip, e.g. when a service is not configured) and
//! follows a timeline in units ([`Subject::unit`]): a second of a manual
//! clock the check moves, or a short real delay at the broker's
//! resolution ([`Pace`]). Broker checks take a few seconds each.
//!
//! **Limits.** Where a broker cannot keep a rule as stated (it serves one
//! queue; it cannot look up a job waiting in it; it stamps the enqueue time
//! itself; it cannot count scheduled jobs apart; it did not record a
//! delivery that never reported), its subject declares a [`Limit`], and
//! the checks that meet it assert the weaker rule and print which. A rule
//! no backend could keep with a real clock — due order over invented
//! timestamps — is not asked of anyone: every check passes times its
//! timeline reached.

mod claims;
mod dead;
mod subject;

pub use claims::*;
pub use dead::*;
pub use subject::{Limit, Pace, Subject, LEASE_UNITS};

use crate::job::{JobId, NewJob, RunReport, RunResult, Settlement};
use crate::policy::DeadLetterReason;
use crate::queue::QueueError;
use crate::time::Timestamp;

/// Generates one `#[tokio::test]` per check, each on a fresh subject:
///
/// * `conformance_suite!(make)`: `make` is an expression of type
///   `impl Future<Output = Option<impl Queue>>` whose queue runs on a
///   manual clock ([`Subject::manual`]);
/// * `conformance_suite!(subject: make)`: `make` gives an
///   `Option<`[`Subject`]`>` (a broker, with its pace and limits).
///
/// `None` skips the check.
#[macro_export]
macro_rules! conformance_suite {
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(subject) = $make.await else { return };
                $crate::conformance::$name(&subject).await;
            }
        )*
    };
    (subject: $make:expr) => {
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
    ($make:expr) => {
        $crate::conformance_suite!(subject: async {
            $make.await.map($crate::conformance::Subject::manual)
        });
    };
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

/// Dead-letters a fresh job of `name` after one failed run with `error`,
/// at `at` (waited for); returns its id and the time it was dead-lettered.
async fn dead_job(
    s: &Subject,
    name: &str,
    payload: &str,
    reason: DeadLetterReason,
    error: &str,
    at: Timestamp,
) -> (JobId, Timestamp) {
    let at = s.until(at).await;
    let id = s
        .queue()
        .enqueue_at(NewJob::new(name, payload), at)
        .await
        .unwrap();
    let job = s.claim_one(name, at).await;
    assert_eq!(job.id(), id);
    let mut state = job.state;
    state.failures += 1;
    let dead_at = s.until(at).await;
    s.queue()
        .settle(
            &job.lease,
            Settlement::DeadLetter {
                state,
                reason,
                report: failed(error),
            },
            dead_at,
        )
        .await
        .unwrap();
    (id, dead_at)
}
