//! Retry with a [`RetryPolicy`], as a tower layer.
//!
//! The layer drives the same sans-IO [`RetryState`](crate::RetryState) as
//! the closure API: attempts, backoff and jitter, per-attempt and total
//! timeouts, the retry budget and the circuit breaker set on the policy all
//! apply, with the same telemetry. The request must be `Clone` (each
//! attempt gets a clone; see [the HTTP body note](crate::tower#retrying-http-requests-the-body)).
//!
//! The classifier sees each response and each error (boxed); the default
//! retries every error and timeout and accepts every response. A refusal
//! from one of rebound's layers below (an open breaker, a full bulkhead, a
//! throttle) is never retried: the call stops at once with that reason.
//!
//! **Cost.** A policy that holds no state of its own — no budget, breaker
//! or throttle, the system clock, unseeded randomness — is only settings,
//! so the layer interns it: one copy per distinct policy for the life of
//! the program (at most 256 of them; later ones are shared by reference
//! count), and cloning the service or making a call copies a pointer
//! instead of counting a reference (making a layer looks its policy up
//! under a global lock: make layers once, not per request). A policy with
//! state is shared by reference count. The classifier is cloned into each
//! service and call:
//! a closure that captures nothing costs nothing; keep larger state behind
//! an `Arc`.
//!
//! Under a policy with nothing that can refuse an attempt or must
//! be held while it runs (no total timeout, breaker or throttle — a budget
//! is fine), a call whose first attempt is accepted builds no retry state
//! and allocates nothing: the state is made only if an attempt fails or
//! times out, and is then what it would have been if made at the start.
//! What a call needs beyond that (a guarded policy's state and permits, an
//! attempt timer, the result kept while waiting to retry) shares one
//! allocation per call, outside the response future, which so stays small
//! (80 bytes around an inner `Ready` future). For a breaker or throttle without an
//! allocation per call, put a [`BreakerLayer`](crate::tower::breaker::BreakerLayer)
//! or [`ThrottleLayer`](crate::tower::throttle::ThrottleLayer) below this
//! layer instead of on the policy: its refusals stop the retries at once
//! all the same.
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use rebound::tower::{retry::RetryLayer, BoxError};
//! use rebound::{Backoff, Decision, Outcome, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let policy = RetryPolicy::builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::constant(Duration::from_millis(10)))
//!     .build()?;
//! // Retry 503s, accept everything else.
//! let layer = RetryLayer::new(policy).classify(|o: Outcome<'_, u16, BoxError>| match o {
//!     Outcome::Ok(503) | Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
//!     Outcome::Ok(_) => Decision::DoNotRetry,
//! });
//! let (mock, mut handle) = tower_test::mock::pair::<&str, u16>();
//! let mut svc = layer.layer(mock);
//! handle.allow(2);
//! std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
//! let call = tokio::spawn(svc.call("GET /stock"));
//! let (_, reply) = handle.next_request().await.unwrap();
//! reply.send_response(503);
//! let (_, reply) = handle.next_request().await.unwrap();
//! reply.send_response(200);
//! assert_eq!(call.await.unwrap()?, 200);
//! # Ok(()) }
//! ```

pub mod error;
mod future;
mod layer;

use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tower_service::Service;

pub use future::ResponseFuture;
pub use layer::RetryLayer;

use crate::classify::{Classifier, RetryErrors};
use crate::tower::BoxError;
use crate::RetryPolicy;

/// How a layer, its services and their futures hold the policy.
///
/// A policy that holds no state of its own (no budget, breaker or throttle,
/// the system clock, unseeded randomness) is only settings: two equal ones
/// behave the same, so the layer interns it — one copy per distinct policy,
/// kept for the life of the program — and each call copies a pointer
/// instead of counting a reference. A policy with state is shared by
/// reference count. Interning stops after [`MAX_INTERNED`] distinct
/// policies, so a program that makes policies without end holds a bounded
/// number; later ones are counted.
pub(crate) enum PolicyRef {
    Interned(&'static RetryPolicy),
    Counted(Arc<RetryPolicy>),
}

/// The most distinct stateless policies interned in one program.
pub(crate) const MAX_INTERNED: usize = 256;

static INTERNED: Mutex<Interner> = Mutex::new(Interner::new(MAX_INTERNED));

impl PolicyRef {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        if !holds_no_state(&policy) {
            return PolicyRef::Counted(Arc::new(policy));
        }
        INTERNED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .intern(policy)
    }

    /// Whether this policy is interned (not counted).
    #[cfg(test)]
    pub(crate) fn is_interned(&self) -> bool {
        matches!(self, PolicyRef::Interned(_))
    }
}

