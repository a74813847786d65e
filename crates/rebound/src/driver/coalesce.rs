//! Request coalescing: many identical calls in flight, one execution.
//!
//! The thundering herd: a popular cache entry expires and a thousand
//! requests for it miss at once; each calls the database, which falls over
//! under a thousand copies of the same query. Backoff does not help (nobody
//! failed yet); what helps is making the copies one. A [`Coalescer`] lets
//! the first caller for a key (the *leader*) run the call while every other
//! caller with the same key (a *follower*) waits for the leader's result
//! ("single flight", as in Go's `golang.org/x/sync/singleflight`).
//!
//! * **Everyone gets the result**, value or error. Values are cloned to each
//!   follower (wrap large ones in `Arc`); errors are shared as `Arc<E>`, so
//!   your error type needs no `Clone`. With
//!   [`share_errors(false)`](Coalescer::share_errors) a failed leader keeps
//!   its error to itself and one follower calls again (its followers wait
//!   for it in turn): one failure then does not fail the whole herd.
//! * **A cancelled leader hands over.** If the leader's future is dropped
//!   before it finishes (its client went away, a timeout fired), one of the
//!   followers becomes the leader and runs *its own* call; the others keep
//!   waiting. Nobody gets an error because someone else gave up, and only
//!   one call per key is in flight at a time.
//! * **Followers wait a bounded time**, when you say so:
//!   [`max_wait`](Coalescer::max_wait) makes a follower give up with
//!   [`CoalesceError::WaitElapsed`] (a stale-on-error cache then answers
//!   with what it has), measured on the coalescer's [`Clock`].
//! * **Only concurrent calls are merged.** When the call finishes the key is
//!   forgotten; the next caller starts a new call. (Keeping results is a
//!   cache's job: see [`Fallback::read_through`](crate::fallback::Fallback::read_through),
//!   which puts the two together.)
//!
//! Metrics (with the coalescer's `dependency` label):
//! `coalesced_calls_total` counts the followers that got a leader's
//! result instead of calling; `coalesce_followers` is a histogram of the
//! followers each leader's call served.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rebound::coalesce::Coalescer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let herd: Coalescer<&str, u32, std::io::Error> = Coalescer::new().dependency("catalog");
//! let queries = Arc::new(AtomicU32::new(0));
//! let mut lookups = tokio::task::JoinSet::new();
//! for _ in 0..100 {
//!     let (herd, queries) = (herd.clone(), Arc::clone(&queries));
//!     lookups.spawn(async move {
//!         herd.run("popular-product", || async {
//!             queries.fetch_add(1, Ordering::Relaxed);
//!             tokio::time::sleep(Duration::from_millis(20)).await;
//!             Ok(42)
//!         })
//!         .await
//!     });
//! }
//! let answers = lookups.join_all().await;
//! assert!(answers.iter().all(|a| matches!(a, Ok(42))));
//! assert_eq!(queries.load(Ordering::Relaxed), 1);
//! # }
//! ```

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::telemetry::{self, CounterKey, HistogramKey};
use crate::Clock;

/// Why a coalesced call gave no value.
#[derive(Debug)]
pub enum CoalesceError<E> {
    /// The call failed: the leader's error, shared by everyone it served
    /// (or this caller's own, when errors are not shared).
    Failed(Arc<E>),
    /// This caller followed another's call for longer than the coalescer's
    /// [`max_wait`](Coalescer::max_wait), and gave up.
    WaitElapsed {
        /// How long it waited.
        waited: Duration,
    },
}

impl<E> Clone for CoalesceError<E> {
    fn clone(&self) -> Self {
        match self {
            CoalesceError::Failed(e) => CoalesceError::Failed(Arc::clone(e)),
            CoalesceError::WaitElapsed { waited } => CoalesceError::WaitElapsed { waited: *waited },
        }
    }
}

impl<E> CoalesceError<E> {
    /// The call's error, if the call failed (rather than the wait).
    pub fn failed(&self) -> Option<&Arc<E>> {
        match self {
            CoalesceError::Failed(e) => Some(e),
            CoalesceError::WaitElapsed { .. } => None,
        }
    }

    /// Whether the follower's wait ran out.
    pub fn is_wait_elapsed(&self) -> bool {
        matches!(self, CoalesceError::WaitElapsed { .. })
    }
}

impl<E: fmt::Display> fmt::Display for CoalesceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoalesceError::Failed(e) => e.fmt(f),
            CoalesceError::WaitElapsed { waited } => {
                write!(
                    f,
                    "waited {waited:?} for a coalesced call, which had not finished"
                )
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CoalesceError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CoalesceError::Failed(e) => Some(&**e),
            CoalesceError::WaitElapsed { .. } => None,
        }
    }
}

