//! The read-through driver: a [`StaleCache`] with a [`Freshness`] in front
//! of a loader, its misses coalesced (cache-miss locking).
//!
//! [`Freshness`]: crate::freshness::Freshness

use std::future::Future;
use std::hash::Hash;

use crate::coalesce::{CoalesceError, Coalescer};
use crate::fallback::{Cause, Fallback, HasCause, Lookup, Served, StaleCache};
use crate::telemetry;

impl Fallback {
    /// Reads `key` through `cache`, loading it with `load` when it is not
    /// fresh, with one load per key at a time.
    ///
    /// * **Fresh** (younger than its jittered TTL): the cached value,
    ///   [`Served::Cached`]; `load` is not called.
    /// * **Refresh early** (the cache's probabilistic early refresh drew
    ///   this read): this caller reloads while every other reader keeps
    ///   the cached value; if a reload is already in flight, or it fails,
    ///   the cached value is served. Counted in `cache_early_refresh_total`.
    /// * **Miss** (absent or expired): the load goes through `herd`, so of
    ///   all concurrent callers for `key` one loads and the others wait for
    ///   its result (**cache-miss locking**), at most the coalescer's
    ///   `max_wait`. With the freshness rule `stale_while_loading`, a
    ///   caller finding a load in flight takes the stale value at once.
    ///   When the load fails (or the wait runs out: cause
    ///   [`Cause::Timeout`]) with a cause this fallback covers, the stale
    ///   value — if younger than the cache's `max_age` — is served instead,
    ///   [`Served::Stale`], counted in `fallback_used_total`.
    ///
    /// A successful load is stored with its duration (the early refresh's
    /// δ) and a fresh TTL. Without a freshness on the cache every read is
    /// a (coalesced) miss. Time is the cache's clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound::coalesce::Coalescer;
    /// use rebound::fallback::{Fallback, Served, StaleCache};
    /// use rebound::freshness::Freshness;
    /// use rebound::{Clock, RandomSource};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (clock, time) = Clock::manual();
    /// let cache = StaleCache::new(Duration::from_secs(600))
    ///     .with_freshness(Freshness::builder(Duration::from_secs(60)).jitter(0.1).build()?)
    ///     .with_random(RandomSource::seeded(7))
    ///     .with_clock(clock.clone());
    /// let herd = Coalescer::new().with_clock(clock);
    /// let fallback = Fallback::builder().dependency("catalog").build();
    ///
    /// let load = || async { Ok::<_, std::io::Error>(42u32) };
    /// let first = fallback.read_through(&cache, &herd, "sku-1", load).await?;
    /// assert_eq!(first, Served::Fresh(42));
    /// time.advance(Duration::from_secs(10));
    /// let again = fallback.read_through(&cache, &herd, "sku-1", load).await?;
    /// assert_eq!(again, Served::Cached { value: 42, age: Duration::from_secs(10) });
    /// # Ok(()) }
    /// ```
    pub async fn read_through<K, V, E, F, Fut>(
        &self,
        cache: &StaleCache<K, V>,
        herd: &Coalescer<K, V, E>,
        key: K,
        load: F,
    ) -> Result<Served<V>, CoalesceError<E>>
    where
        K: Hash + Eq + Clone,
        V: Clone,
        E: HasCause,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let stale = match cache.lookup(&key) {
            Lookup::Hit { value, age } => return Ok(Served::Cached { value, age }),
            Lookup::Refresh { value, age } => {
                if herd.is_in_flight(&key) {
                    return Ok(Served::Cached { value, age });
                }
                telemetry::incr(telemetry::CACHE_EARLY_REFRESH_TOTAL, self.dependency_arc());
                return Ok(
                    match herd
                        .run(key.clone(), || load_and_store(cache, &key, load))
                        .await
                    {
                        Ok(v) => Served::Fresh(v),
                        // Still fresh: the failed refresh changes nothing.
                        Err(_) => Served::Cached { value, age },
                    },
                );
            }
            Lookup::Miss { stale } => stale,
        };
        if let Some((value, age)) = &stale {
            let stale_now = cache.freshness().is_some_and(|f| f.stale_while_loading());
            if stale_now && herd.is_in_flight(&key) && self.covers(Cause::Timeout) {
                self.record_use(Cause::Timeout);
                return Ok(Served::Stale {
                    value: value.clone(),
                    age: *age,
                });
            }
        }
        match herd
            .run(key.clone(), || load_and_store(cache, &key, load))
            .await
        {
            Ok(v) => Ok(Served::Fresh(v)),
            Err(e) => {
                let cause = match &e {
                    CoalesceError::Failed(err) => err.cause(),
                    CoalesceError::WaitElapsed { .. } => Cause::Timeout,
                };
                if !self.covers(cause) {
                    return Err(e);
                }
                // The newest stale value: another caller may have loaded.
                match cache.get(&key).or(stale) {
                    Some((value, age)) => {
                        self.record_use(cause);
                        Ok(Served::Stale { value, age })
                    }
                    None => Err(e),
                }
            }
        }
    }
}

/// The leader's load: timed on the cache's clock, stored on success.
async fn load_and_store<K, V, E, F, Fut>(cache: &StaleCache<K, V>, key: &K, load: F) -> Result<V, E>
where
    K: Hash + Eq + Clone,
    V: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, E>>,
{
    let clock = cache.clock();
    let start = clock.now();
    let result = load().await;
    if let Ok(v) = &result {
        let took = clock.now().saturating_duration_since(start);
        cache.put_loaded(key.clone(), v.clone(), took);
    }
    result
}
