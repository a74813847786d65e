//! The thundering herd, closures and tower: a thousand callers on a cold
//! key make one load; a cancelled leader hands over with one load in
//! flight at a time; followers wait a bounded time and then get the stale
//! value; errors are shared or not; the metrics count what was merged.
//! Time is a manual clock; loads wait on gates the tests open.
#![cfg(feature = "tower")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rebound::coalesce::{CoalesceError, Coalescer};
use rebound::fallback::{Fallback, Served, StaleCache};
use rebound::freshness::Freshness;
use rebound::tower::coalesce::CoalesceLayer;
use rebound::tower::fallback::StaleCacheLayer;
use rebound::tower::BoxError;
use rebound::{Clock, RandomSource};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_layer::Layer;

const S: Duration = Duration::from_secs(1);

/// A database whose loads wait for the test to open the gate, counting
/// loads started and the most ever in flight at once.
#[derive(Clone, Default)]
struct Db {
    gate: Arc<GateInner>,
}

struct GateInner {
    sem: Semaphore,
    loads: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    fail: std::sync::atomic::AtomicBool,
}

impl Default for GateInner {
    fn default() -> Self {
        GateInner {
            sem: Semaphore::new(0),
            loads: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
            fail: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn key(k: &u8) -> u8 {
    *k
}

fn coalesce_key(k: &u8) -> Option<u8> {
    Some(*k)
}

struct InFlight<'a>(&'a GateInner);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Db {
    async fn load(&self) -> Result<u32, std::io::Error> {
        let g = &*self.gate;
        let n = g.loads.fetch_add(1, Ordering::SeqCst) + 1;
        let now = g.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        g.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let _guard = InFlight(g);
        g.sem.acquire().await.unwrap().forget();
        if g.fail.load(Ordering::SeqCst) {
            Err(std::io::Error::other("db down"))
        } else {
            Ok(n)
        }
    }
    fn open(&self, n: usize) {
        self.gate.sem.add_permits(n);
    }
    fn loads(&self) -> u32 {
        self.gate.loads.load(Ordering::SeqCst)
    }
    fn max_in_flight(&self) -> u32 {
        self.gate.max_in_flight.load(Ordering::SeqCst)
    }
}

/// Yields (boundedly) until `done()` holds.
async fn settle(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("did not settle");
}

fn cache<K: std::hash::Hash + Eq>(clock: &Clock, ttl: Duration) -> StaleCache<K, u32> {
    StaleCache::new(Duration::from_secs(600))
        .with_freshness(Freshness::builder(ttl).jitter(0.2).build().unwrap())
        .with_random(RandomSource::seeded(1))
        .with_clock(clock.clone())
}

/// The counter `counter` and the histogram `histogram`, from one
/// snapshot (a snapshot drains every series).
fn read_metrics(snap: &Snapshotter, counter: &str, histogram: &str) -> (u64, Vec<f64>) {
    let (mut c, mut h) = (0, vec![]);
    for (k, _, _, v) in snap.snapshot().into_vec() {
        match v {
            DebugValue::Counter(n) if k.key().name() == counter => c += n,
            DebugValue::Histogram(xs) if k.key().name() == histogram => {
                h.extend(xs.into_iter().map(|x| x.into_inner()))
            }
            _ => {}
        }
    }
    (c, h)
}

#[tokio::test]
async fn a_thousand_callers_on_a_cold_key_make_one_load() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let (clock, time) = Clock::manual();
    let cache = cache(&clock, 60 * S);
    let herd: Coalescer<&'static str, u32, std::io::Error> =
        Coalescer::new().dependency("catalog").with_clock(clock);
    let fallback = Fallback::builder().dependency("catalog").build();
    let db = Db::default();
    let entered = Arc::new(AtomicU32::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (cache, herd, fallback, db, entered) = (
            cache.clone(),
            herd.clone(),
            fallback.clone(),
            db.clone(),
            entered.clone(),
        );
        readers.spawn(async move {
            entered.fetch_add(1, Ordering::SeqCst);
            fallback
                .read_through(&cache, &herd, "hot", || db.load())
                .await
        });
    }
    settle(|| entered.load(Ordering::SeqCst) == 1000).await;
    assert_eq!(db.loads(), 1, "one caller loads; 999 wait");
    time.advance(S / 10);
    db.open(1);
    let answers = readers.join_all().await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Served::Fresh(1)))),
        "everyone gets the one load's value"
    );
    assert_eq!(db.loads(), 1);
    assert_eq!(herd.in_flight(), 0);
    let (coalesced, followers) = read_metrics(&snap, "coalesced_calls_total", "coalesce_followers");
    assert_eq!(coalesced, 999);
    assert_eq!(followers, vec![999.0], "one leader served 999 followers");

    // Now it is cached: the next read does not load.
    let again = fallback
        .read_through(&cache, &herd, "hot", || db.load())
        .await
        .unwrap();
    assert!(
        matches!(again, Served::Cached { value: 1, .. }),
        "{again:?}"
    );
    assert_eq!(db.loads(), 1);
}

