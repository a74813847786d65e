//! The hedge driver: races copies of a call as [`HedgeState`] says.
//!
//! [`Race`] is the one loop of "poll the copies, tell the machine, launch,
//! arm the timer" — driven by the closure API here and by the tower
//! [`HedgeLayer`](crate::tower::hedge::HedgeLayer). Each says how to start
//! a copy through a [`Launch`]. Nothing is spawned: dropping the race drops
//! (cancels) the copies still running.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::classify::{Classifier, Decision, Outcome, RetryErrors};
use crate::clock::Timer;
use crate::driver::launch::{Calls, Launch};
use crate::hedge::{HedgeAction, HedgeCopy, HedgePolicy, HedgeState, Idempotent, Verdict};
use crate::retry::{Failure, RetryError};
use crate::Stop;

/// What a race ended with.
pub(crate) struct Raced<R> {
    /// The winner, the permanent failure, or the last unacceptable result.
    pub(crate) result: R,
    /// Copies started, the first included.
    pub(crate) started: u32,
    /// Why it ended: `Succeeded`, `Permanent`, or why no more copies were
    /// made.
    pub(crate) stop: Stop,
}

pin_project! {
    /// Copies of one call racing under a [`HedgeState`]: the first inline
    /// (a call that never hedges allocates nothing), the hedges boxed.
    pub(crate) struct Race<F, R> {
        #[pin]
        first: Option<F>,
        first_copy: Option<HedgeCopy>,
        hedges: Vec<(Pin<Box<F>>, HedgeCopy)>,
        #[pin]
        timer: Option<Timer>,
        state: HedgeState,
        // The last unacceptable result, returned if nothing better comes.
        last: Option<R>,
    }
}

impl<F, R> Race<F, R> {
    /// A race whose first copy, `first`, starts now; see
    /// [`HedgeState::new`] for `record_request`.
    pub(crate) fn new(policy: &HedgePolicy, first: F, record_request: bool) -> Self {
        let (state, copy) = HedgeState::new(policy, record_request);
        Race {
            first: Some(first),
            first_copy: Some(copy),
            hedges: Vec::new(),
            timer: None,
            state,
            last: None,
        }
    }
}

impl<F: Future<Output = R>, R> Race<F, R> {
    /// Drives the race: ready with the winner, the permanent failure, or
    /// the last unacceptable result, `judge`d by the caller.
    pub(crate) fn poll_race<L, J>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        policy: &HedgePolicy,
        launch: &mut L,
        mut judge: J,
    ) -> Poll<Raced<R>>
    where
        L: Launch<Copy = F>,
        J: FnMut(&R) -> Verdict,
    {
        let mut this = self.project();
        loop {
            // Polled in launch order, so of two copies ending in the same
            // pass the later-started one is "last".
            if let Some(fut) = this.first.as_mut().as_pin_mut() {
                if let Poll::Ready(r) = fut.poll(cx) {
                    this.first.set(None);
                    let copy = this.first_copy.take().expect("the first copy");
                    let verdict = judge(&r);
                    if let Some(stop) = this.state.on_result(policy, copy, verdict) {
                        return Poll::Ready(Raced {
                            result: r,
                            started: this.state.started(),
                            stop,
                        });
                    }
                    *this.last = Some(r);
                }
            }
            let mut i = 0;
            while i < this.hedges.len() {
                let Poll::Ready(r) = this.hedges[i].0.as_mut().poll(cx) else {
                    i += 1;
                    continue;
                };
                let (_, copy) = this.hedges.remove(i);
                let verdict = judge(&r);
                if let Some(stop) = this.state.on_result(policy, copy, verdict) {
                    return Poll::Ready(Raced {
                        result: r,
                        started: this.state.started(),
                        stop,
                    });
                }
                *this.last = Some(r);
            }
            match this.state.next(policy) {
                HedgeAction::Launch => match launch.poll_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(refused)) => {
                        this.state.launch_failed();
                        *this.last = Some(refused);
                    }
                    Poll::Ready(Ok(())) => {
                        let copy = this.state.launched(policy);
                        this.hedges.push((Box::pin(launch.launch()), copy));
                        // Poll the new copy (and the re-armed timer).
                    }
                },
                HedgeAction::Wait(None) => return Poll::Pending,
                HedgeAction::Wait(Some(at)) => {
                    match this.timer.as_mut().as_pin_mut() {
                        Some(t) if t.deadline() == at => {}
                        Some(t) => t.reset(at),
                        None => this.timer.set(Some(policy.clock().timer(at))),
                    }
                    let timer = this.timer.as_mut().as_pin_mut().expect("armed");
                    if timer.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.state.on_timer();
                }
                HedgeAction::Finish(stop) => {
                    return Poll::Ready(Raced {
                        result: this.last.take().expect("every copy ended"),
                        started: this.state.started(),
                        stop,
                    })
                }
            }
        }
    }
}

/// Races copies of `op()` under `policy`, judging each result with `judge`;
/// see [`HedgeState::new`] for `record_request`.
pub(crate) async fn race<T, E, F, Fut, J>(
    policy: &HedgePolicy,
    op: F,
    record_request: bool,
    mut judge: J,
) -> Raced<Result<T, E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    J: FnMut(&Result<T, E>) -> Verdict,
{
    let mut calls = Calls(op);
    let first = calls.launch();
    let mut race = std::pin::pin!(Race::new(policy, first, record_request));
    std::future::poll_fn(|cx| race.as_mut().poll_race(cx, policy, &mut calls, &mut judge)).await
}

