//! Timers on the injected clock that race other work (lease renewal, the
//! per-job timeout, the poll interval, the shutdown wait): the clock's own
//! timers, which on a manual clock fire when something moves it past them.

use std::time::{Duration, Instant};

/// Waits until `clock` reads at least `deadline`; forever when `None`.
pub(crate) async fn until(clock: &rebound::Clock, deadline: Option<Instant>) {
    match deadline {
        Some(d) => clock.timer(d).await,
        None => std::future::pending().await,
    }
}

/// Waits `d` on `clock`, racing other work.
pub(crate) async fn after(clock: &rebound::Clock, d: Duration) {
    clock.timer_after(d).await
}
