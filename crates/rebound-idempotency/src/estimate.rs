//! When will an in-progress request be ready? Recent handler durations per
//! route, for the `Retry-After` of a 409.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// How many recent durations are kept per route.
const RECENT: usize = 16;
/// How many routes are tracked (paths with ids in them are many).
const MAX_ROUTES: usize = 1024;

/// Recent handler durations per route.
#[derive(Debug, Default)]
pub(crate) struct Durations {
    hasher: std::collections::hash_map::RandomState,
    routes: Mutex<HashMap<u64, Recent>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Recent {
    ring: [Duration; RECENT],
    len: usize,
    next: usize,
}

impl Durations {
    /// The key of a route.
    pub(crate) fn route(&self, method: &str, route: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        method.hash(&mut h);
        route.hash(&mut h);
        h.finish()
    }

    /// Record how long a handler on `route` took.
    pub(crate) fn record(&self, route: u64, took: Duration) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.len() >= MAX_ROUTES && !routes.contains_key(&route) {
            // Forget everything rather than track an unbounded set; the
            // estimates come back with the next few requests.
            routes.clear();
        }
        let r = routes.entry(route).or_default();
        r.ring[r.next] = took;
        r.next = (r.next + 1) % RECENT;
        r.len = (r.len + 1).min(RECENT);
    }

    /// How long a handler on `route` takes: the longest of the recent
    /// durations (erring late, so a client that waits this long finds the
    /// result ready), or `None` before the first one.
    pub(crate) fn typical(&self, route: u64) -> Option<Duration> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let r = routes.get(&route)?;
        r.ring[..r.len].iter().max().copied()
    }
}

/// The `Retry-After` (whole seconds, at least 1) for a duplicate of a
/// request still in progress: the route's typical duration, or 1 s when
/// none is known, never more than the renewal interval (by then the holder
/// has renewed or finished) nor the lease left.
pub(crate) fn retry_after_secs(
    typical: Option<Duration>,
    renew_every: Option<Duration>,
    lease_left: Duration,
) -> u64 {
    let mut wait = typical.unwrap_or(Duration::from_secs(1));
    if let Some(every) = renew_every {
        wait = wait.min(every);
    }
    wait = wait.min(lease_left);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_recent_durations_within_its_bounds() {
        let d = Durations::default();
        let r = d.route("POST", "/orders");
        assert_eq!(d.typical(r), None);
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // Unknown: 1 s.
        assert_eq!(retry_after_secs(None, Some(s(10)), s(30)), 1);
        d.record(r, ms(50));
        assert_eq!(retry_after_secs(d.typical(r), Some(s(10)), s(30)), 1);
        d.record(r, ms(2_300));
        assert_eq!(retry_after_secs(d.typical(r), Some(s(10)), s(30)), 3);
        // Bounded by the renewal interval and by the lease left.
        assert_eq!(retry_after_secs(Some(s(45)), Some(s(10)), s(30)), 10);
        assert_eq!(retry_after_secs(Some(s(45)), None, s(4)), 4);
        // A slow outlier ages out after RECENT faster ones.
        for _ in 0..RECENT {
            d.record(r, ms(40));
        }
        assert_eq!(d.typical(r), Some(ms(40)));
        // Other routes are independent.
        assert_eq!(d.typical(d.route("POST", "/refunds")), None);
    }
}
