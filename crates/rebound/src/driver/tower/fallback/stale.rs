//! The stale-on-error cache as a tower layer: [`StaleCacheLayer`].

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{cause_of, Cause};
use crate::classify::{Classifier, Decision, Outcome, RetryErrors};
use crate::fallback::{Fallback, Lookup, StaleCache};
use crate::telemetry;
use crate::tower::BoxError;

type OnStale<V> = Arc<dyn Fn(&mut V, Duration) + Send + Sync>;

/// Serves the last good response for a request's key when the inner
/// service fails; see the [module docs](super#the-stale-on-error-cache).
///
/// `K` is the cache key, made from each request by the key function `F`;
/// `V` the response (`Clone`: one copy is kept, one returned).
///
/// ```
/// use std::time::{Duration, Instant};
/// use rebound::fallback::{Fallback, StaleCache};
/// use rebound::tower::fallback::StaleCacheLayer;
///
/// let cache: StaleCache<String, String> = StaleCache::new(Duration::from_secs(60));
/// let layer = StaleCacheLayer::new(Fallback::default(), cache, |sku: &&str| sku.to_string());
/// # let _ = layer;
/// ```
pub struct StaleCacheLayer<K, V, F, C = RetryErrors> {
    fallback: Fallback,
    cache: StaleCache<K, V>,
    key: F,
    classifier: C,
    on_stale: Option<OnStale<V>>,
}

impl<K, V, F: Clone, C: Clone> Clone for StaleCacheLayer<K, V, F, C> {
    fn clone(&self) -> Self {
        StaleCacheLayer {
            fallback: self.fallback.clone(),
            cache: self.cache.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
            on_stale: self.on_stale.clone(),
        }
    }
}

impl<K, V, F, C> fmt::Debug for StaleCacheLayer<K, V, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCacheLayer")
            .field("fallback", &self.fallback)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<K, V, F> StaleCacheLayer<K, V, F> {
    /// A layer keeping the last good response per `key(&request)` in
    /// `cache`, and serving it — while younger than the cache's `max_age`,
    /// on the cache's clock — when the inner service fails with a cause
    /// `fallback` covers. Every response is good until
    /// [`classify`](Self::classify) says otherwise.
    pub fn new(fallback: Fallback, cache: StaleCache<K, V>, key: F) -> Self {
        StaleCacheLayer {
            fallback,
            cache,
            key,
            classifier: RetryErrors,
            on_stale: None,
        }
    }
}

impl<K, V, F, C> StaleCacheLayer<K, V, F, C> {
    /// Replaces the classifier (a `Classifier<Response, BoxError>`): a
    /// response it would retry (an HTTP 503) is not stored, and is answered
    /// from the cache when a fresh-enough entry exists (cause
    /// [`Cause::Failed`]). Errors are judged by their cause alone. Default
    /// [`RetryErrors`]: every response is good.
    pub fn classify<C2>(self, classifier: C2) -> StaleCacheLayer<K, V, F, C2> {
        StaleCacheLayer {
            fallback: self.fallback,
            cache: self.cache,
            key: self.key,
            classifier,
            on_stale: self.on_stale,
        }
    }

    /// Calls `mark(&mut response, age)` on every response served from the
    /// cache, e.g. to add an HTTP `Age` or `Warning` header so the caller
    /// can tell. Default: served as stored.
    #[must_use]
    pub fn on_stale(mut self, mark: impl Fn(&mut V, Duration) + Send + Sync + 'static) -> Self {
        self.on_stale = Some(Arc::new(mark));
        self
    }

    /// The cache (shared with every service the layer makes).
    pub fn cache(&self) -> &StaleCache<K, V> {
        &self.cache
    }
}

impl<S, K, V, F: Clone, C: Clone> Layer<S> for StaleCacheLayer<K, V, F, C> {
    type Service = StaleCacheService<S, K, V, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        StaleCacheService {
            inner,
            shared: Arc::new(Shared {
                fallback: self.fallback.clone(),
                cache: self.cache.clone(),
                key: self.key.clone(),
                classifier: self.classifier.clone(),
                on_stale: self.on_stale.clone(),
            }),
        }
    }
}

pub(crate) struct Shared<K, V, F, C> {
    fallback: Fallback,
    cache: StaleCache<K, V>,
    key: F,
    classifier: C,
    on_stale: Option<OnStale<V>>,
}

/// Answers failures of the inner service from a stale-on-error cache. Made
/// by [`StaleCacheLayer`].
pub struct StaleCacheService<S, K, V, F, C = RetryErrors> {
    inner: S,
    shared: Arc<Shared<K, V, F, C>>,
}

