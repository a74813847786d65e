//! The retry executors: drive [`RetryState`] with real calling and waiting.
//!
//! There is one async attempt loop, [`RetryPolicy::drive`]: ask the state
//! for an attempt, start it through an [`AttemptIo`], cut it off at its
//! timeout on the policy's clock, tell the state what it produced, wait the
//! delay it answers. The closure executor ([`RetryExecutor::run`]) and the
//! HTTP middleware (`rebound-http`) are two [`AttemptIo`]s on that loop.
//! The blocking executor is the same steps on the current thread.

#[cfg(feature = "tokio")]
use std::future::Future;
#[cfg(feature = "tokio")]
use std::pin::Pin;
#[cfg(feature = "tokio")]
use std::task::{Context, Poll};
use std::time::Duration;

use crate::classify::{Classifier, Decision, Outcome};
#[cfg(feature = "tokio")]
use crate::retry::Attempt;
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
    /// What the classifier said of it ([`Decision::RetryAfter`] carries the
    /// delay the server asked for).
    pub decision: Decision,
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

/// One driver's side of the attempt loop ([`RetryPolicy::drive`]): how to
/// start an attempt and what to make of its result. Everything else — when
/// to start one, its timeout, whether and when to retry, the budget, the
/// breaker — the loop asks the policy.
///
/// The closure executor and `rebound-http`'s middleware implement it;
/// implement it to drive a [`RetryPolicy`] over your own transport.
///
/// The loop holds one attempt at a time: it finishes or drops each attempt
/// before it starts the next, and drops every attempt before its own future
/// completes. A driver may rely on that, e.g. to lend every attempt the same
/// `&mut` borrow (`rebound-http` does, with the request's extensions).
#[cfg(feature = "tokio")]
pub trait AttemptIo<T, E> {
    /// An attempt in flight.
    type Attempt: Future<Output = Result<T, Failure<E>>>;

    /// Starts `attempt`. The loop cuts it off at
    /// [`attempt.timeout()`](Attempt::timeout) on the policy's clock.
    fn start(&mut self, attempt: &Attempt) -> Self::Attempt;

    /// What an attempt's result shows the classifier and the policy.
    /// Default [`Outcome::of`]; a driver whose transport has timeouts of
    /// its own reports them here as [`Outcome::Timeout`], keeping the
    /// transport's error as the result.
    fn outcome<'r>(&self, result: &'r Result<T, Failure<E>>) -> Outcome<'r, T, E> {
        Outcome::of(result)
    }

    /// Classifies an attempt's outcome.
    fn classify(&self, outcome: Outcome<'_, T, E>) -> Decision;

    /// Called when an attempt failed and the loop will retry after
    /// `event.delay`.
    fn on_retry(&mut self, event: &RetryEvent<'_, T, E>) {
        let _ = event;
    }

    /// What to keep of a failed attempt's result while waiting to retry: it
    /// is the call's result if no later attempt is made (a breaker, a
    /// deadline or the budget stops it first). Default: all of it. An HTTP
    /// driver drops a response here, to free its connection while waiting.
    fn keep(&mut self, result: Result<T, Failure<E>>) -> Option<Result<T, Failure<E>>> {
        Some(result)
    }
}

#[cfg(feature = "tokio")]
impl RetryPolicy {
    /// The attempt loop: runs the call `state` stands for (from
    /// [`start`](Self::start), perhaps with
    /// [`forbid_retries`](RetryState::forbid_retries)) through `io` until
    /// the policy says stop, waiting between attempts on the policy's clock.
    ///
    /// ```
    /// use rebound::classify::{Decision, Outcome};
    /// use rebound::retry::{Attempt, AttemptIo, Failure};
    /// use rebound::{RetryPolicy, Stop};
    ///
    /// /// A transport that answers "busy" twice.
    /// struct Flaky(u32);
    /// impl AttemptIo<&'static str, &'static str> for Flaky {
    ///     type Attempt = std::future::Ready<Result<&'static str, Failure<&'static str>>>;
    ///     fn start(&mut self, attempt: &Attempt) -> Self::Attempt {
    ///         self.0 += 1;
    ///         std::future::ready(if attempt.number() < 3 { Err(Failure::Error("busy")) } else { Ok("done") })
    ///     }
    ///     fn classify(&self, o: Outcome<'_, &'static str, &'static str>) -> Decision {
    ///         if matches!(o, Outcome::Ok(_)) { Decision::DoNotRetry } else { Decision::Retry }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    /// let report = policy.drive(policy.start(), &mut Flaky(0)).await;
    /// assert_eq!((report.stop(), report.attempts()), (Stop::Succeeded, 3));
    /// # }
    /// ```
    // Not an `async fn`: that would keep `state` twice in the future, as
    // the argument and as the local it is moved into.
    #[allow(clippy::manual_async_fn)]
    pub fn drive<'s, T, E, A>(
        &'s self,
        mut state: RetryState,
        io: &'s mut A,
    ) -> impl Future<Output = Report<T, E>> + 's
    where
        A: AttemptIo<T, E>,
        T: 's,
        E: 's,
    {
        async move {
            let mut last: Option<Result<T, Failure<E>>> = None;
            loop {
                // Each attempt's values live in this block only, so the wait
                // below holds nothing but the state and the last result: the
                // loop's future stays small (a driver boxes it per call).
                let delay = {
                    let attempt = match state.begin_attempt(self) {
                        Ok(a) => a,
                        Err(stop) => {
                            let stop = state.abort(self, stop);
                            return finish(&state, stop, last);
                        }
                    };
                    let result = match attempt.timeout() {
                        // No timer to set, poll or drop when there is no
                        // timeout (the common case).
                        None => io.start(&attempt).await,
                        limit => match self.clock.timeout(limit, io.start(&attempt)).await {
                            Ok(r) => r,
                            Err(elapsed) => Err(Failure::Timeout(elapsed.after())),
                        },
                    };
                    let number = attempt.number();
                    let outcome = io.outcome(&result);
                    let decision = io.classify(outcome);
                    match state.on_outcome(self, attempt, outcome, decision) {
                        Next::Stop(stop) => return finish(&state, stop, Some(result)),
                        Next::Retry { delay } => {
                            io.on_retry(&RetryEvent {
                                attempt: number,
                                delay,
                                outcome,
                                decision,
                            });
                            last = io.keep(result);
                            delay
                        }
                    }
                };
                self.clock.sleep(delay).await;
            }
        }
    }
}

