//! Waiting on the injected clock.
//!
//! A proxy's waits (added latency, the pauses of a slow body, the next
//! timeline phase) race other work: while one request waits, others run.
//! So on a manual clock a wait must not move the clock itself (as
//! [`Clock::sleep`] does for an idle executor); it ends when something else
//! — the test — moves the clock past its deadline.

use std::time::{Duration, Instant, SystemTime};

use rebound::Clock;

/// How often a wait on a manual clock looks at it again.
const MANUAL_POLL: Duration = Duration::from_millis(1);

/// Waits until `deadline` on `clock`.
pub(crate) async fn sleep_until(clock: &Clock, deadline: Instant) {
    if clock.is_manual() {
        // The manual clock has no way to wake a waiter when moved: look at
        // it again each millisecond (of tokio's time, which a paused test
        // runtime advances on its own).
        while clock.now() < deadline {
            tokio::time::sleep(MANUAL_POLL).await;
        }
    } else {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    }
}

/// Waits `duration` on `clock`, from now; forever if the deadline is past
/// what an `Instant` can hold.
pub(crate) async fn sleep(clock: &Clock, duration: Duration) {
    if duration.is_zero() {
        return;
    }
    match clock.now().checked_add(duration) {
        Some(deadline) => sleep_until(clock, deadline).await,
        None => std::future::pending().await,
    }
}

/// Wall-clock time that moves with `clock`: the system time when the proxy
/// started plus the clock's time since, so an HTTP-date `Retry-After` sent
/// on a manual clock follows the test's timeline.
#[derive(Debug, Clone)]
pub(crate) struct Wall {
    at_start: SystemTime,
    start: Instant,
}

impl Wall {
    pub(crate) fn new(clock: &Clock) -> Self {
        Wall {
            at_start: SystemTime::now(),
            start: clock.now(),
        }
    }

    pub(crate) fn now(&self, clock: &Clock) -> SystemTime {
        self.at_start + clock.now().saturating_duration_since(self.start)
    }
}
