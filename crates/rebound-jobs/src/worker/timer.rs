//! Timers on the injected clock that race other work (lease renewal, the
//! per-job timeout, the poll interval, the shutdown wait).
//!
//! On the system clock these are tokio timers (so tokio's paused time
//! drives them in tests). On a manual clock a timer fires once something
//! else has moved the clock past its deadline; it checks every millisecond
//! of tokio time.

use std::time::{Duration, Instant};

/// Waits until `clock` reads at least `deadline`; forever when `None`.
pub(crate) async fn until(clock: &rebound::Clock, deadline: Option<Instant>) {
    let Some(deadline) = deadline else {
        return std::future::pending().await;
    };
    if !clock.is_manual() {
        return tokio::time::sleep_until(deadline.into()).await;
    }
    while clock.now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits `d` on `clock`, racing other work (see [`until`]).
pub(crate) async fn after(clock: &rebound::Clock, d: Duration) {
    until(clock, clock.now().checked_add(d)).await
}