#[tokio::test]
async fn a_cancelled_leader_hands_over_with_one_load_in_flight_at_a_time() {
    let (clock, _time) = Clock::manual();
    let cache = cache(&clock, 60 * S);
    let herd: Coalescer<&'static str, u32, std::io::Error> = Coalescer::new().with_clock(clock);
    let fallback = Fallback::default();
    let db = Db::default();
    let read = |db: Db| {
        let (cache, herd, fallback) = (cache.clone(), herd.clone(), fallback.clone());
        async move {
            fallback
                .read_through(&cache, &herd, "hot", || db.load())
                .await
        }
    };
    let leader = tokio::task::spawn(read(db.clone()));
    settle(|| db.loads() == 1).await;
    let mut followers = tokio::task::JoinSet::new();
    for _ in 0..10 {
        followers.spawn(read(db.clone()));
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(db.loads(), 1, "followers wait while the leader loads");
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // One follower took over: a second load, never two at once.
    settle(|| db.loads() == 2).await;
    db.open(1);
    let answers = followers.join_all().await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Served::Fresh(2)))),
        "{answers:?}"
    );
    assert_eq!(db.loads(), 2);
    assert_eq!(db.max_in_flight(), 1);
}

#[tokio::test]
async fn followers_wait_a_bounded_time_then_get_the_stale_value() {
    let (clock, time) = Clock::manual();
    let cache = cache(&clock, 10 * S);
    let herd: Coalescer<&'static str, u32, std::io::Error> =
        Coalescer::new().max_wait(S / 2).with_clock(clock);
    let fallback = Fallback::default();
    let db = Db::default();
    cache.put("hot", 7);
    time.advance(11 * S); // expired, still young enough to stand in
    let read = || {
        let (cache, herd, fallback, db) =
            (cache.clone(), herd.clone(), fallback.clone(), db.clone());
        async move {
            fallback
                .read_through(&cache, &herd, "hot", || db.load())
                .await
        }
    };
    let leader = tokio::task::spawn(read());
    settle(|| db.loads() == 1).await;
    let follower = tokio::task::spawn(read());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!follower.is_finished(), "it waits for the leader");
    time.advance(S / 2);
    let stale = follower.await.unwrap().unwrap();
    assert_eq!(
        stale,
        Served::Stale {
            value: 7,
            age: 11 * S + S / 2
        }
    );
    assert_eq!(db.loads(), 1, "the follower did not load");
    db.open(1);
    assert_eq!(leader.await.unwrap().unwrap(), Served::Fresh(1));

    // Without a stale value, the wait's end is an error.
    let bare: Coalescer<u8, u8, ()> = Coalescer::new()
        .max_wait(S)
        .with_clock(Clock::from(time.clone()));
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let b = bare.clone();
    let lead = tokio::task::spawn(async move {
        b.run(1, || async move {
            g.acquire().await.unwrap().forget();
            Ok(1)
        })
        .await
    });
    settle(|| bare.in_flight() == 1).await;
    let b = bare.clone();
    let follow = tokio::task::spawn(async move { b.run(1, || async { Ok(2) }).await });
    tokio::task::yield_now().await;
    time.advance(S);
    let err = follow.await.unwrap().unwrap_err();
    assert!(
        matches!(err, CoalesceError::WaitElapsed { waited } if waited == S),
        "{err:?}"
    );
    gate.add_permits(1);
    assert_eq!(lead.await.unwrap().ok(), Some(1));
}

#[tokio::test]
async fn stale_while_loading_serves_followers_at_once() {
    let (clock, time) = Clock::manual();
    let cache = StaleCache::new(600 * S)
        .with_freshness(
            Freshness::builder(10 * S)
                .stale_while_loading(true)
                .build()
                .unwrap(),
        )
        .with_clock(clock.clone());
    let herd: Coalescer<&'static str, u32, std::io::Error> = Coalescer::new().with_clock(clock);
    let fallback = Fallback::default();
    let db = Db::default();
    cache.put("hot", 7);
    time.advance(10 * S);
    let (c, h, f, d) = (cache.clone(), herd.clone(), fallback.clone(), db.clone());
    let leader =
        tokio::task::spawn(async move { f.read_through(&c, &h, "hot", || d.load()).await });
    settle(|| db.loads() == 1).await;
    let meanwhile = fallback
        .read_through(&cache, &herd, "hot", || db.load())
        .await
        .unwrap();
    assert_eq!(
        meanwhile,
        Served::Stale {
            value: 7,
            age: 10 * S
        }
    );
    db.open(1);
    assert_eq!(leader.await.unwrap().unwrap(), Served::Fresh(1));
    assert_eq!(db.loads(), 1);
}

