//! Timers on a [`Clock`]: what a driver races its work against.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::{Clock, Kind, ManualClock};
pub use crate::timeout::Elapsed;

/// How far away "never" is: further than any timeout anyone configures,
/// close enough to represent on every platform.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

pin_project! {
    /// A timer on a [`Clock`] that fires at a deadline and can be
    /// [reset](Self::reset). Made by [`Clock::timer`] and
    /// [`Clock::timer_after`].
    ///
    /// On the system and tokio clocks it is a tokio timer. On a manual
    /// clock it fires when the clock is moved to its deadline (by
    /// [`ManualClock::advance`], or by an idle wait elsewhere), never moving
    /// the clock itself.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::Clock;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (clock, time) = Clock::manual();
    /// let timer = clock.timer_after(Duration::from_millis(50));
    /// let waiting = tokio::spawn(timer);
    /// tokio::task::yield_now().await;
    /// assert!(!waiting.is_finished());
    /// time.advance(Duration::from_millis(50));
    /// waiting.await.unwrap(); // fired
    /// # }
    /// ```
    pub struct Timer {
        #[pin]
        inner: Inner,
        deadline: Instant,
        // An idle wait (`Clock::sleep`): on a manual clock, moves it to the
        // deadline instead of waiting for something else to.
        idle: bool,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner {
        Tokio { #[pin] sleep: tokio::time::Sleep },
        Manual { wait: ManualWait },
    }
}

/// A registration with a manual clock; dropping it forgets the waker.
struct ManualWait {
    clock: ManualClock,
    at: u64,
    id: Option<u64>,
}

impl Drop for ManualWait {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.clock.cancel(id);
        }
    }
}

impl Timer {
    pub(crate) fn new(clock: &Clock, deadline: Instant) -> Self {
        let inner = match clock.kind() {
            Kind::Manual(m) => Inner::Manual {
                wait: ManualWait {
                    at: m.nanos_at(deadline),
                    clock: m.clone(),
                    id: None,
                },
            },
            _ => Inner::Tokio {
                sleep: tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)),
            },
        };
        Timer {
            inner,
            deadline,
            idle: false,
        }
    }

    pub(crate) fn after(clock: &Clock, after: Duration) -> Self {
        Self::new(clock, far_or(clock.now(), after))
    }

    /// An idle wait of `after` (see [`Clock::sleep`]).
    pub(crate) fn idle(clock: &Clock, after: Duration) -> Self {
        let mut t = Self::after(clock, after);
        t.idle = true;
        t
    }

    /// When the timer fires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (earlier or later); a fired timer fires again at
    /// the new one. The timer then races other work (see [`Clock::timer`]).
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.set(deadline, false);
    }

    /// Makes the timer an idle wait of `after` from `now` (read on the
    /// timer's clock): on a manual clock, it then moves the clock instead
    /// of waiting for it (see [`Clock::sleep`]).
    pub fn reset_idle(self: Pin<&mut Self>, now: Instant, after: Duration) {
        self.set(far_or(now, after), true);
    }

    /// Makes the timer an idle wait ending at `deadline`; see
    /// [`reset_idle`](Self::reset_idle).
    pub fn reset_idle_at(self: Pin<&mut Self>, deadline: Instant) {
        self.set(deadline, true);
    }

    fn set(self: Pin<&mut Self>, deadline: Instant, idle: bool) {
        let this = self.project();
        *this.deadline = deadline;
        *this.idle = idle;
        match this.inner.project() {
            InnerProj::Tokio { sleep } => sleep.reset(tokio::time::Instant::from_std(deadline)),
            InnerProj::Manual { wait } => wait.at = wait.clock.nanos_at(deadline),
        }
    }

    /// Moves the deadline to `after` from `now` (read on the timer's
    /// clock by the caller).
    pub fn reset_after(self: Pin<&mut Self>, now: Instant, after: Duration) {
        self.reset(far_or(now, after));
    }
}