/// Shares one in-flight call among concurrent callers with the same key.
/// Cheap to clone; clones share the calls in flight. Configure it (the
/// `with`-style setters) before sharing it. See the [module docs](self).
pub struct Coalescer<K, T, E> {
    inner: Arc<Inner<K, T, E>>,
}

struct Inner<K, T, E> {
    flights: Mutex<Table<K, T, E>>,
    dependency: Arc<str>,
    max_wait: Option<Duration>,
    share_errors: bool,
    clock: Clock,
    coalesced: CounterKey,
    followers: HistogramKey,
}

impl<K, T, E> Clone for Coalescer<K, T, E> {
    fn clone(&self) -> Self {
        Coalescer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, T, E> Default for Coalescer<K, T, E> {
    fn default() -> Self {
        let dependency: Arc<str> = Arc::from("default");
        Coalescer {
            inner: Arc::new(Inner {
                flights: Mutex::new(Table::default()),
                coalesced: CounterKey::hosted(
                    telemetry::COALESCED_CALLS_TOTAL,
                    &dependency,
                    None,
                    None,
                ),
                followers: HistogramKey::new(telemetry::COALESCE_FOLLOWERS, &dependency),
                dependency,
                max_wait: None,
                share_errors: true,
                clock: Clock::default(),
            }),
        }
    }
}

impl<K, T, E> fmt::Debug for Coalescer<K, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescer")
            .field("dependency", &self.inner.dependency)
            .field("max_wait", &self.inner.max_wait)
            .field("share_errors", &self.inner.share_errors)
            .field("in_flight", &lock(&self.inner.flights).map.len())
            .finish()
    }
}

/// The calls in flight, by key.
struct Table<K, T, E> {
    map: HashMap<K, Slot<T, E>>,
    next_gen: u64,
}

impl<K, T, E> Default for Table<K, T, E> {
    fn default() -> Self {
        Table {
            map: HashMap::new(),
            next_gen: 0,
        }
    }
}

/// One call in flight: which leader's, how many follow it, and where they
/// wait (made by the first follower, so a lone call allocates nothing).
struct Slot<T, E> {
    gen: u64,
    followers: u32,
    flight: Option<Arc<Flight<T, E>>>,
}

struct Flight<T, E> {
    state: Mutex<FlightState<T, E>>,
    changed: Notify,
}

enum FlightState<T, E> {
    Running,
    Done(Result<T, Arc<E>>),
    /// The leader was cancelled, or failed and keeps its error: a follower
    /// calls again.
    Abandoned,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A closed call: its followers, and where they wait.
type Closed<T, E> = (u32, Option<Arc<Flight<T, E>>>);

/// Ends a leader's flight however its future ends: with the result, or —
/// if it was dropped first — abandoned, so a follower takes over.
struct Leader<'a, K: Hash + Eq, T, E> {
    inner: &'a Inner<K, T, E>,
    key: Option<K>,
    gen: u64,
}

impl<K: Hash + Eq, T, E> Leader<'_, K, T, E> {
    /// Forgets the call's key (no one joins it after this) and tells how
    /// many followers it has, and where they wait; `None` if already done.
    fn close(&mut self) -> Option<Closed<T, E>> {
        let key = self.key.take()?;
        let mut table = lock(&self.inner.flights);
        // Followers join under the table's lock: the count is final.
        let slot = table.map.remove(&key)?;
        if slot.gen == self.gen {
            return Some((slot.followers, slot.flight));
        }
        // Not ours (cannot happen: only a leader removes its key): put back.
        table.map.insert(key, slot);
        Some((0, None))
    }
}

impl<K: Hash + Eq, T, E> Drop for Leader<'_, K, T, E> {
    fn drop(&mut self) {
        if let Some((_, Some(flight))) = self.close() {
            *lock(&flight.state) = FlightState::Abandoned;
            flight.changed.notify_waiters();
        }
    }
}