impl HedgePolicy {
    /// Runs `op` with hedging on tokio; returns the first acceptable result.
    ///
    /// Every value is acceptable and every error transient: an error starts
    /// the next hedge at once (if the cap and budget allow) while the other
    /// attempts go on. When every attempt failed, the error carries the
    /// **last** failure, the number of attempts and why no more were made
    /// ([`Stop::AttemptsExhausted`] or [`Stop::BudgetExhausted`]). To
    /// reject values (an HTTP 503) or end on permanent errors, bind a
    /// classifier with [`classify`](Self::classify).
    pub async fn run<T, E, F, Fut>(&self, op: Idempotent<F>) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.classify(RetryErrors).run(op).await
    }

    /// Like [`run`](Self::run); an error for which `permanent(&e)` is true
    /// ends the call at once (the others are cancelled) with
    /// [`Stop::Permanent`].
    pub async fn run_with<T, E, F, Fut, P>(
        &self,
        op: Idempotent<F>,
        permanent: P,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: Fn(&E) -> bool,
    {
        self.classify(PermanentIf(permanent)).run(op).await
    }

    /// Binds a [`Classifier`]: it says which results are acceptable.
    ///
    /// A value it does not retry ([`Decision::DoNotRetry`]) wins; a value it
    /// would retry (a 503) is not acceptable. An error it does not retry is
    /// permanent and ends the call at once; a transient one is not
    /// acceptable. See [`ClassifiedHedge::run`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::hedge::{HedgePolicy, Idempotent};
    /// use rebound::{Decision, Outcome};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hedge = HedgePolicy::builder().fixed_delay(Duration::from_millis(50)).build()?;
    /// // A 503 is an answer, but not an acceptable one.
    /// let status_ok = |o: Outcome<'_, u16, std::io::Error>| match o {
    ///     Outcome::Ok(&503) | Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
    ///     Outcome::Ok(_) => Decision::DoNotRetry,
    /// };
    /// let mut calls = 0;
    /// let status = hedge
    ///     .classify(status_ok)
    ///     .run(Idempotent(|| {
    ///         calls += 1;
    ///         let first = calls == 1;
    ///         async move {
    ///             if first {
    ///                 Ok(503) // fast, and useless: the hedge starts at once
    ///             } else {
    ///                 tokio::time::sleep(Duration::from_millis(20)).await;
    ///                 Ok(200)
    ///             }
    ///         }
    ///     }))
    ///     .await?;
    /// assert_eq!((status, calls), (200, 2));
    /// # Ok(()) }
    /// ```
    pub fn classify<C>(&self, classifier: C) -> ClassifiedHedge<'_, C> {
        ClassifiedHedge {
            policy: self,
            classifier,
        }
    }
}

/// A [`HedgePolicy`] bound to a [`Classifier`]; from
/// [`HedgePolicy::classify`].
#[derive(Debug, Clone)]
pub struct ClassifiedHedge<'p, C> {
    policy: &'p HedgePolicy,
    classifier: C,
}

impl<C> ClassifiedHedge<'_, C> {
    /// Runs `op` with hedging on tokio; returns the first acceptable result.
    ///
    /// * An **acceptable value** wins at once; the other attempts are
    ///   cancelled.
    /// * A **permanent error** ([`Decision::DoNotRetry`] on an error) ends
    ///   the call at once with [`Stop::Permanent`]; the others are
    ///   cancelled.
    /// * A result the classifier would **retry** (an error, or a value such
    ///   as a 503) does not end the call while other attempts are in flight
    ///   or may still start; it starts the next hedge at once, if the cap
    ///   and budget allow. [`Decision::RetryAfter`] starts none at once
    ///   (the server asked for time): the other attempts and the hedge
    ///   timer go on.
    /// * When every attempt ended unacceptable, the **last** one to end is
    ///   returned, as the retry executor returns its last attempt: a value
    ///   as `Ok`, an error as `Err` with why no more attempts were made
    ///   ([`Stop::AttemptsExhausted`], [`Stop::BudgetExhausted`], or
    ///   [`Stop::Throttled`] with the delay the server asked for, when
    ///   nothing else was in flight).
    pub async fn run<T, E, F, Fut>(&self, Idempotent(op): Idempotent<F>) -> Result<T, RetryError<E>>
    where
        C: Classifier<T, E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let raced = race(self.policy, op, true, |r: &Result<T, E>| match r {
            Ok(v) => Verdict::of(self.classifier.classify(Outcome::Ok(v)), true),
            Err(e) => Verdict::of(self.classifier.classify(Outcome::Err(e)), false),
        })
        .await;
        match raced.result {
            Ok(v) => Ok(v),
            Err(e) => Err(RetryError {
                stop: raced.stop,
                attempts: raced.started,
                last: Some(Failure::Error(e)),
            }),
        }
    }
}

/// The classifier of [`HedgePolicy::run_with`]: values win, errors are
/// permanent when the predicate says so.
struct PermanentIf<P>(P);

impl<T, E, P: Fn(&E) -> bool> Classifier<T, E> for PermanentIf<P> {
    fn classify(&self, outcome: Outcome<'_, T, E>) -> Decision {
        match outcome {
            Outcome::Ok(_) => Decision::DoNotRetry,
            Outcome::Err(e) if (self.0)(e) => Decision::DoNotRetry,
            Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
        }
    }
}