/// The call's report when the loop stops.
#[inline]
fn finish<T, E>(
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
pub struct RetryExecutor<'p, C, H> {
    policy: &'p RetryPolicy,
    classifier: C,
    hook: H,
}

impl<'p, C, H> RetryExecutor<'p, C, H> {
    pub(crate) fn new(policy: &'p RetryPolicy, classifier: C, hook: H) -> Self {
        RetryExecutor {
            policy,
            classifier,
            hook,
        }
    }

    /// Replaces the classifier.
    pub fn classify<C2>(self, classifier: C2) -> RetryExecutor<'p, C2, H> {
        RetryExecutor::new(self.policy, classifier, self.hook)
    }

    /// Replaces the hook called before each retry (attempt number, delay and
    /// the failed outcome).
    pub fn on_retry<H2>(self, hook: H2) -> RetryExecutor<'p, C, H2> {
        RetryExecutor::new(self.policy, self.classifier, hook)
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
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Report<T, E>
    where
        C: Classifier<T, E>,
        H: RetryHook<T, E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut io = Closure { op, exec: self };
        self.policy
            .drive(RetryState::new(self.policy), &mut io)
            .await
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
    /// [`Report`]: the attempt loop's steps on the current thread.
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
        let mut state = RetryState::new(policy);
        let mut last: Option<Result<T, Failure<E>>> = None;
        loop {
            let attempt = match state.begin_attempt(policy) {
                Ok(a) => a,
                Err(stop) => {
                    let stop = state.abort(policy, stop);
                    return finish(&state, stop, last);
                }
            };
            let number = attempt.number();
            let result = op().map_err(Failure::Error);
            let (next, decision) = state.on_result(policy, attempt, &result, &self.classifier);
            match next {
                Next::Stop(stop) => return finish(&state, stop, Some(result)),
                Next::Retry { delay } => {
                    self.hook.on_retry(&RetryEvent {
                        attempt: number,
                        delay,
                        outcome: Outcome::of(&result),
                        decision,
                    });
                    last = Some(result);
                    policy.clock.sleep_blocking(delay);
                }
            }
        }
    }
}

/// The closure executor's side of the attempt loop.
#[cfg(feature = "tokio")]
struct Closure<'e, 'p, F, C, H> {
    op: F,
    exec: &'e RetryExecutor<'p, C, H>,
}

#[cfg(feature = "tokio")]
impl<T, E, F, Fut, C, H> AttemptIo<T, E> for Closure<'_, '_, F, C, H>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<T, E>,
    H: RetryHook<T, E>,
{
    type Attempt = AsFailure<Fut>;

    #[inline]
    fn start(&mut self, _: &Attempt) -> AsFailure<Fut> {
        AsFailure { fut: (self.op)() }
    }

    #[inline]
    fn classify(&self, outcome: Outcome<'_, T, E>) -> Decision {
        self.exec.classifier.classify(outcome)
    }

    #[inline]
    fn on_retry(&mut self, event: &RetryEvent<'_, T, E>) {
        self.exec.hook.on_retry(event);
    }
}

#[cfg(feature = "tokio")]
pin_project_lite::pin_project! {
    /// An operation's future, its error as a [`Failure::Error`].
    #[doc(hidden)]
    pub struct AsFailure<F> {
        #[pin]
        fut: F,
    }
}

#[cfg(feature = "tokio")]
impl<T, E, F: Future<Output = Result<T, E>>> Future for AsFailure<F> {
    type Output = Result<T, Failure<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .fut
            .poll(cx)
            .map(|r| r.map_err(Failure::Error))
    }
}
