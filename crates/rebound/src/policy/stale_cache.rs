//! The stale-on-error cache: the last good value per key, served when the
//! dependency fails, and — with a [`Freshness`] — served instead of calling
//! it while fresh, with staggered expiry and early refresh.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::freshness::{Freshness, Verdict};
use crate::{Clock, RandomSource};

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served<V> {
    /// From the dependency, just now.
    Fresh(V),
    /// From the cache while fresh (younger than its TTL): the dependency
    /// was not asked. Only a cache with a [`Freshness`] answers so.
    Cached {
        /// The cached value.
        value: V,
        /// How long ago it was stored.
        age: Duration,
    },
    /// From the stale-on-error cache, this old.
    Stale {
        /// The cached value.
        value: V,
        /// How long ago it was stored.
        age: Duration,
    },
}

impl<V> Served<V> {
    /// The value, fresh, cached or stale.
    pub fn into_inner(self) -> V {
        match self {
            Served::Fresh(v) | Served::Cached { value: v, .. } | Served::Stale { value: v, .. } => {
                v
            }
        }
    }

    /// Whether it came from the cache as a stand-in for a failure.
    pub fn is_stale(&self) -> bool {
        matches!(self, Served::Stale { .. })
    }
}

/// What [`StaleCache::lookup`] found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
    /// A fresh value: serve it, do not call.
    Hit {
        /// The value.
        value: V,
        /// Its age.
        age: Duration,
    },
    /// A fresh value this reader should reload now (probabilistic early
    /// refresh); serve it if the reload fails.
    Refresh {
        /// The value.
        value: V,
        /// Its age.
        age: Duration,
    },
    /// Nothing fresh: call. `stale` is the expired value, if one is still
    /// young enough (`max_age`) to stand in for a failure.
    Miss {
        /// The value and its age, if servable on error.
        stale: Option<(V, Duration)>,
    },
}

/// The last good value per key, served on error while younger than
/// `max_age`. Cheap to clone; clones share entries.
///
/// Storing takes a short lock (one per success); without a [`Freshness`]
/// reading only happens on the failure path. Entries older than `max_age`
/// are never served on error, and are dropped when the cache holds more
/// than `max_entries` (default 10 000).
///
/// **With a [`Freshness`]** ([`with_freshness`](Self::with_freshness)) it
/// is also a read-through cache: a value younger than its TTL (drawn per
/// entry, with jitter, from the cache's [`RandomSource`]) is served
/// without calling the dependency, and may be refreshed early. Use it
/// through [`Fallback::read_through`](crate::fallback::Fallback::read_through)
/// (closures: misses are coalesced, so one caller loads) or the
/// `tower::fallback::StaleCacheLayer` (feature `tower`).
///
/// ```
/// use std::time::Duration;
/// use rebound::fallback::StaleCache;
/// use rebound::Clock;
///
/// let (clock, time) = Clock::manual();
/// let cache = StaleCache::new(Duration::from_secs(30)).with_clock(clock);
/// cache.put("eu", 3);
/// time.advance(Duration::from_secs(31));
/// assert_eq!(cache.get("eu"), None); // too old to serve
/// ```
pub struct StaleCache<K, V> {
    inner: Arc<CacheInner<K, V>>,
}

struct Entry<V> {
    value: V,
    stored_at: Instant,
    expires_at: Instant,
    load_time: Duration,
}

struct CacheInner<K, V> {
    max_age: Duration,
    max_entries: usize,
    clock: Clock,
    freshness: Option<Freshness>,
    random: RandomSource,
    map: Mutex<HashMap<K, Entry<V>>>,
}

