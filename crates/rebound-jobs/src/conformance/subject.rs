//! The queue under test: how time passes for it, and what it does not
//! guarantee.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::job::ClaimedJob;
use crate::queue::{ClaimRequest, Queue};
use crate::time::{wall, Timestamp};

/// A check's lease, in [units](Subject::unit) of its timeline.
pub const LEASE_UNITS: u32 = 30;

/// How time passes for the queue under test.
#[derive(Debug, Clone)]
pub enum Pace {
    /// The queue keeps every time it is given (the embedded and PostgreSQL
    /// queues): checks move this manual clock (the queue's) and pass the
    /// times they moved it to. A unit of a check's timeline is one second,
    /// and nothing is waited on.
    Manual(rebound::ManualClock),
    /// A broker keeps time on its own, real clock (leases, delays,
    /// redeliveries): checks read the real clock and wait real time,
    /// `unit` standing for a second of their timeline. Every time a check
    /// passes is the real time it reached, never an invented one (a broker
    /// would not honour it). What the broker hands out is polled for up to
    /// `resolution` past the time it is due: deliveries reach a consumer
    /// asynchronously and delays run on the broker's timers.
    Broker {
        /// Real time per unit of a check's timeline. The check's lease is
        /// [`LEASE_UNITS`] of them.
        unit: Duration,
        /// How late past its time a delivery may arrive.
        resolution: Duration,
    },
}

/// A rule of the suite a backend cannot keep as stated. A check that
/// meets one asserts the weaker rule the backend does keep, and prints
/// which (`conformance: <backend>: <check>: <rule>`): it never passes
/// silently. Each adapter's docs list the limits it declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// One adapter serves one queue (a stream, a broker queue): jobs named
    /// for any other queue are refused with an error naming it, and every
    /// dead letter it lists belongs to its queue.
    OneQueue,
    /// [`Queue::job`] finds running (in this process) and dead-lettered
    /// jobs, not every job waiting in the broker.
    WaitingNotLookedUp,
    /// A job's enqueue time (the start of its age) is the broker's publish
    /// time, not the time passed to `enqueue_at`: equal within the clocks'
    /// agreement.
    BrokerEnqueueTime,
    /// Counts cannot tell a job scheduled for later from a due or running
    /// one; their sum (pending) and the dead count are exact.
    ScheduledNotCounted,
    /// A delivery the broker made that never reported (a crash, a lost
    /// lease) is in the history without a claim time or worker: the broker
    /// does not record them.
    UntimedLostDeliveries,
}

impl Limit {
    /// The weaker rule, as the suite prints it.
    pub fn rule(self) -> &'static str {
        match self {
            Limit::OneQueue => "one queue per adapter: other queue names are refused",
            Limit::WaitingNotLookedUp => {
                "Queue::job finds running and dead jobs only, not jobs waiting in the broker"
            }
            Limit::BrokerEnqueueTime => "the enqueue time is the broker's publish time",
            Limit::ScheduledNotCounted => {
                "counts do not tell scheduled jobs apart; pending and dead are exact"
            }
            Limit::UntimedLostDeliveries => {
                "deliveries that never reported have no claim time or worker"
            }
        }
    }
}

