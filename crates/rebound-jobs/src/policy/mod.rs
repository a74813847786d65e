//! The delivery policy: what to do with a job when it is claimed and when a
//! run ends. Sans-IO: it reads a [`DeliveryState`], the time and a random
//! generator, and answers; the worker (or a broker adapter, or the
//! simulator) does the I/O.
//!
//! ```
//! use std::time::Duration;
//! use rebound::Decision;
//! use rebound_jobs::{ClaimAction, DeliveryPolicy, DeliveryState, Disposition, RunEnd, Timestamp};
//!
//! let policy = DeliveryPolicy::default();
//! let t0 = Timestamp::from_millis(1_700_000_000_000);
//! let mut state = DeliveryState::new(t0);
//! let mut rng = fastrand::Rng::with_seed(7);
//!
//! // The queue counted the delivery when it handed the job out.
//! state.deliveries += 1;
//! assert_eq!(policy.on_claim(&state, t0), ClaimAction::Run { attempt: 1 });
//!
//! // The handler failed transiently: retry later, with full jitter.
//! match policy.on_outcome(&mut state, RunEnd::Failed(Decision::Retry), t0, &mut rng) {
//!     Disposition::Retry { at, delay } => {
//!         assert!(delay <= Duration::from_secs(15));
//!         assert_eq!(at, t0 + delay);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(state.failures, 1);
//! ```
//!
//! # On claim
//!
//! In this order, on a state whose `deliveries` already counts this claim:
//!
//! 1. **poison** — at least [`poison_after`](DeliveryPolicyBuilder::poison_after)
//!    earlier deliveries never reported an outcome: the job keeps taking its
//!    worker down. It is dead-lettered *without running again*.
//! 2. **expired** — the job is older than
//!    [`max_age`](DeliveryPolicyBuilder::max_age).
//! 3. **exhausted** — crashed runs pushed the attempt number past
//!    [`max_attempts`](DeliveryPolicyBuilder::max_attempts).
//! 4. otherwise **run**, as attempt `deliveries - interrupts`.
//!
//! # On outcome
//!
//! | run ended | answer |
//! |---|---|
//! | [`RunEnd::Succeeded`] | ack |
//! | [`RunEnd::Interrupted`] (graceful shutdown) | hand back, due now; no attempt used |
//! | failure classified [`Decision::DoNotRetry`] | dead-letter, `permanent` |
//! | transient failure on the last attempt | dead-letter, `exhausted` |
//! | transient failure whose retry could not start before the maximum age | dead-letter, `expired` |
//! | transient failure | retry after the backoff delay, or after the delay the error asked for ([`Decision::RetryAfter`]) if that is longer |
//!
//! A panic counts as a transient failure; a timeout is classified like any
//! other outcome (the default classifier retries it).
//!
//! # Defaults, and why
//!
//! Background work is not a user waiting on a request: an invoice sync can
//! wait for a partner API to come back tomorrow. The defaults spread 25
//! attempts over about a day and a half, and keep a job a week at most.
//!
//! | setting | default | why |
//! |---|---|---|
//! | `max_attempts` | 25 | Sidekiq retries 25 times, River's `MaxAttempts` is 25, Oban's `max_attempts` is 20: enough to outlast an outage of a day, few enough that a broken job surfaces in the dead-letter queue within days, not weeks |
//! | `backoff` | exponential from 15 s, factor 2, capped at 4 h, **full jitter** | Sidekiq (`count⁴ + 15 s` plus jitter), Oban (`2^attempt + 15 s`) and River (`attempt⁴ s` ± 10 %) all grow polynomially to gaps of days (the last of Sidekiq's 25 waits is about 4 days) and spread little. A 4 h cap means a job waits at most 4 h (2 h on average) after its dependency recovers; full jitter spreads a whole backlog that failed together across the window (Brooker's measurements: the least total work of the jitters). The 24 delays sum to ~60 h before jitter, ~30 h expected with it, ~2.5 days at most |
//! | `max_age` | 7 days | Pub/Sub keeps unacknowledged messages 7 days by default; SQS keeps them 4 days by default and 14 at most. Work a week late is usually wrong to do (a stale invoice state); it goes to the dead-letter queue, with its history, for a person to decide. The default schedule finishes its attempts well inside it |
//! | `poison_after` | 3 runs without an outcome | a crash takes every job the process was running with it, so one unreported run proves nothing; three in a row is a job crashing its worker. Pub/Sub's smallest `max_delivery_attempts` is 5 and SQS's `maxReceiveCount` is chosen per queue, but both count every delivery, failures included; rebound counts crashes apart from failures, so a smaller number is safe. River and Oban only count a crash as an attempt, so a job that kills the process is run again up to 25 (20) times, taking the worker down each time |
//!
//! Attempts count every run that started, crashed runs included (River
//! counts the attempt at claim for the same reason), and never a run handed
//! back by a graceful shutdown.

