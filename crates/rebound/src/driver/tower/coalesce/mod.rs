//! Request coalescing as a tower layer: [`CoalesceLayer`].
//!
//! The tower form of [`Coalescer`]: each request's key is made by your
//! function (`None`: not coalesced, e.g. a write); concurrent requests
//! with the same key make one call to the inner service, and every caller
//! gets a clone of its response. The behaviour is the coalescer's (the
//! [module docs](crate::coalesce) say it in full): a cancelled leader hands
//! over to a follower, errors are shared or not by
//! [`Coalescer::share_errors`], followers wait at most
//! [`Coalescer::max_wait`], and the metrics `coalesced_calls_total` and
//! `coalesce_followers` count what was merged.
//!
//! Errors: the inner service's error, shared, comes back as a
//! [`SharedError`](error::SharedError) (downcast it, or read its
//! [`inner`](error::SharedError::inner)); a follower's wait that ran out as
//! [`WaitElapsed`](error::WaitElapsed). [`cause_of`](crate::tower::fallback::cause_of)
//! looks through a shared error, so a stale-on-error cache above this layer
//! still tells an open breaker from a failure, and answers a follower whose
//! wait ran out (cause [`Timeout`](crate::fallback::Cause::Timeout)) with the
//! stale value: that is cache-miss locking with a bounded wait.
//!
//! For HTTP, `rebound-http` has a key for `GET` and `HEAD` requests
//! (method, URI and the headers you choose) and a reqwest middleware.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_layer::Layer;
//! use rebound::coalesce::Coalescer;
//! use rebound::tower::coalesce::CoalesceLayer;
//! use rebound::tower::BoxError;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let queries = Arc::new(AtomicU32::new(0));
//! let q = Arc::clone(&queries);
//! let db = service_fn(move |sku: String| {
//!     q.fetch_add(1, Ordering::Relaxed);
//!     async move {
//!         tokio::time::sleep(Duration::from_millis(20)).await;
//!         Ok::<_, BoxError>(sku.len())
//!     }
//! });
//! let layer = CoalesceLayer::new(
//!     Coalescer::new().dependency("catalog"),
//!     |sku: &String| Some(sku.clone()), // the key
//! );
//! let svc = layer.layer(db);
//! let mut calls = tokio::task::JoinSet::new();
//! for _ in 0..50 {
//!     let svc = svc.clone();
//!     calls.spawn(svc.oneshot("sku-1".to_string()));
//! }
//! for answer in calls.join_all().await {
//!     assert_eq!(answer?, 5);
//! }
//! assert_eq!(queries.load(Ordering::Relaxed), 1);
//! # Ok(()) }
//! ```

pub mod error;
mod layer;

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

pub use layer::CoalesceLayer;

use crate::coalesce::{CoalesceError, Coalescer};
use crate::tower::BoxError;

/// The response future of [`Coalesce`]: boxed, as a follower's wait and a
/// leader's call are one future.
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Merges concurrent requests with the same key into one call of the inner
/// service. Made by [`CoalesceLayer`].
pub struct Coalesce<S, K, T, F> {
    inner: S,
    herd: Coalescer<K, T, BoxError>,
    key: Arc<F>,
}

impl<S: Clone, K, T, F> Clone for Coalesce<S, K, T, F> {
    fn clone(&self) -> Self {
        Coalesce {
            inner: self.inner.clone(),
            herd: self.herd.clone(),
            key: Arc::clone(&self.key),
        }
    }
}

impl<S: fmt::Debug, K, T, F> fmt::Debug for Coalesce<S, K, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalesce")
            .field("inner", &self.inner)
            .field("herd", &self.herd)
            .finish_non_exhaustive()
    }
}

impl<S, K, T, F> Coalesce<S, K, T, F> {
    /// Wraps `inner`: requests with the same `key(&request)` share a call.
    pub fn new(inner: S, herd: Coalescer<K, T, BoxError>, key: F) -> Self {
        Coalesce {
            inner,
            herd,
            key: Arc::new(key),
        }
    }

    /// The coalescer (shared with every clone).
    pub fn coalescer(&self) -> &Coalescer<K, T, BoxError> {
        &self.herd
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

pub(crate) fn into_box_error(e: CoalesceError<BoxError>) -> BoxError {
    match e {
        CoalesceError::Failed(e) => Box::new(error::SharedError::new(e)),
        CoalesceError::WaitElapsed { waited } => Box::new(error::WaitElapsed::new(waited)),
    }
}

impl<S, K, T, F, Req> Service<Req> for Coalesce<S, K, T, F>
where
    S: Service<Req, Response = T> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> Option<K>,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    Req: Send + 'static,
{
    type Response = T;
    type Error = BoxError;
    type Future = ResponseFuture<T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let Some(key) = (self.key)(&req) else {
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        };
        // The ready service goes with the request (a follower that takes
        // over calls it); a clone stays for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let herd = self.herd.clone();
        Box::pin(async move {
            herd.run(key, move || async move {
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                inner.call(req).await.map_err(Into::into)
            })
            .await
            .map_err(into_box_error)
        })
    }
}
