use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::hedge::HedgePolicy;
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
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        first: First<S::Future>,
        hedges: Vec<(Pin<Box<S::Future>>, Option<Instant>)>,
        #[pin]
        timer: Timer,
        hedging: Option<Box<State<S, Req>>>,
        last: Option<BoxError>,
    }
}

/// What only a hedged call needs, boxed so an unhedged call carries a
/// pointer, not the request and a service.
pub(crate) struct State<S, Req> {
    svc: S,
    req: Req,
    policy: Arc<HedgePolicy>,
    pending_launch: bool,
    started: u32,
    first_started: Option<Instant>,
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(crate) fn single(fut: S::Future) -> Self {
        ResponseFuture {
            first: First::Running { fut },
            hedges: Vec::new(),
            timer: Timer::Off {},
            hedging: None,
            last: None,
        }
    }

    pub(crate) fn hedged(fut: S::Future, svc: S, req: Req, policy: Arc<HedgePolicy>) -> Self {
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
                pending_launch: false,
                started: 1,
                first_started,
            })),
            last: None,
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let mut failed_now = false;
            let mut refused = false;
            if let FirstProj::Running { fut } = this.first.as_mut().project() {
                if let Poll::Ready(r) = fut.poll(cx) {
                    this.first.set(First::Done {});
                    match r {
                        Ok(v) => {
                            if let Some(h) = this.hedging.as_deref() {
                                if let Some(at) = h.first_started {
                                    h.policy.record_latency(h.policy.clock().now() - at);
                                }
                            }
                            return Poll::Ready(Ok(v));
                        }
                        Err(e) => {
                            let e = e.into();
                            if this.hedging.is_none() {
                                return Poll::Ready(Err(e));
                            }
                            refused |= refusal(&*e).is_some();
                            failed_now = true;
                            *this.last = Some(e);
                        }
                    }
                }
            }
            let mut i = 0;
            while i < this.hedges.len() {
                if let Poll::Ready(r) = this.hedges[i].0.as_mut().poll(cx) {
                    let (_, at) = this.hedges.swap_remove(i);
                    match r {
                        Ok(v) => {
                            if let (Some(h), Some(at)) = (this.hedging.as_deref(), at) {
                                h.policy.record_latency(h.policy.clock().now() - at);
                            }
                            return Poll::Ready(Ok(v));
                        }
                        Err(e) => {
                            let e = e.into();
                            refused |= refusal(&*e).is_some();
                            failed_now = true;
                            *this.last = Some(e);
                        }
                    }
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
            if (fired || (failed_now && !refused)) && !h.pending_launch {
                h.pending_launch = h.policy.try_hedge(h.started);
            }
            if h.pending_launch {
                match h.svc.poll_ready(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(e)) => {
                        h.pending_launch = false;
                        *this.last = Some(e.into());
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
                    .unwrap_or_else(|| "hedge: no attempt made".into());
                return Poll::Ready(Err(last));
            }
            return Poll::Pending;
        }
    }
}