/// A queue under test: the queue, how time passes for it, the queue name
/// its checks use and its [limits](Limit).
pub struct Subject {
    queue: Arc<dyn Queue>,
    pace: Pace,
    name: Option<String>,
    limits: Vec<Limit>,
    start: Timestamp,
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("queue", &self.queue)
            .field("pace", &self.pace)
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Subject {
    /// A queue that keeps the times it is given, on a manual clock (its
    /// [`Queue::clock`]), serving any queue name.
    ///
    /// # Panics
    ///
    /// If the queue's clock is not manual: the suite moves it.
    pub fn manual(queue: impl Queue) -> Self {
        let clock = queue.clock().clone();
        let Some(manual) = clock.as_manual() else {
            panic!(
                "the conformance suite moves the {} queue's clock, which is not manual: \
                 give the queue the clock of rebound::Clock::manual(), or describe a broker \
                 with Subject::broker",
                queue.backend()
            );
        };
        Subject {
            start: wall(&clock),
            pace: Pace::Manual(manual.clone()),
            queue: Arc::new(queue),
            name: None,
            limits: Vec::new(),
            _keep: None,
        }
    }

    /// A broker adapter serving the one queue `name`, on real time: a unit
    /// of a check's timeline is `unit`, and deliveries may arrive up to
    /// `resolution` late (see [`Pace::Broker`]). Its lease (a JetStream
    /// consumer's ack wait, say) must be [`LEASE_UNITS`] × `unit`.
    pub fn broker(queue: impl Queue, name: &str, unit: Duration, resolution: Duration) -> Self {
        Subject {
            start: wall(queue.clock()),
            queue: Arc::new(queue),
            pace: Pace::Broker { unit, resolution },
            name: Some(name.to_owned()),
            limits: Vec::new(),
            _keep: None,
        }
    }

    /// Declares a rule this backend does not keep as stated.
    pub fn limit(mut self, limit: Limit) -> Self {
        self.limits.push(limit);
        self
    }

    /// Keeps `guard` (a temporary directory, a clean-up of broker
    /// resources) alive as long as the subject.
    pub fn keep(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep = Some(Box::new(guard));
        self
    }

    /// The queue.
    pub fn queue(&self) -> &dyn Queue {
        &*self.queue
    }

    /// How time passes for it.
    pub fn pace(&self) -> &Pace {
        &self.pace
    }

    /// The limits declared.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// Real or manual time per unit of a check's timeline.
    pub fn unit(&self) -> Duration {
        match &self.pace {
            Pace::Manual(_) => Duration::from_secs(1),
            Pace::Broker { unit, .. } => *unit,
        }
    }

    /// `n` units.
    pub fn units(&self, n: u32) -> Duration {
        self.unit() * n
    }

    /// The lease every check takes: [`LEASE_UNITS`] units.
    pub fn lease(&self) -> Duration {
        self.units(LEASE_UNITS)
    }

    /// The queue name check `check` uses: its own, or the broker's one.
    pub fn name(&self, check: &str) -> String {
        self.name.clone().unwrap_or_else(|| check.to_owned())
    }

    /// The time `n` units into the check's timeline (not waited for).
    pub fn time(&self, n: u32) -> Timestamp {
        self.start + self.units(n)
    }

    /// Lets time pass until `n` units into the check's timeline; returns
    /// the time to pass the queue.
    pub async fn at(&self, n: u32) -> Timestamp {
        self.until(self.time(n)).await
    }

    /// Lets time pass until `t`: moves the manual clock there (and returns
    /// `t`), or waits for the real clock to reach it (and returns the real
    /// time then, at or after `t`).
    pub async fn until(&self, t: Timestamp) -> Timestamp {
        match &self.pace {
            Pace::Manual(m) => {
                let now = wall(self.queue.clock());
                if t > now {
                    m.advance(t.saturating_since(now));
                }
                t
            }
            Pace::Broker { .. } => loop {
                let now = wall(self.queue.clock());
                if now >= t {
                    return now;
                }
                tokio::time::sleep(t.saturating_since(now)).await;
            },
        }
    }

    /// Whether this backend declared `limit`; if so, says so for `check`.
    pub(crate) fn limited(&self, limit: Limit, check: &str) -> bool {
        let on = self.limits.contains(&limit);
        if on {
            println!(
                "conformance: {}: {check}: {}",
                self.queue.backend(),
                limit.rule()
            );
        }
        on
    }

    /// One claim of up to `max` jobs of `name` at `now`.
    pub(crate) async fn claim(&self, name: &str, now: Timestamp, max: usize) -> Vec<ClaimedJob> {
        self.queue
            .claim(ClaimRequest {
                queue: name,
                now,
                lease: self.lease(),
                max,
                worker: "conformance",
            })
            .await
            .expect("claim")
    }

    /// Claims the `n` jobs of `name` due by `due` and asserts there were
    /// `n`: one claim on a manual clock; on a broker, claims until `n`
    /// arrived or `resolution` passed.
    pub(crate) async fn claim_exactly(
        &self,
        name: &str,
        due: Timestamp,
        n: usize,
    ) -> Vec<ClaimedJob> {
        let now = self.until(due).await;
        let got = match &self.pace {
            Pace::Manual(_) => self.claim(name, now, n + 10).await,
            Pace::Broker { resolution, .. } => {
                let deadline = std::time::Instant::now() + *resolution;
                let mut got = self.claim(name, now, n + 10).await;
                while got.len() < n && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let now = wall(self.queue.clock());
                    got.extend(self.claim(name, now, n + 10 - got.len()).await);
                }
                got
            }
        };
        assert_eq!(
            got.len(),
            n,
            "expected {n} due jobs in {name} at {due}, got {:?}",
            got.iter().map(|j| j.id()).collect::<Vec<_>>()
        );
        got
    }

    /// Claims the one job of `name` due by `due`.
    pub(crate) async fn claim_one(&self, name: &str, due: Timestamp) -> ClaimedJob {
        self.claim_exactly(name, due, 1).await.remove(0)
    }

    /// Asserts that nothing of `name` is due at `at` (waited for).
    pub(crate) async fn assert_none_due(&self, name: &str, at: Timestamp) {
        let now = self.until(at).await;
        let got = self.claim(name, now, 10).await;
        assert!(
            got.is_empty(),
            "expected nothing due in {name} at {now}, got {:?}",
            got.iter().map(|j| j.id()).collect::<Vec<_>>()
        );
    }
}
