use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::classify::{Classifier, Outcome, RetryErrors};
use crate::hedge::{HedgePolicy, Verdict};
use crate::tower::{refusal, BoxError, Timer};

pin_project! {
    #[project = FirstProj]
    enum First<F> {
        Running { #[pin] fut: F },
        Done,
    }
}

pin_project! {
    /// The response future of [`Hedge`](super::Hedge).
    pub struct ResponseFuture<S, Req, C = RetryErrors>
    where
        S: Service<Req>,
    {
        #[pin]
        first: First<S::Future>,
        hedges: Vec<(Pin<Box<S::Future>>, Option<Instant>)>,
        #[pin]
        timer: Timer,
        hedging: Option<Box<State<S, Req, C>>>,
        // The last unacceptable result, returned if nothing better comes.
        last: Option<Result<S::Response, BoxError>>,
    }
}

/// What only a hedged call needs, boxed so an unhedged call carries a
/// pointer, not the request, a service and a classifier.
pub(crate) struct State<S, Req, C> {
    svc: S,
    req: Req,
    policy: Arc<HedgePolicy>,
    classifier: C,
    pending_launch: bool,
    started: u32,
    first_started: Option<Instant>,
}

impl<S, Req, C> State<S, Req, C> {
    fn judge<T>(&self, r: &Result<T, BoxError>) -> Verdict
    where
        C: Classifier<T, BoxError>,
    {
        match r {
            Ok(v) => Verdict::of(self.classifier.classify(Outcome::Ok(v)), true),
            // A refusal from a rebound layer below (an open breaker, a full
            // bulkhead): another copy now would be refused too.
            Err(e) if refusal(&**e).is_some() => Verdict::Wait(None),
            Err(e) => Verdict::of(self.classifier.classify(Outcome::Err(e)), false),
        }
    }
}

impl<S: Service<Req>, Req, C> ResponseFuture<S, Req, C> {
    pub(crate) fn single(fut: S::Future) -> Self {
        ResponseFuture {
            first: First::Running { fut },
            hedges: Vec::new(),
            timer: Timer::Off {},
            hedging: None,
            last: None,
        }
    }

    pub(crate) fn hedged(
        fut: S::Future,
        svc: S,
        req: Req,
        policy: Arc<HedgePolicy>,
        classifier: C,
    ) -> Self {
        policy.record_request();
        let first_started = policy.is_adaptive().then(|| policy.clock().now());
        let timer = Timer::after(Some(policy.current_delay()));
        ResponseFuture {
            first: First::Running { fut },
            hedges: Vec::new(),
            timer,
            hedging: Some(Box::new(State {
                svc,
                req,
                policy,
                classifier,
                pending_launch: false,
                started: 1,
                first_started,
            })),
            last: None,
        }
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let mut relaunch = false;
            let mut ended = None;
            if let FirstProj::Running { fut } = this.first.as_mut().project() {
                if let Poll::Ready(r) = fut.poll(cx) {
                    this.first.set(First::Done {});
                    let r = r.map_err(Into::into);
                    match this.hedging.as_deref() {
                        None => return Poll::Ready(r),
                        Some(h) => ended = Some((r, h.first_started)),
                    }
                }
            }
            // The hedges, in launch order: of two copies ending in the same
            // pass, the later-started one is "last".
            let mut i = 0;
            loop {
                if let Some((r, at)) = ended.take() {
                    let h = this.hedging.as_deref().expect("a hedged call");
                    match h.judge(&r) {
                        Verdict::Accept => {
                            if let Some(at) = at {
                                let now = h.policy.clock().now();
                                h.policy.record_latency(now.saturating_duration_since(at));
                            }
                            return Poll::Ready(r);
                        }
                        Verdict::Final => return Poll::Ready(r),
                        v => {
                            relaunch |= v == Verdict::Retry;
                            *this.last = Some(r);
                        }
                    }
                }
                let Some((fut, _)) = this.hedges.get_mut(i) else {
                    break;
                };
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    let (_, at) = this.hedges.remove(i);
                    ended = Some((r.map_err(Into::into), at));
                } else {
                    i += 1;
                }
            }
            let Some(h) = this.hedging.as_deref_mut() else {
                // Unhedged and still running.
                return Poll::Pending;
            };
            let fired = this.timer.as_mut().poll_expired(cx).is_ready();
            if fired {
                this.timer.set(Timer::Off {});
            }
            if (fired || relaunch) && !h.pending_launch {
                h.pending_launch = h.policy.try_hedge(h.started);
            }
            if h.pending_launch {
                match h.svc.poll_ready(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(e)) => {
                        h.pending_launch = false;
                        *this.last = Some(Err(e.into()));
                    }
                    Poll::Ready(Ok(())) => {
                        h.pending_launch = false;
                        h.started += 1;
                        let at = h.policy.is_adaptive().then(|| h.policy.clock().now());
                        let fut = h.svc.call(h.req.clone());
                        this.hedges.push((Box::pin(fut), at));
                        if h.started < h.policy.max_attempts() {
                            this.timer.set(Timer::after(Some(h.policy.current_delay())));
                        }
                        continue;
                    }
                }
            }
            let running = matches!(this.first.as_ref().get_ref(), First::Running { .. })
                || !this.hedges.is_empty();
            if !running && !h.pending_launch {
                let last = this
                    .last
                    .take()
                    .unwrap_or_else(|| Err("hedge: no attempt made".into()));
                return Poll::Ready(last);
            }
            return Poll::Pending;
        }
    }
}
