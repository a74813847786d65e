//! Adaptive client-side throttling (Google SRE, "Handling Overload").
//!
//! When a backend is overloaded it rejects requests — but rejecting still
//! costs it work, and clients that keep sending at full rate keep it
//! overloaded. An [`AdaptiveThrottle`] watches, over a sliding window, how
//! many requests the client *attempted* and how many the backend
//! *accepted*, and rejects new requests locally, before they reach the
//! network, with probability
//!
//! ```text
//! p = max(0, (requests − K · accepts) / (requests + 1))
//! ```
//!
//! While the backend accepts everything, `p` is 0. As it starts rejecting,
//! the client sheds load itself so that, in steady overload, it sends about
//! `K` requests for each one accepted. `K = 2` (the default) lets twice the
//! accepted load through — enough to notice recovery quickly; smaller `K`
//! is more aggressive (SRE: 1.1).
//!
//! ```
//! use std::time::Duration;
//! use rebound::{throttle::AdaptiveThrottle, Clock, RandomSource};
//!
//! let (clock, _time) = Clock::manual();
//! let throttle = AdaptiveThrottle::builder()
//!     .k(2.0)
//!     .window(Duration::from_secs(60))
//!     .clock(clock)
//!     .random(RandomSource::seeded(1))
//!     .build()
//!     .unwrap();
//!
//! // The backend rejects everything: after a while most requests are
//! // refused locally.
//! let mut sent = 0;
//! for _ in 0..1000 {
//!     if let Ok(permit) = throttle.try_acquire() {
//!         sent += 1;
//!         permit.rejected(); // the backend said "overloaded"
//!     }
//! }
//! assert!(sent < 100, "{sent} requests reached the backend");
//! assert!(throttle.rejection_probability() > 0.9);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{check, ConfigError};
use crate::infra::sliding_window::{Epochs, Series};
use crate::telemetry::{CounterKey, THROTTLE_REJECTED_TOTAL};
use crate::{Clock, RandomSource};

const COMPONENT: &str = "adaptive throttle";

/// SRE adaptive throttling; see the [module docs](self). Cheap to clone;
/// clones share state.
#[derive(Clone)]
pub struct AdaptiveThrottle {
    inner: Arc<Inner>,
}

struct Inner {
    k: f64,
    epochs: Epochs,
    requests: Series,
    accepts: Series,
    random: RandomSource,
    /// `throttle_rejected_total`, labelled once: rejections are the hot
    /// path under overload.
    rejected: CounterKey,
}

/// The request was refused locally by the throttle.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Throttled {
    /// The rejection probability when it was refused.
    pub probability: f64,
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "throttled locally (backend overloaded; rejecting with p = {:.2})",
            self.probability
        )
    }
}

impl std::error::Error for Throttled {}

/// An admitted request. Tell the throttle how the backend answered with
/// [`accepted`](Self::accepted) or [`rejected`](Self::rejected); dropping it
/// unreported counts as neither (the request was cancelled).
#[derive(Debug)]
#[must_use = "report the backend's answer with accepted() or rejected()"]
pub struct ThrottlePermit {
    throttle: AdaptiveThrottle,
}

impl ThrottlePermit {
    /// The backend accepted the request (it answered, even with a
    /// permanent error — anything but "overloaded").
    pub fn accepted(self) {
        let t = &self.throttle.inner;
        t.accepts.bump(t.epochs.now());
    }

    /// The backend rejected the request because it is overloaded (a 429, a
    /// 503, a timeout).
    pub fn rejected(self) {}
}

impl fmt::Debug for AdaptiveThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (requests, accepts) = self.counts();
        f.debug_struct("AdaptiveThrottle")
            .field("k", &self.inner.k)
            .field("requests", &requests)
            .field("accepts", &accepts)
            .finish()
    }
}

impl AdaptiveThrottle {
    /// A builder. Defaults: `k` 2, `window` 2 minutes in 12 buckets (the
    /// SRE book's), system clock, fresh entropy.
    pub fn builder() -> AdaptiveThrottleBuilder {
        AdaptiveThrottleBuilder {
            k: 2.0,
            window: Duration::from_secs(120),
            buckets: 12,
            clock: Clock::default(),
            random: RandomSource::entropy(),
            dependency: Arc::from("default"),
            host: None,
        }
    }

    /// Requests and accepts in the current window.
    pub fn counts(&self) -> (u64, u64) {
        let e = self.inner.epochs.now();
        (self.inner.requests.sum(e), self.inner.accepts.sum(e))
    }

    /// The probability a request would be rejected now.
    pub fn rejection_probability(&self) -> f64 {
        let (requests, accepts) = self.counts();
        probability(self.inner.k, requests, accepts)
    }

    /// Asks to send a request. Counts it as a request either way (the SRE
    /// formula counts locally rejected requests too, which is what makes
    /// the rejection rate climb while the backend stays overloaded).
    pub fn try_acquire(&self) -> Result<ThrottlePermit, Throttled> {
        let t = &self.inner;
        let e = t.epochs.now();
        let p = probability(t.k, t.requests.sum(e), t.accepts.sum(e));
        t.requests.bump(e);
        if p > 0.0 && t.random.f64() < p {
            t.rejected.incr();
            return Err(Throttled { probability: p });
        }
        Ok(ThrottlePermit {
            throttle: self.clone(),
        })
    }
}