impl<S: Clone, K, V, F, C> Clone for StaleCacheService<S, K, V, F, C> {
    fn clone(&self) -> Self {
        StaleCacheService {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, K, V, F, C> fmt::Debug for StaleCacheService<S, K, V, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCacheService")
            .field("inner", &self.inner)
            .field("fallback", &self.shared.fallback)
            .field("cache", &self.shared.cache)
            .finish_non_exhaustive()
    }
}

impl<S, K, V, F, C> StaleCacheService<S, K, V, F, C> {
    /// The cache.
    pub fn cache(&self) -> &StaleCache<K, V> {
        &self.shared.cache
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

impl<S, K, V, F, C, Req> Service<Req> for StaleCacheService<S, K, V, F, C>
where
    S: Service<Req, Response = V>,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> K,
    K: Hash + Eq,
    V: Clone,
    C: Classifier<V, BoxError>,
{
    type Response = V;
    type Error = BoxError;
    type Future = StaleResponseFuture<S::Future, K, V, F, C>;

    /// Readiness is the inner service's: an error here (no request yet,
    /// so no key) passes through.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = (self.shared.key)(&req);
        let shared = Arc::clone(&self.shared);
        if shared.cache.freshness().is_none() {
            return StaleResponseFuture {
                state: State::Call {
                    fut: self.inner.call(req),
                },
                key: Some(key),
                shared,
                started: None,
                cached: None,
            };
        }
        let cached = match shared.cache.lookup(&key) {
            Lookup::Hit { value, .. } => {
                return StaleResponseFuture {
                    state: State::Hit { value: Some(value) },
                    key: Some(key),
                    shared,
                    started: None,
                    cached: None,
                };
            }
            Lookup::Refresh { value, .. } => {
                telemetry::incr(
                    telemetry::CACHE_EARLY_REFRESH_TOTAL,
                    shared.fallback.dependency_arc(),
                );
                Some(value)
            }
            Lookup::Miss { .. } => None,
        };
        StaleResponseFuture {
            state: State::Call {
                fut: self.inner.call(req),
            },
            key: Some(key),
            started: Some(shared.cache.clock().now()),
            shared,
            cached,
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, V> {
        // A fresh entry: answered without calling.
        Hit { value: Option<V> },
        Call { #[pin] fut: Fut },
    }
}

pin_project! {
    /// The response future of [`StaleCacheService`].
    pub struct StaleResponseFuture<Fut, K, V, F, C> {
        #[pin]
        state: State<Fut, V>,
        key: Option<K>,
        shared: Arc<Shared<K, V, F, C>>,
        // When the call started, to time the load (with a freshness).
        started: Option<Instant>,
        // The fresh value an early refresh replaces (served if it fails).
        cached: Option<V>,
    }
}

impl<Fut, K, V, F, C> fmt::Debug for StaleResponseFuture<Fut, K, V, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone, F, C> Shared<K, V, F, C> {
    /// The cached answer for `key` if `cause` is covered and an entry is
    /// fresh enough; counts the use.
    fn stale(&self, key: &K, cause: Cause) -> Option<V> {
        if !self.fallback.covers(cause) {
            return None;
        }
        let (mut value, age) = self.cache.get(key)?;
        if let Some(mark) = &self.on_stale {
            mark(&mut value, age);
        }
        self.fallback.record_use(cause);
        Some(value)
    }
}

impl<Fut, K, V, E, F, C> Future for StaleResponseFuture<Fut, K, V, F, C>
where
    Fut: Future<Output = Result<V, E>>,
    E: Into<BoxError>,
    K: Hash + Eq,
    V: Clone,
    C: Classifier<V, BoxError>,
{
    type Output = Result<V, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.state.project() {
            StateProj::Hit { value } => {
                return Poll::Ready(Ok(value.take().expect("polled after completion")));
            }
            StateProj::Call { fut } => ready!(fut.poll(cx)),
        };
        let key = this.key.take().expect("polled after completion");
        let shared = &**this.shared;
        Poll::Ready(match result {
            Ok(v) => {
                if shared.classifier.classify(Outcome::Ok(&v)) == Decision::DoNotRetry {
                    let took = this.started.map_or(Duration::ZERO, |s| {
                        shared.cache.clock().now().saturating_duration_since(s)
                    });
                    shared.cache.put_loaded(key, v.clone(), took);
                    Ok(v)
                } else if let Some(fresh) = this.cached.take() {
                    // A failed early refresh: the entry is still fresh.
                    Ok(fresh)
                } else {
                    // An answer, but a bad one (a 503): not kept, and
                    // replaced by a good one if there is one.
                    Ok(shared.stale(&key, Cause::Failed).unwrap_or(v))
                }
            }
            Err(e) => match this.cached.take() {
                Some(fresh) => Ok(fresh),
                None => {
                    let e = e.into();
                    shared.stale(&key, cause_of(&e)).ok_or(e)
                }
            },
        })
    }
}