mod reason;
mod state;

use std::time::Duration;

use rebound::{Backoff, ConfigError, Decision, Jitter};

pub use reason::{DeadLetterReason, UnknownReason};
pub use state::DeliveryState;

use crate::time::Timestamp;

const COMPONENT: &str = "delivery policy";

/// The policy's answer when a job is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimAction {
    /// Run the handler; `attempt` counts the first run as 1.
    Run {
        /// This run's attempt number.
        attempt: u32,
    },
    /// Do not run: dead-letter the job now.
    DeadLetter(DeadLetterReason),
}

/// How a run ended, as the worker tells the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler returned an error, classified by the worker's classifier
    /// ([`Decision::DoNotRetry`] on an error means permanent).
    Failed(Decision),
    /// The handler panicked: a transient failure.
    Panicked,
    /// The handler ran past the per-job timeout and was cancelled; the
    /// classifier's decision on the timeout.
    TimedOut(Decision),
    /// A graceful shutdown cancelled the run; hand the job back uncounted.
    Interrupted,
}

/// The policy's answer when a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done: remove the job.
    Ack,
    /// Run again, not before `at` (`delay` after now).
    Retry {
        /// When the job is due again.
        at: Timestamp,
        /// The delay the policy chose (`at - now`).
        delay: Duration,
    },
    /// Make the job available again at once, without counting the run.
    HandBack,
    /// Move the job to the dead-letter queue.
    DeadLetter(DeadLetterReason),
}

/// Retries over hours, poison detection and dead-letter reasons for
/// background jobs. See the [module docs](self) for every rule and default.
///
/// A small `Copy` value: share it between workers and adapters freely.
///
/// ```
/// use std::time::Duration;
/// use rebound::{Backoff, Jitter};
/// use rebound_jobs::DeliveryPolicy;
///
/// let policy = DeliveryPolicy::builder()
///     .max_attempts(10)
///     .backoff(Backoff::exponential(Duration::from_secs(60)).with_max_delay(Duration::from_secs(3600)))
///     .max_age(Some(Duration::from_secs(2 * 86_400)))
///     .poison_after(2)
///     .build()?;
/// assert_eq!(policy.max_attempts(), 10);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryPolicy {
    max_attempts: u32,
    backoff: Backoff,
    max_age: Option<Duration>,
    poison_after: u32,
}

/// The default backoff: exponential from 15 s, factor 2, capped at 4 h,
/// full jitter.
pub const DEFAULT_BACKOFF: Backoff = Backoff::exponential(Duration::from_secs(15))
    .with_max_delay(Duration::from_secs(4 * 3600))
    .with_jitter(Jitter::Full);

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            max_attempts: 25,
            backoff: DEFAULT_BACKOFF,
            max_age: Some(Duration::from_secs(7 * 86_400)),
            poison_after: 3,
        }
    }
}