#[inline]
fn probability(k: f64, requests: u64, accepts: u64) -> f64 {
    ((requests as f64 - k * accepts as f64) / (requests as f64 + 1.0)).max(0.0)
}

/// Builder for [`AdaptiveThrottle`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AdaptiveThrottleBuilder {
    k: f64,
    window: Duration,
    buckets: u32,
    clock: Clock,
    random: RandomSource,
    dependency: Arc<str>,
    host: Option<Arc<str>>,
}

impl AdaptiveThrottleBuilder {
    /// The multiplier `K`: requests allowed per accepted request in steady
    /// overload. Default 2; at least 1 (below 1 the client would throttle a
    /// healthy backend).
    pub fn k(mut self, k: f64) -> Self {
        self.k = k;
        self
    }

    /// How far back requests and accepts are remembered. Default 120 s.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Slices the window slides by. Default 12.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// The clock. Default [`Clock::default`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The source of the rejection draws. Default fresh entropy.
    pub fn random(mut self, random: RandomSource) -> Self {
        self.random = random;
        self
    }

    /// The `dependency` label of `throttle_rejected_total`. Default
    /// `"default"`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = name.into();
        self
    }

    /// The instance of the dependency (for HTTP, the `host` or
    /// `host:port`), added as the `host` label of `throttle_rejected_total`
    /// beside `dependency`. Default: no `host` label.
    pub fn host(mut self, host: impl Into<Arc<str>>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<AdaptiveThrottle, ConfigError> {
        check::positive_f64(COMPONENT, "k", self.k)?;
        if self.k < 1.0 {
            return Err(ConfigError::new(
                COMPONENT,
                "k",
                format!("must be at least 1 (got {})", self.k),
            ));
        }
        let epochs = Epochs::checked(COMPONENT, self.clock, self.window, self.buckets)?;
        let throttle = AdaptiveThrottle {
            inner: Arc::new(Inner {
                k: self.k,
                requests: Series::new(&epochs),
                accepts: Series::new(&epochs),
                epochs,
                random: self.random,
                rejected: CounterKey::hosted(
                    THROTTLE_REJECTED_TOTAL,
                    &self.dependency,
                    self.host.as_ref(),
                    None,
                ),
            }),
        };
        crate::telemetry::describe();
        throttle.inner.rejected.touch();
        crate::state::register(&self.dependency, &throttle.inner, |inner| {
            let t = AdaptiveThrottle { inner };
            let (requests, accepts) = t.counts();
            crate::state::Component::Throttle(crate::state::ThrottleState {
                requests,
                accepts,
                rejection_probability: crate::state::round4(t.rejection_probability()),
            })
        });
        Ok(throttle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_backends_are_never_throttled() {
        let t = AdaptiveThrottle::builder().build().unwrap();
        for _ in 0..10_000 {
            t.try_acquire().unwrap().accepted();
        }
        assert_eq!(t.rejection_probability(), 0.0);
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert_eq!(
            AdaptiveThrottle::builder()
                .k(0.5)
                .build()
                .unwrap_err()
                .field(),
            "k"
        );
        assert_eq!(
            AdaptiveThrottle::builder()
                .k(f64::NAN)
                .build()
                .unwrap_err()
                .field(),
            "k"
        );
        assert_eq!(
            AdaptiveThrottle::builder()
                .window(Duration::ZERO)
                .build()
                .unwrap_err()
                .field(),
            "window"
        );
    }

    /// Steady overload: the backend accepts a fixed capacity per second out
    /// of a demand several times larger. Attempts per accept converge to K.
    #[test]
    fn attempts_per_accept_converge_to_k() {
        for (k, demand) in [(2.0, 5u32), (1.1, 3), (2.0, 10)] {
            let (clock, time) = Clock::manual();
            let t = AdaptiveThrottle::builder()
                .k(k)
                .window(Duration::from_secs(60))
                .clock(clock)
                .random(RandomSource::seeded(7))
                .build()
                .unwrap();
            let capacity = 100u32; // accepts per second
            let (mut sent, mut accepted) = (0u64, 0u64);
            for second in 0..600 {
                let mut served = 0;
                for _ in 0..capacity * demand {
                    time.advance(Duration::from_secs(1) / (capacity * demand));
                    if let Ok(p) = t.try_acquire() {
                        if served < capacity {
                            served += 1;
                            if second >= 300 {
                                sent += 1;
                                accepted += 1;
                            }
                            p.accepted();
                        } else {
                            if second >= 300 {
                                sent += 1;
                            }
                            p.rejected();
                        }
                    }
                }
            }
            let ratio = sent as f64 / accepted as f64;
            assert!(
                (ratio - k).abs() <= 0.1 * k,
                "K = {k}, demand {demand}×: {ratio:.3} attempts per accept"
            );
        }
    }
}
