use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use std::time::Instant;

use super::error::Elapsed;
use crate::clock::{self, Clock};
use crate::timeout::{record_timeout, DependencyName};
use crate::tower::BoxError;

pin_project! {
    /// The response future of [`Timeout`](super::Timeout).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        timer: Timer,
        limit: Duration,
        // A copied pointer for a literal name, a shared one (a reference
        // count) for a name made at run time; read on the time-out path only.
        dependency: DependencyName,
    }
}

pin_project! {
    // The limit runs from the call; the timer is made only if the inner
    // future is still pending when first polled. A call that completes at
    // once (a cache, a refusal from a layer below) never touches the timer
    // driver, and one that waits sleeps until the same deadline.
    #[project = TimerProj]
    enum Timer {
        Unarmed { deadline: Instant, clock: Clock },
        Armed { #[pin] timer: clock::Timer },
    }
}

impl<F> ResponseFuture<F> {
    /// Starts the limit now.
    #[inline]
    pub(crate) fn new(
        inner: F,
        clock: &Clock,
        limit: Duration,
        dependency: DependencyName,
    ) -> Self {
        ResponseFuture {
            inner,
            timer: Timer::Unarmed {
                deadline: deadline_after(clock.now(), limit),
                clock: clock.clone(),
            },
            limit,
            dependency,
        }
    }
}

/// When a limit starting `now` runs out (a limit past the clock's range
/// ends about 30 years from now).
#[inline]
fn deadline_after(now: Instant, limit: Duration) -> Instant {
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.inner.poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        let mut timer = this.timer;
        if let TimerProj::Unarmed { deadline, clock } = timer.as_mut().project() {
            let t = clock.timer(*deadline);
            timer.set(Timer::Armed { timer: t });
        }
        let TimerProj::Armed { timer } = timer.project() else {
            unreachable!("armed above")
        };
        match timer.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                record_timeout(this.dependency, *this.limit);
                Poll::Ready(Err(Elapsed::new(*this.limit).into()))
            }
        }
    }
}