fn far_or(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

impl Future for Timer {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.inner.project() {
            InnerProj::Tokio { sleep } => sleep.poll(cx),
            InnerProj::Manual { wait } => {
                let ManualWait { clock, at, id } = wait;
                if *this.idle {
                    // Nothing else is in flight: jump to the deadline.
                    clock.set_elapsed(std::time::Duration::from_nanos(*at));
                }
                if clock.poll_reached(*at, id, cx.waker()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Inner::Tokio { .. } => "tokio",
            Inner::Manual { .. } => "manual",
        };
        f.debug_struct("Timer")
            .field("clock", &kind)
            .field("deadline", &self.deadline)
            .finish()
    }
}

pin_project! {
    /// A future cut off after a limit on a [`Clock`]; made by
    /// [`Clock::timeout`]. Resolves to `Err(Elapsed)` when the limit ran
    /// out first (the inner future is then dropped by the caller).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::Clock;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let clock = Clock::tokio();
    /// let slow = clock.timeout(Some(Duration::from_secs(1)), std::future::pending::<()>());
    /// assert_eq!(slow.await.unwrap_err().after(), Duration::from_secs(1));
    /// let fast = clock.timeout(Some(Duration::from_secs(1)), async { 7 });
    /// assert_eq!(fast.await, Ok(7));
    /// # }
    /// ```
    pub struct WithTimeout<F> {
        #[pin]
        fut: F,
        #[pin]
        timer: Option<Timer>,
        limit: Duration,
    }
}

impl<F> WithTimeout<F> {
    pub(crate) fn new(clock: &Clock, limit: Option<Duration>, fut: F) -> Self {
        WithTimeout {
            fut,
            timer: limit.map(|d| Timer::after(clock, d)),
            limit: limit.unwrap_or_default(),
        }
    }
}

impl<F: Future> Future for WithTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match this.timer.as_pin_mut() {
            Some(t) => t.poll(cx).map(|()| Err(Elapsed::new(*this.limit))),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_timer_fires_only_when_the_clock_gets_there() {
        let (clock, time) = Clock::manual();
        let mut timer = std::pin::pin!(clock.timer_after(Duration::from_millis(100)));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(timer.as_mut().poll(&mut cx).is_pending());
        assert_eq!(time.pending_timers(), 1);
        assert_eq!(time.next_deadline(), Some(Duration::from_millis(100)));
        time.advance(Duration::from_millis(99));
        assert!(timer.as_mut().poll(&mut cx).is_pending());
        time.advance(Duration::from_millis(1));
        assert_eq!(time.pending_timers(), 0, "woken and forgotten");
        assert!(timer.as_mut().poll(&mut cx).is_ready());
        // Reset: fires again at the new deadline.
        let now = clock.now();
        timer.as_mut().reset_after(now, Duration::from_millis(10));
        assert!(timer.as_mut().poll(&mut cx).is_pending());
        time.advance(Duration::from_millis(10));
        assert!(timer.as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn a_dropped_manual_timer_is_forgotten() {
        let (clock, time) = Clock::manual();
        {
            let mut timer = std::pin::pin!(clock.timer_after(Duration::from_secs(1)));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(timer.as_mut().poll(&mut cx).is_pending());
            assert_eq!(time.pending_timers(), 1);
        }
        assert_eq!(time.pending_timers(), 0);
    }

    #[tokio::test]
    async fn a_manual_timeout_waits_for_the_clock() {
        let (clock, time) = Clock::manual();
        let cut = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock
                    .timeout(Some(Duration::from_secs(2)), std::future::pending::<()>())
                    .await
            }
        });
        while time.pending_timers() == 0 {
            tokio::task::yield_now().await;
        }
        time.advance(Duration::from_secs(2));
        assert_eq!(
            cut.await.unwrap(),
            Err(Elapsed::new(Duration::from_secs(2)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_timer_follows_paused_time() {
        let clock = Clock::tokio();
        let start = clock.now();
        clock.timer_after(Duration::from_secs(30)).await;
        assert!(clock.now() - start >= Duration::from_secs(30));
    }
}