impl<K, V> Clone for StaleCache<K, V> {
    fn clone(&self) -> Self {
        StaleCache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> fmt::Debug for StaleCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCache")
            .field("max_age", &self.inner.max_age)
            .field("freshness", &self.inner.freshness)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> StaleCache<K, V> {
    /// A cache serving values at most `max_age` old on error, on the
    /// default clock; no freshness (every read calls the dependency).
    pub fn new(max_age: Duration) -> Self {
        StaleCache {
            inner: Arc::new(CacheInner {
                max_age,
                max_entries: 10_000,
                clock: Clock::default(),
                freshness: None,
                random: RandomSource::entropy(),
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The clock ages are measured on. Default [`Clock::default`]. Call it
    /// before sharing the cache.
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        self.rebuild(|c| c.clock = clock)
    }

    /// The most entries kept. Default 10 000.
    #[must_use]
    pub fn with_max_entries(self, n: usize) -> Self {
        self.rebuild(|c| c.max_entries = n.max(1))
    }

    /// Serve values younger than their TTL without calling, with the TTL
    /// jitter and early refresh of `freshness`. Default: none (a pure
    /// stale-on-error cache).
    #[must_use]
    pub fn with_freshness(self, freshness: Freshness) -> Self {
        self.rebuild(|c| c.freshness = Some(freshness))
    }

    /// Where the TTL jitter and the early-refresh draws come from. Default
    /// [`RandomSource::entropy`]; seed it in tests and simulations.
    #[must_use]
    pub fn with_random(self, random: RandomSource) -> Self {
        self.rebuild(|c| c.random = random)
    }

    fn rebuild(self, f: impl FnOnce(&mut CacheInner<K, V>)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(i) => i,
            Err(shared) => CacheInner {
                max_age: shared.max_age,
                max_entries: shared.max_entries,
                clock: shared.clock.clone(),
                freshness: shared.freshness,
                random: shared.random.clone(),
                map: Mutex::new(HashMap::new()),
            },
        };
        f(&mut inner);
        StaleCache {
            inner: Arc::new(inner),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.inner.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The maximum age served on error.
    pub fn max_age(&self) -> Duration {
        self.inner.max_age
    }

    /// The freshness rules, if any.
    pub fn freshness(&self) -> Option<&Freshness> {
        self.inner.freshness.as_ref()
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Stores a good value for `key`, now.
    pub fn put(&self, key: K, value: V) {
        self.put_loaded(key, value, Duration::ZERO);
    }

    /// Stores a good value for `key`, now, whose load took `load_time`
    /// (the δ of the early refresh). Its TTL is drawn now.
    pub fn put_loaded(&self, key: K, value: V, load_time: Duration) {
        let now = self.inner.clock.now();
        let ttl = match &self.inner.freshness {
            Some(f) if f.jitter() > 0.0 => f.ttl_for(self.inner.random.f64()),
            Some(f) => f.ttl(),
            None => Duration::ZERO,
        };
        let entry = Entry {
            value,
            stored_at: now,
            expires_at: now.checked_add(ttl).unwrap_or(now),
            load_time,
        };
        let mut map = self.map();
        if map.len() >= self.inner.max_entries && !map.contains_key(&key) {
            let max_age = self.inner.max_age;
            map.retain(|_, e| {
                now.saturating_duration_since(e.stored_at) <= max_age || now < e.expires_at
            });
            if map.len() >= self.inner.max_entries {
                // Still full of live entries: drop the oldest.
                let oldest = map.values().map(|e| e.stored_at).min();
                map.retain(|_, e| Some(e.stored_at) != oldest);
            }
        }
        map.insert(key, entry);
    }

    /// When the entry of `key` expires (stops being fresh), if one is held.
    pub fn expires_at<Q>(&self, key: &Q) -> Option<Instant>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map().get(key).map(|e| e.expires_at)
    }

    /// The value of `key` and its age, if one is stored and at most
    /// `max_age` old: what may stand in for a failure.
    pub fn get<Q>(&self, key: &Q) -> Option<(V, Duration)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.inner.clock.now();
        let map = self.map();
        let e = map.get(key)?;
        let age = now.saturating_duration_since(e.stored_at);
        (age <= self.inner.max_age).then(|| (e.value.clone(), age))
    }

    /// What a read of `key` finds now: a fresh value (to serve, or to
    /// refresh early), or a miss with the stale value that may stand in for
    /// a failure. Without a [`Freshness`] every read is a miss.
    pub fn lookup<Q>(&self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(freshness) = self.inner.freshness else {
            return Lookup::Miss {
                stale: self.get(key),
            };
        };
        let now = self.inner.clock.now();
        let map = self.map();
        let Some(e) = map.get(key) else {
            return Lookup::Miss { stale: None };
        };
        let age = now.saturating_duration_since(e.stored_at);
        let u = if freshness.early_refresh().is_some() && now < e.expires_at {
            self.inner.random.f64()
        } else {
            0.0
        };
        match freshness.judge(now, e.expires_at, e.load_time, u) {
            Verdict::Fresh => Lookup::Hit {
                value: e.value.clone(),
                age,
            },
            Verdict::RefreshEarly => Lookup::Refresh {
                value: e.value.clone(),
                age,
            },
            Verdict::Expired => Lookup::Miss {
                stale: (age <= self.inner.max_age).then(|| (e.value.clone(), age)),
            },
        }
    }

    /// Forgets every entry (a cache restart).
    pub fn clear(&self) {
        self.map().clear();
    }

    /// Entries held (fresh or not yet evicted).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
