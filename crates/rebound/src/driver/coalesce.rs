//! Request coalescing: many identical calls in flight, one execution.
//!
//! Seed 003's thundering herd: a popular cache entry expires and a thousand
//! requests for it miss at once; each calls the database, which falls over
//! under a thousand copies of the same query. A [`Coalescer`] lets the
//! first caller for a key (the *leader*) run the call while every other
//! caller with the same key waits for the leader's result ("single flight").
//!
//! * **Everyone gets the result**, value or error. Values are cloned to each
//!   waiter (wrap large ones in `Arc`); errors are shared as `Arc<E>`, so
//!   your error type needs no `Clone`.
//! * **A cancelled leader hands over.** If the leader's future is dropped
//!   before it finishes (its client went away, a timeout fired), one of the
//!   waiters becomes the leader and runs *its own* call; the others keep
//!   waiting. Nobody gets an error because someone else gave up.
//! * **Only concurrent calls are merged.** When the call finishes the key is
//!   forgotten; the next caller starts a new call. (Caching results is a
//!   cache's job, not this one.)
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rebound::coalesce::Coalescer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let herd: Coalescer<&str, u32, std::io::Error> = Coalescer::new();
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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Shares one in-flight call among concurrent callers with the same key.
/// Cheap to clone; clones share the calls in flight. See the [module
/// docs](self).
pub struct Coalescer<K, T, E> {
    flights: Arc<Flights<K, T, E>>,
}

impl<K, T, E> Clone for Coalescer<K, T, E> {
    fn clone(&self) -> Self {
        Coalescer {
            flights: Arc::clone(&self.flights),
        }
    }
}

impl<K, T, E> Default for Coalescer<K, T, E> {
    fn default() -> Self {
        Coalescer {
            flights: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K, T, E> fmt::Debug for Coalescer<K, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescer")
            .field("in_flight", &lock(&self.flights).len())
            .finish()
    }
}

type Flights<K, T, E> = Mutex<HashMap<K, Arc<Flight<T, E>>>>;

struct Flight<T, E> {
    state: Mutex<FlightState<T, E>>,
    changed: Notify,
}

enum FlightState<T, E> {
    Running,
    Done(Result<T, Arc<E>>),
    Abandoned,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ends a leader's flight however its future ends: with the result, or —
/// if it was dropped first — abandoned, so a waiter takes over.
struct Leader<'a, K: Hash + Eq, T, E> {
    coalescer: &'a Coalescer<K, T, E>,
    key: Option<K>,
    flight: Arc<Flight<T, E>>,
}

impl<K: Hash + Eq, T, E> Leader<'_, K, T, E> {
    fn finish(&mut self, state: FlightState<T, E>) {
        let Some(key) = self.key.take() else { return };
        {
            let mut flights = lock(&self.coalescer.flights);
            if flights
                .get(&key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                flights.remove(&key);
            }
        }
        *lock(&self.flight.state) = state;
        self.flight.changed.notify_waiters();
    }
}

impl<K: Hash + Eq, T, E> Drop for Leader<'_, K, T, E> {
    fn drop(&mut self) {
        self.finish(FlightState::Abandoned);
    }
}

impl<K, T, E> Coalescer<K, T, E>
where
    K: Hash + Eq + Clone,
    T: Clone,
{
    /// An empty coalescer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).len()
    }

    /// Runs `op` for `key`, unless a call for `key` is already in flight, in
    /// which case waits for that call's result instead. `op` is called at
    /// most once, and only by the leader (the first caller, or the waiter
    /// that takes over from a cancelled leader).
    pub async fn run<F, Fut>(&self, key: K, op: F) -> Result<T, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        loop {
            let (flight, leading) = {
                let mut flights = lock(&self.flights);
                match flights.get(&key) {
                    Some(f) => (Arc::clone(f), false),
                    None => {
                        let f = Arc::new(Flight {
                            state: Mutex::new(FlightState::Running),
                            changed: Notify::new(),
                        });
                        flights.insert(key.clone(), Arc::clone(&f));
                        (f, true)
                    }
                }
            };
            if leading {
                let mut leader = Leader {
                    coalescer: self,
                    key: Some(key),
                    flight,
                };
                let result = op().await.map_err(Arc::new);
                leader.finish(FlightState::Done(result.clone()));
                return result;
            }
            // A follower: wait until the flight ends.
            loop {
                let notified = flight.changed.notified();
                tokio::pin!(notified);
                // Registered before looking, so a finish in between wakes us.
                notified.as_mut().enable();
                match &*lock(&flight.state) {
                    FlightState::Running => {}
                    FlightState::Done(r) => return r.clone(),
                    FlightState::Abandoned => break,
                }
                notified.await;
            }
            // The leader was cancelled: try to lead (or follow the new one).
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_keys_are_forgotten() {
        let c: Coalescer<u8, u8, ()> = Coalescer::new();
        assert_eq!(c.run(1, || async { Ok(5) }).await, Ok(5));
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.run(1, || async { Ok(6) }).await, Ok(6));
    }
}