/// The interned stateless policies, one per distinct settings, at most
/// `cap` of them.
pub(crate) struct Interner {
    entries: Vec<&'static RetryPolicy>,
    cap: usize,
}

impl Interner {
    pub(crate) const fn new(cap: usize) -> Self {
        Interner {
            entries: Vec::new(),
            cap,
        }
    }

    /// The interned copy of a stateless `policy`: found, made, or (when
    /// `cap` policies are interned already) none, and `policy` is counted.
    pub(crate) fn intern(&mut self, policy: RetryPolicy) -> PolicyRef {
        debug_assert!(holds_no_state(&policy));
        if let Some(p) = self.entries.iter().find(|p| same_settings(p, &policy)) {
            return PolicyRef::Interned(p);
        }
        if self.entries.len() >= self.cap {
            return PolicyRef::Counted(Arc::new(policy));
        }
        let p: &'static RetryPolicy = Box::leak(Box::new(policy));
        self.entries.push(p);
        PolicyRef::Interned(p)
    }
}

/// Whether `p` is only settings: nothing its clones share and change.
pub(crate) fn holds_no_state(p: &RetryPolicy) -> bool {
    // Every field named, so a new one must be placed on one side or the
    // other.
    let RetryPolicy {
        max_attempts: _,
        backoff: _,
        attempt_timeout: _,
        total_timeout: _,
        max_server_delay: _,
        budget,
        breaker,
        throttle,
        dependency: _,
        metrics: _,
        clock,
        random,
    } = p;
    budget.is_none()
        && breaker.is_none()
        && throttle.is_none()
        && !clock.is_manual()
        && random.is_entropy()
}

/// Whether two stateless policies have the same settings.
fn same_settings(a: &RetryPolicy, b: &RetryPolicy) -> bool {
    let RetryPolicy {
        max_attempts,
        backoff,
        attempt_timeout,
        total_timeout,
        max_server_delay,
        // Stateless on both sides (checked before).
        budget: _,
        breaker: _,
        throttle: _,
        clock: _,
        random: _,
        dependency,
        // Made from the dependency's name.
        metrics: _,
    } = a;
    *max_attempts == b.max_attempts
        && *backoff == b.backoff
        && *attempt_timeout == b.attempt_timeout
        && *total_timeout == b.total_timeout
        && *max_server_delay == b.max_server_delay
        && **dependency == *b.dependency
}

impl Clone for PolicyRef {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            PolicyRef::Interned(p) => PolicyRef::Interned(p),
            PolicyRef::Counted(p) => PolicyRef::Counted(Arc::clone(p)),
        }
    }
}

impl Deref for PolicyRef {
    type Target = RetryPolicy;

    #[inline]
    fn deref(&self) -> &RetryPolicy {
        match self {
            PolicyRef::Interned(p) => p,
            PolicyRef::Counted(p) => p,
        }
    }
}

/// Retries calls of the inner service under a [`RetryPolicy`]. Made by
/// [`RetryLayer`].
pub struct Retry<S, C = RetryErrors> {
    inner: S,
    policy: PolicyRef,
    classifier: C,
}

impl<S: Clone, C: Clone> Clone for Retry<S, C> {
    #[inline]
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: std::fmt::Debug, C> std::fmt::Debug for Retry<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &*self.policy)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    /// Wraps `inner`, retrying every error and timeout.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Retry::with_classifier(inner, policy, RetryErrors)
    }
}

impl<S, C> Retry<S, C> {
    /// Wraps `inner` with a classifier deciding what is retried. The
    /// classifier is cloned into every call (see the [module docs](self)).
    pub fn with_classifier(inner: S, policy: RetryPolicy, classifier: C) -> Self {
        Retry {
            inner,
            policy: PolicyRef::new(policy),
            classifier,
        }
    }

