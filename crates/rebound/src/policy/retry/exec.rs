//! The executors: drive [`RetryState`] with real waiting and calling.

#[cfg(feature = "tokio")]
use std::future::Future;
use std::time::Duration;

use crate::classify::{Classifier, Outcome};
use crate::retry::{Failure, Next, Report, RetryError, RetryPolicy, RetryState, Stop};

/// What a [`RetryHook`] is told before each retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a, T, E> {
    /// The number of the attempt that just failed (1 for the first).
    pub attempt: u32,
    /// How long the executor will wait before the next attempt.
    pub delay: Duration,
    /// What the failed attempt produced.
    pub outcome: Outcome<'a, T, E>,
}

/// Called before each retry, e.g. to log it.
///
/// Implemented for every `Fn(&RetryEvent<'_, T, E>)`.
pub trait RetryHook<T, E> {
    /// Called after a failed attempt, before waiting `event.delay`.
    fn on_retry(&self, event: &RetryEvent<'_, T, E>);
}

impl<T, E, F> RetryHook<T, E> for F
where
    F: Fn(&RetryEvent<'_, T, E>),
{
    #[inline]
    fn on_retry(&self, event: &RetryEvent<'_, T, E>) {
        self(event)
    }
}

/// The hook that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl<T, E> RetryHook<T, E> for NoHook {
    #[inline(always)]
    fn on_retry(&self, _: &RetryEvent<'_, T, E>) {}
}

/// A [`RetryPolicy`] bound to a classifier and a hook, ready to run calls.
///
/// Made by [`RetryPolicy::classify`] or [`RetryPolicy::on_retry`]; cheap,
/// and reusable for many calls.
///
/// ```
/// use std::cell::RefCell;
/// use std::time::Duration;
/// use rebound::{Backoff, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .backoff(Backoff::constant(Duration::from_millis(10)))
///     .build()
///     .unwrap();
/// let seen = RefCell::new(Vec::new());
/// let report = policy
///     .on_retry(|e: &rebound::RetryEvent<'_, u32, &str>| seen.borrow_mut().push((e.attempt, e.delay)))
///     .run_blocking({
///         let mut n = 0;
///         move || { n += 1; if n < 3 { Err("busy") } else { Ok(n) } }
///     });
/// assert!(report.needed_retries());
/// assert_eq!(report.attempts(), 3);
/// assert_eq!(*seen.borrow(), [(1, Duration::from_millis(10)), (2, Duration::from_millis(10))]);
/// ```
#[derive(Debug, Clone)]
pub struct Retry<'p, C, H> {
    policy: &'p RetryPolicy,
    classifier: C,
    hook: H,
}

impl<'p, C, H> Retry<'p, C, H> {
    pub(crate) fn new(policy: &'p RetryPolicy, classifier: C, hook: H) -> Self {
        Retry {
            policy,
            classifier,
            hook,
        }
    }

    /// Replaces the classifier.
    pub fn classify<C2>(self, classifier: C2) -> Retry<'p, C2, H> {
        Retry::new(self.policy, classifier, self.hook)
    }

    /// Replaces the hook called before each retry (attempt number, delay and
    /// the failed outcome).
    pub fn on_retry<H2>(self, hook: H2) -> Retry<'p, C, H2> {
        Retry::new(self.policy, self.classifier, hook)
    }

    /// Runs `op` under the policy; see [`RetryPolicy::retry`].
    #[cfg(feature = "tokio")]
    pub async fn retry<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        C: Classifier<T, E>,
        H: RetryHook<T, E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run(op).await.into_result()
    }

    /// Runs `op` under the policy and returns the full [`Report`].
    #[cfg(feature = "tokio")]
    pub async fn run<T, E, F, Fut>(&self, mut op: F) -> Report<T, E>
    where
        C: Classifier<T, E>,
        H: RetryHook<T, E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = self.policy;
        let clock = &policy.clock;
        let mut state = RetryState::new(policy);
        let mut last: Option<Result<T, Failure<E>>> = None;
        loop {
            let attempt = match state.begin_attempt(policy) {
                Ok(a) => a,
                Err(stop) => {
                    let stop = state.abort(policy, stop);
                    return self.finish(&state, stop, last);
                }
            };
            let fut = op();
            let result = match attempt.timeout() {
                Some(limit) => match tokio::time::timeout(limit, fut).await {
                    Ok(r) => r.map_err(Failure::Error),
                    Err(_) => Err(Failure::Timeout(limit)),
                },
                None => fut.await.map_err(Failure::Error),
            };
            match self.decide(&mut state, attempt, &result) {
                Next::Stop(stop) => return self.finish(&state, stop, Some(result)),
                Next::Retry { delay } => {
                    // Free the failed value before waiting.
                    last = Some(result);
                    clock.sleep(delay).await;
                }
            }
        }
    }

    /// Runs the blocking `op` under the policy; see
    /// [`RetryPolicy::retry_blocking`].
    pub fn retry_blocking<T, E, F>(&self, op: F) -> Result<T, RetryError<E>>
    where
        C: Classifier<T, E>,
        H: RetryHook<T, E>,
        F: FnMut() -> Result<T, E>,
    {
        self.run_blocking(op).into_result()
    }

    /// Runs the blocking `op` under the policy and returns the full
    /// [`Report`].
    ///
    /// A blocking call cannot be interrupted, so the per-attempt timeout is
    /// not enforced here (configure your client's own timeout); the total
    /// timeout is: no retry starts, and no delay is slept, past it.
    pub fn run_blocking<T, E, F>(&self, mut op: F) -> Report<T, E>
    where
        C: Classifier<T, E>,
        H: RetryHook<T, E>,
        F: FnMut() -> Result<T, E>,
    {
        let policy = self.policy;
        let clock = &policy.clock;
        let mut state = RetryState::new(policy);
        let mut last: Option<Result<T, Failure<E>>> = None;
        loop {
            let attempt = match state.begin_attempt(policy) {
                Ok(a) => a,
                Err(stop) => {
                    let stop = state.abort(policy, stop);
                    return self.finish(&state, stop, last);
                }
            };
            let result = op().map_err(Failure::Error);
            match self.decide(&mut state, attempt, &result) {
                Next::Stop(stop) => return self.finish(&state, stop, Some(result)),
                Next::Retry { delay } => {
                    last = Some(result);
                    clock.sleep_blocking(delay);
                }
            }
        }
    }

    #[inline]
    fn decide<T, E>(
        &self,
        state: &mut RetryState,
        attempt: crate::retry::Attempt,
        result: &Result<T, Failure<E>>,
    ) -> Next
    where
        C: Classifier<T, E>,
        H: RetryHook<T, E>,
    {
        let outcome = match result {
            Ok(v) => Outcome::Ok(v),
            Err(Failure::Error(e)) => Outcome::Err(e),
            Err(Failure::Timeout(d)) => Outcome::Timeout(*d),
        };
        let number = attempt.number();
        let decision = self.classifier.classify(outcome);
        let next = state.on_outcome(self.policy, attempt, outcome, decision);
        if let Next::Retry { delay } = next {
            self.hook.on_retry(&RetryEvent {
                attempt: number,
                delay,
                outcome,
            });
        }
        next
    }

    fn finish<T, E>(
        &self,
        state: &RetryState,
        stop: Stop,
        last: Option<Result<T, Failure<E>>>,
    ) -> Report<T, E> {
        Report {
            last,
            stop,
            attempts: state.attempts(),
        }
    }
}