#[tokio::test]
async fn errors_are_shared_or_not_by_choice() {
    for share in [true, false] {
        let db = Db::default();
        db.gate.fail.store(true, Ordering::SeqCst);
        let herd: Coalescer<u8, u32, std::io::Error> = Coalescer::new().share_errors(share);
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let (herd, db) = (herd.clone(), db.clone());
            callers.spawn(async move { herd.run(1, || db.load()).await });
        }
        settle(|| db.loads() == 1).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        db.open(1);
        if share {
            let all = callers.join_all().await;
            assert!(all
                .iter()
                .all(|r| r.as_ref().unwrap_err().failed().is_some()));
            assert_eq!(db.loads(), 1, "one failure, shared by all five");
        } else {
            // The leader keeps its error; a follower loads again, and
            // succeeds; the rest follow it.
            settle(|| db.loads() == 2).await;
            db.gate.fail.store(false, Ordering::SeqCst);
            db.open(1);
            let all = callers.join_all().await;
            assert_eq!(all.iter().filter(|r| r.is_err()).count(), 1);
            assert_eq!(all.iter().filter(|r| matches!(r, Ok(2))).count(), 4);
            assert_eq!(db.loads(), 2);
            assert_eq!(db.max_in_flight(), 1);
        }
    }
}

const HOT: u8 = 1;
const COLD: u8 = 2;

fn tower_db(
    db: Db,
) -> impl tower::Service<u8, Response = u32, Error = BoxError, Future: Send> + Clone + Send + 'static
{
    tower::service_fn(move |_: u8| {
        let db = db.clone();
        async move { db.load().await.map_err(BoxError::from) }
    })
}

#[tokio::test]
async fn the_tower_stack_makes_one_load_for_a_thousand_and_then_serves_hits() {
    let (clock, time) = Clock::manual();
    let cache = cache(&clock, 60 * S);
    let db = Db::default();
    let svc = StaleCacheLayer::new(Fallback::default(), cache.clone(), key).layer(
        CoalesceLayer::new(Coalescer::new().with_clock(clock), coalesce_key)
            .layer(tower_db(db.clone())),
    );
    let entered = Arc::new(AtomicU32::new(0));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (svc, entered) = (svc.clone(), entered.clone());
        calls.spawn(async move {
            entered.fetch_add(1, Ordering::SeqCst);
            svc.oneshot(HOT).await
        });
    }
    settle(|| entered.load(Ordering::SeqCst) == 1000).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(db.loads(), 1);
    db.open(1);
    for answer in calls.join_all().await {
        assert_eq!(answer.unwrap(), 1);
    }
    // A hit: the inner service is not called.
    time.advance(30 * S);
    assert_eq!(svc.clone().oneshot(HOT).await.unwrap(), 1);
    assert_eq!(db.loads(), 1);
    // Expired (the jittered TTL is at most 60 s): loads again.
    time.advance(31 * S);
    let next = tokio::spawn(svc.clone().oneshot(HOT));
    settle(|| db.loads() == 2).await;
    db.open(1);
    assert_eq!(next.await.unwrap().unwrap(), 2);
}

#[tokio::test]
async fn the_tower_layer_shares_errors_and_bounds_the_wait_with_the_stale_value() {
    let (clock, time) = Clock::manual();
    let cache = cache(&clock, 10 * S);
    let db = Db::default();
    let svc = StaleCacheLayer::new(Fallback::default(), cache.clone(), key).layer(
        CoalesceLayer::new(Coalescer::new().max_wait(S).with_clock(clock), coalesce_key)
            .layer(tower_db(db.clone())),
    );
    cache.put(HOT, 7);
    time.advance(20 * S);
    let leader = tokio::spawn(svc.clone().oneshot(HOT));
    settle(|| db.loads() == 1).await;
    let follower = tokio::spawn(svc.clone().oneshot(HOT));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    time.advance(S);
    assert_eq!(follower.await.unwrap().unwrap(), 7, "stale after the wait");
    db.gate.fail.store(true, Ordering::SeqCst);
    db.open(1);
    assert_eq!(
        leader.await.unwrap().unwrap(),
        7,
        "stale on the shared error"
    );

    // Without a cache, the error comes back shared.
    let bare = CoalesceLayer::new(Coalescer::new(), coalesce_key).layer(tower_db(db.clone()));
    db.open(1);
    let err = bare.oneshot(COLD).await.unwrap_err();
    let shared = err
        .downcast_ref::<rebound::tower::coalesce::error::SharedError>()
        .expect("a shared error");
    assert_eq!(shared.inner().to_string(), "db down");
}

#[tokio::test]
async fn the_tower_layer_hands_over_from_a_cancelled_leader() {
    let db = Db::default();
    let svc = CoalesceLayer::new(Coalescer::new(), coalesce_key).layer(tower_db(db.clone()));
    let leader = tokio::spawn(svc.clone().oneshot(HOT));
    settle(|| db.loads() == 1).await;
    let mut followers = tokio::task::JoinSet::new();
    for _ in 0..10 {
        followers.spawn(svc.clone().oneshot(HOT));
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(db.loads(), 1);
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    settle(|| db.loads() == 2).await;
    db.open(1);
    for answer in followers.join_all().await {
        assert_eq!(answer.unwrap(), 2);
    }
    assert_eq!(db.loads(), 2);
    assert_eq!(db.max_in_flight(), 1, "one load in flight at a time");
}