    pub(crate) fn from_parts(inner: S, policy: PolicyRef, classifier: C) -> Self {
        Retry {
            inner,
            policy,
            classifier,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for Retry<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError> + Clone,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Always inlined: the inner service's future is then built in place in
    // the caller's frame, not copied out of this one.
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        // The ready service makes this attempt; a clone waits for retries.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(ready, req, self.policy.clone(), self.classifier.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        throttle::AdaptiveThrottle, Backoff, CircuitBreaker, Clock, RandomSource, RetryBudget,
    };

    fn at(p: &PolicyRef) -> *const RetryPolicy {
        &**p
    }

    fn named(name: &str) -> crate::retry::RetryPolicyBuilder {
        RetryPolicy::builder().dependency(name)
    }

    #[test]
    fn equal_stateless_policies_share_one_interned_copy() {
        let make = || {
            named("intern-shared")
                .max_attempts(4)
                .attempt_timeout(Duration::from_millis(250))
                .backoff(Backoff::constant(Duration::from_millis(10)))
                .build()
                .unwrap()
        };
        let (a, b) = (PolicyRef::new(make()), PolicyRef::new(make()));
        assert!(a.is_interned() && b.is_interned());
        assert_eq!(at(&a), at(&b), "one copy for equal settings");
        assert_eq!(a.max_attempts(), 4);
        assert_eq!(a.dependency(), "intern-shared");

        // Each setting tells policies apart.
        let others = [
            named("intern-other")
                .max_attempts(4)
                .attempt_timeout(Duration::from_millis(250))
                .backoff(Backoff::constant(Duration::from_millis(10))),
            named("intern-shared")
                .max_attempts(5)
                .attempt_timeout(Duration::from_millis(250))
                .backoff(Backoff::constant(Duration::from_millis(10))),
            named("intern-shared")
                .max_attempts(4)
                .attempt_timeout(Duration::from_millis(300))
                .backoff(Backoff::constant(Duration::from_millis(10))),
            named("intern-shared")
                .max_attempts(4)
                .attempt_timeout(Duration::from_millis(250))
                .backoff(Backoff::constant(Duration::from_millis(11))),
            named("intern-shared")
                .max_attempts(4)
                .attempt_timeout(Duration::from_millis(250))
                .backoff(Backoff::constant(Duration::from_millis(10)))
                .total_timeout(Duration::from_secs(2)),
            named("intern-shared")
                .max_attempts(4)
                .attempt_timeout(Duration::from_millis(250))
                .backoff(Backoff::constant(Duration::from_millis(10)))
                .max_server_delay(Duration::from_secs(5)),
        ];
        for other in others {
            let o = PolicyRef::new(other.build().unwrap());
            assert!(o.is_interned());
            assert_ne!(at(&o), at(&a), "{:?}", &*o);
        }
    }

    #[test]
    fn policies_with_state_are_counted_not_interned() {
        let with_state = [
            named("intern-state").budget(RetryBudget::ratio(0.1).build().unwrap()),
            named("intern-state").breaker(CircuitBreaker::builder().build().unwrap()),
            named("intern-state").throttle(AdaptiveThrottle::builder().build().unwrap()),
            named("intern-state").clock(Clock::manual().0),
            named("intern-state").random(RandomSource::seeded(7)),
        ];
        for b in with_state {
            let policy = b.build().unwrap();
            assert!(!holds_no_state(&policy));
            let p = PolicyRef::new(policy);
            assert!(!p.is_interned(), "{:?}", &*p);
            // Clones share the one policy, and so its state.
            assert_eq!(at(&p), at(&p.clone()));
        }
        // The same settings without the state are interned.
        assert!(PolicyRef::new(named("intern-state").build().unwrap()).is_interned());
    }

    #[test]
    fn interning_stops_at_its_cap() {
        let mut interner = Interner::new(2);
        let policy = |n| named("intern-cap").max_attempts(n).build().unwrap();
        let one = interner.intern(policy(1));
        let two = interner.intern(policy(2));
        assert!(one.is_interned() && two.is_interned());
        let three = interner.intern(policy(3));
        assert!(!three.is_interned(), "past the cap, counted");
        assert_eq!(three.max_attempts(), 3);
        let again = interner.intern(policy(1));
        assert_eq!(at(&again), at(&one), "an interned policy is still found");
        assert_eq!(interner.entries.len(), 2);
    }

    #[test]
    fn the_layer_and_its_services_share_an_interned_policy() {
        use tower_layer::Layer;
        let layer = RetryLayer::new(named("intern-layer").build().unwrap());
        let svc = layer.layer(());
        let svc2 = Retry::new((), named("intern-layer").build().unwrap());
        assert!(svc.policy.is_interned());
        assert_eq!(layer.policy() as *const RetryPolicy, at(&svc.policy));
        assert_eq!(at(&svc.policy), at(&svc2.policy));
        assert_eq!(at(&svc.policy), at(&svc.clone().policy));
    }
}

#[cfg(test)]
mod size {
    use super::*;

    type Answer = std::future::Ready<Result<u64, BoxError>>;
    type Inner = tower::util::ServiceFn<fn(u64) -> Answer>;

    /// The plain success path moves the response future at least twice; it
    /// holds the inner future, the inner service, the kept request, the
    /// policy pointer and one pointer to the rarely used part.
    #[test]
    fn the_response_future_stays_small() {
        let size = std::mem::size_of::<ResponseFuture<Inner, u64, RetryErrors>>();
        assert_eq!(size, 80, "{size} bytes");
    }
}