impl<K, T, E> Coalescer<K, T, E>
where
    K: Hash + Eq + Clone,
    T: Clone,
{
    /// An empty coalescer: errors shared, followers wait as long as the
    /// leader takes, dependency `"default"`, the default [`Clock`].
    pub fn new() -> Self {
        Self::default()
    }

    fn rebuild(self, f: impl FnOnce(&mut Inner<K, T, E>)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(i) => i,
            Err(shared) => Inner {
                flights: Mutex::new(Table::default()),
                dependency: Arc::clone(&shared.dependency),
                max_wait: shared.max_wait,
                share_errors: shared.share_errors,
                clock: shared.clock.clone(),
                coalesced: shared.coalesced.clone(),
                followers: shared.followers.clone(),
            },
        };
        f(&mut inner);
        Coalescer {
            inner: Arc::new(inner),
        }
    }

    /// The `dependency` label of the coalescer's metrics. Default
    /// `"default"`.
    #[must_use]
    pub fn dependency(self, name: impl Into<Arc<str>>) -> Self {
        self.rebuild(|i| {
            i.dependency = name.into();
            i.coalesced =
                CounterKey::hosted(telemetry::COALESCED_CALLS_TOTAL, &i.dependency, None, None);
            i.followers = HistogramKey::new(telemetry::COALESCE_FOLLOWERS, &i.dependency);
        })
    }

    /// The longest a follower waits for the call it follows, handovers
    /// included; then it gets [`CoalesceError::WaitElapsed`]. Default: no
    /// limit (the leader's own timeout bounds the wait).
    #[must_use]
    pub fn max_wait(self, limit: Duration) -> Self {
        self.rebuild(|i| i.max_wait = Some(limit))
    }

    /// Whether followers share a failed leader's error. Default `true`.
    /// With `false`, a leader's error goes to the leader alone and one
    /// follower calls again, the others following it.
    #[must_use]
    pub fn share_errors(self, share: bool) -> Self {
        self.rebuild(|i| i.share_errors = share)
    }

    /// The clock followers' waits are measured on. Default
    /// [`Clock::default`].
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        self.rebuild(|i| i.clock = clock)
    }

    /// The dependency label.
    pub fn dependency_name(&self) -> &str {
        &self.inner.dependency
    }

    /// The clock waits are measured on.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.flights).map.len()
    }

    /// Whether a call for `key` is in flight now.
    pub fn is_in_flight(&self, key: &K) -> bool {
        lock(&self.inner.flights).map.contains_key(key)
    }

    /// Runs `op` for `key`, unless a call for `key` is already in flight, in
    /// which case waits for that call's result instead. `op` is called at
    /// most once, and only by a leader (the first caller, or the follower
    /// that takes over from a cancelled leader, or from a failed one when
    /// errors are not shared).
    pub async fn run<F, Fut>(&self, key: K, op: F) -> Result<T, CoalesceError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut started: Option<Instant> = None;
        loop {
            let joined = {
                let mut table = lock(&self.inner.flights);
                let next_gen = table.next_gen;
                match table.map.entry(key.clone()) {
                    Entry::Occupied(mut slot) => {
                        let slot = slot.get_mut();
                        slot.followers += 1;
                        let f = slot.flight.get_or_insert_with(|| {
                            Arc::new(Flight {
                                state: Mutex::new(FlightState::Running),
                                changed: Notify::new(),
                            })
                        });
                        Err(Arc::clone(f))
                    }
                    Entry::Vacant(v) => {
                        v.insert(Slot {
                            gen: next_gen,
                            followers: 0,
                            flight: None,
                        });
                        table.next_gen = next_gen.wrapping_add(1);
                        Ok(next_gen)
                    }
                }
            };
            let flight = match joined {
                Ok(gen) => {
                    let mut leader = Leader {
                        inner: &self.inner,
                        key: Some(key),
                        gen,
                    };
                    let result = op().await.map_err(Arc::new);
                    if let Some((served, flight)) = leader.close() {
                        if result.is_ok() || self.inner.share_errors {
                            self.inner.followers.record(f64::from(served));
                        }
                        if let Some(flight) = flight {
                            *lock(&flight.state) = match &result {
                                Err(_) if !self.inner.share_errors => FlightState::Abandoned,
                                r => FlightState::Done(r.clone()),
                            };
                            flight.changed.notify_waiters();
                        }
                    }
                    return result.map_err(CoalesceError::Failed);
                }
                Err(flight) => flight,
            };
            // A follower: wait until the flight ends, or the bound.
            let start = *started.get_or_insert_with(|| self.inner.clock.now());
            let mut timer = self
                .inner
                .max_wait
                .map(|w| Box::pin(self.inner.clock.timer(start + w)));
            loop {
                let mut notified = pin!(flight.changed.notified());
                // Registered before looking, so a finish in between wakes us.
                notified.as_mut().enable();
                match &*lock(&flight.state) {
                    FlightState::Running => {}
                    FlightState::Done(r) => {
                        self.inner.coalesced.incr();
                        return r.clone().map_err(CoalesceError::Failed);
                    }
                    FlightState::Abandoned => break,
                }
                match timer.as_mut() {
                    None => notified.await,
                    Some(t) => {
                        tokio::select! {
                            biased;
                            () = &mut notified => {}
                            () = t => {
                                return Err(CoalesceError::WaitElapsed {
                                    waited: self.inner.clock.now().saturating_duration_since(start),
                                });
                            }
                        }
                    }
                }
            }
            // The leader was cancelled (or kept its error): try to lead, or
            // follow the new leader.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_keys_are_forgotten() {
        let c: Coalescer<u8, u8, ()> = Coalescer::new();
        assert_eq!(c.run(1, || async { Ok(5) }).await.ok(), Some(5));
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.run(1, || async { Ok(6) }).await.ok(), Some(6));
    }
}