impl DeliveryPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> DeliveryPolicyBuilder {
        DeliveryPolicyBuilder {
            policy: DeliveryPolicy::default(),
        }
    }

    /// Attempts allowed, counting the first run.
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts.
    pub const fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The maximum age, from the time the job was first due.
    pub const fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// Deliveries without an outcome that make a job poison.
    pub const fn poison_after(&self) -> u32 {
        self.poison_after
    }

    /// Whether `state`'s job is past its maximum age at `now`.
    fn expired(&self, state: &DeliveryState, now: Timestamp) -> bool {
        self.max_age
            .is_some_and(|age| now > state.enqueued_at.saturating_add(age))
    }

    /// What to do with a job just claimed. `state.deliveries` already counts
    /// this claim.
    pub fn on_claim(&self, state: &DeliveryState, now: Timestamp) -> ClaimAction {
        if state.unreported() >= self.poison_after {
            return ClaimAction::DeadLetter(DeadLetterReason::Poison);
        }
        if self.expired(state, now) {
            return ClaimAction::DeadLetter(DeadLetterReason::Expired);
        }
        let attempt = state.attempt().max(1);
        if attempt > self.max_attempts {
            return ClaimAction::DeadLetter(DeadLetterReason::Exhausted);
        }
        ClaimAction::Run { attempt }
    }

    /// What to do after a run ended at `now`; updates `state` (failures,
    /// interrupts, backoff) for the queue to persist with the answer. `rng`
    /// is drawn from only for a jittered retry delay.
    pub fn on_outcome(
        &self,
        state: &mut DeliveryState,
        end: RunEnd,
        now: Timestamp,
        rng: &mut fastrand::Rng,
    ) -> Disposition {
        let decision = match end {
            RunEnd::Succeeded => return Disposition::Ack,
            RunEnd::Interrupted => {
                state.interrupts = state.interrupts.saturating_add(1);
                return Disposition::HandBack;
            }
            RunEnd::Panicked => Decision::Retry,
            RunEnd::Failed(d) | RunEnd::TimedOut(d) => d,
        };
        state.failures = state.failures.saturating_add(1);
        let requested = match decision {
            Decision::DoNotRetry => {
                return Disposition::DeadLetter(DeadLetterReason::Permanent);
            }
            Decision::Retry => None,
            Decision::RetryAfter(d) => Some(d),
        };
        if state.attempt() >= self.max_attempts {
            return Disposition::DeadLetter(DeadLetterReason::Exhausted);
        }
        let mut backoff = state.backoff();
        let mut delay = self.backoff.next_delay(&mut backoff, rng);
        state.set_backoff(backoff);
        if let Some(req) = requested {
            delay = delay.max(req);
        }
        let at = now.saturating_add(delay);
        if self.expired(state, at) {
            return Disposition::DeadLetter(DeadLetterReason::Expired);
        }
        Disposition::Retry { at, delay }
    }
}

/// Builds a [`DeliveryPolicy`]; [`build`](Self::build) validates it.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicyBuilder {
    policy: DeliveryPolicy,
}

impl DeliveryPolicyBuilder {
    /// Attempts allowed, counting the first run (at least 1). Default 25.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.policy.max_attempts = n;
        self
    }

    /// The delay between attempts. Default [`DEFAULT_BACKOFF`]: exponential
    /// from 15 s, factor 2, capped at 4 h, full jitter.
    ///
    /// A [`Backoff`] built from scratch keeps the core's cap for requests
    /// (20 s): set [`Backoff::with_max_delay`] to the longest wait you want
    /// between two runs of a job.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.policy.backoff = backoff;
        self
    }

    /// The maximum age of a job, counted from when it was first due;
    /// `None` for no limit. Default 7 days.
    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.policy.max_age = age;
        self
    }

    /// Earlier deliveries without an outcome (crashes, lost leases) after
    /// which a claimed job is dead-lettered as poison instead of run (at
    /// least 1). Default 3.
    pub fn poison_after(mut self, n: u32) -> Self {
        self.policy.poison_after = n;
        self
    }

    /// Checks every setting.
    pub fn build(self) -> Result<DeliveryPolicy, ConfigError> {
        let p = self.policy;
        if p.max_attempts == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "max_attempts",
                "must be at least 1 (it counts the first run)",
            ));
        }
        if p.poison_after == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "poison_after",
                "must be at least 1 (0 would dead-letter every job before it runs)",
            ));
        }
        if p.max_age == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                COMPONENT,
                "max_age",
                "must be longer than zero, or None for no limit",
            ));
        }
        p.backoff.validate()?;
        Ok(p)
    }
}
