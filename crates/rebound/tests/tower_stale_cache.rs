//! The stale-on-error cache as a tower layer: what it keeps, when it
//! answers (which causes, how old), and `fallback_used_total`.
#![cfg(feature = "tower")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use rebound::fallback::{Cause, Fallback, StaleCache};
use rebound::tower::breaker::BreakerLayer;
use rebound::tower::bulkhead::BulkheadLayer;
use rebound::tower::fallback::StaleCacheLayer;
use rebound::tower::retry::RetryLayer;
use rebound::tower::timeout::TimeoutLayer;
use rebound::tower::BoxError;
use rebound::{
    Backoff, Bulkhead, CircuitBreaker, Clock, Decision, ManualClock, Outcome, RetryBudget,
    RetryPolicy,
};
use tower_layer::Layer;
use tower_service::Service;

const S: Duration = Duration::from_secs(1);

/// A dependency whose next answer the test sets.
#[derive(Clone)]
struct Dependency(Arc<Mutex<Result<u16, &'static str>>>);

impl Dependency {
    fn new() -> Self {
        Dependency(Arc::new(Mutex::new(Ok(200))))
    }
    fn answer(&self, r: Result<u16, &'static str>) {
        *self.0.lock().unwrap() = r;
    }
    fn service(
        &self,
    ) -> impl Service<&'static str, Response = u16, Error = BoxError, Future: Send>
           + Clone
           + Send
           + 'static {
        let next = self.0.clone();
        tower::service_fn(move |_: &'static str| {
            let r = *next.lock().unwrap();
            async move { r.map_err(BoxError::from) }
        })
    }
}

fn cache(max_age: Duration) -> (StaleCache<&'static str, u16>, ManualClock) {
    let (clock, time) = Clock::manual();
    (StaleCache::new(max_age).with_clock(clock), time)
}

fn key(req: &&'static str) -> &'static str {
    req
}

async fn call<S>(svc: &mut S, req: &'static str) -> Result<u16, BoxError>
where
    S: Service<&'static str, Response = u16, Error = BoxError>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

fn uses(snap: &Snapshotter, reason: &str) -> u64 {
    snap.snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| {
            k.kind() == MetricKind::Counter
                && k.key().name() == "fallback_used_total"
                && k.key()
                    .labels()
                    .any(|l| l.key() == "reason" && l.value() == reason)
                && k.key()
                    .labels()
                    .any(|l| l.key() == "dependency" && l.value() == "inventory")
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(c) => c,
            _ => 0,
        })
        .sum()
}

fn fallback() -> Fallback {
    Fallback::builder().dependency("inventory").build()
}

#[tokio::test]
async fn a_good_response_is_kept_and_served_only_while_fresh_enough() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let dep = Dependency::new();
    let (cache, time) = cache(60 * S);
    let layer = StaleCacheLayer::new(fallback(), cache.clone(), key);
    let mut svc = layer.layer(dep.service());

    // Nothing kept yet: the error passes.
    dep.answer(Err("connection refused"));
    let err = call(&mut svc, "sku-1").await.unwrap_err();
    assert_eq!(err.to_string(), "connection refused");

    dep.answer(Ok(12));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 12);
    assert_eq!(cache.len(), 1);

    dep.answer(Err("connection refused"));
    time.advance(60 * S);
    assert_eq!(
        call(&mut svc, "sku-1").await.unwrap(),
        12,
        "60 s old: served"
    );
    assert_eq!(uses(&snap, "failed"), 1);

    // Keys are apart: another request has nothing to fall back on.
    assert!(call(&mut svc, "sku-2").await.is_err());

    time.advance(Duration::from_millis(1));
    assert!(call(&mut svc, "sku-1").await.is_err(), "too old");
    assert_eq!(uses(&snap, "failed"), 0, "not counted when not used");

    // A new good answer replaces the old one, and restarts its age.
    dep.answer(Ok(13));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 13);
    dep.answer(Err("connection refused"));
    time.advance(30 * S);
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 13);
}

#[tokio::test(start_paused = true)]
async fn refusals_and_timeouts_are_answered_from_the_cache() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let dep = Dependency::new();

    // An open breaker.
    let cb = CircuitBreaker::builder().build().unwrap();
    let (c, _time) = cache(60 * S);
    let mut svc = StaleCacheLayer::new(fallback(), c, key)
        .layer(BreakerLayer::new(cb.clone()).layer(dep.service()));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    cb.isolate();
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    assert_eq!(uses(&snap, "breaker_open"), 1);

    // A full bulkhead.
    let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let (c, _time) = cache(60 * S);
    let mut svc = StaleCacheLayer::new(fallback(), c, key)
        .layer(BulkheadLayer::new(b.clone()).layer(dep.service()));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    let _held = b.try_acquire().unwrap();
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    assert_eq!(uses(&snap, "bulkhead_full"), 1);

    // An exhausted retry budget.
    let (clock, _t) = Clock::manual();
    let budget = RetryBudget::ratio(0.0)
        .min_retries_per_second(0.0)
        .clock(clock)
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .budget(budget)
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .unwrap();
    let (c, _time) = cache(60 * S);
    let mut svc = StaleCacheLayer::new(fallback(), c, key)
        .layer(RetryLayer::new(policy).layer(dep.service()));
    dep.answer(Ok(201));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 201);
    dep.answer(Err("503"));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 201);
    assert_eq!(uses(&snap, "budget"), 1);

    // A timeout.
    let slow = tower::service_fn(|_: &'static str| async {
        tokio::time::sleep(S).await;
        Ok::<u16, BoxError>(202)
    });
    let (c, _time) = cache(60 * S);
    c.put("sku-1", 200);
    let mut svc = StaleCacheLayer::new(fallback(), c, key).layer(
        TimeoutLayer::new(Duration::from_millis(10))
            .unwrap()
            .layer(slow),
    );
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    assert_eq!(uses(&snap, "timeout"), 1);
}

#[tokio::test]
async fn causes_the_fallback_does_not_cover_pass_the_error() {
    let dep = Dependency::new();
    let cb = CircuitBreaker::builder().build().unwrap();
    let (c, _time) = cache(60 * S);
    let only_open = Fallback::builder().only(&[Cause::BreakerOpen]).build();
    let mut svc = StaleCacheLayer::new(only_open, c, key)
        .layer(BreakerLayer::new(cb.clone()).layer(dep.service()));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    dep.answer(Err("500"));
    let err = call(&mut svc, "sku-1").await.unwrap_err();
    assert_eq!(err.to_string(), "500", "a plain failure is not covered");
    cb.isolate();
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
}

#[tokio::test]
async fn a_bad_response_is_not_kept_and_is_replaced_by_a_good_one() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let dep = Dependency::new();
    let (c, time) = cache(60 * S);
    let layer = StaleCacheLayer::new(fallback(), c.clone(), key).classify(
        |o: Outcome<'_, u16, BoxError>| match o {
            Outcome::Ok(s) if *s >= 500 => Decision::Retry,
            Outcome::Ok(_) => Decision::DoNotRetry,
            _ => Decision::Retry,
        },
    );
    let mut svc = layer.layer(dep.service());

    // Nothing to replace it with: the 503 comes back as it is.
    dep.answer(Ok(503));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 503);
    assert!(c.is_empty(), "a 503 is not kept");

    dep.answer(Ok(200));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    time.advance(10 * S);
    dep.answer(Ok(503));
    assert_eq!(call(&mut svc, "sku-1").await.unwrap(), 200);
    assert_eq!(uses(&snap, "failed"), 1);
    assert_eq!(
        c.get("sku-1"),
        Some((200, 10 * S)),
        "the 503 did not replace it"
    );
}

#[tokio::test]
async fn stale_answers_can_be_marked_with_their_age() {
    let next: Arc<Mutex<Result<&'static str, &'static str>>> = Arc::new(Mutex::new(Ok("fresh")));
    let inner = {
        let next = next.clone();
        tower::service_fn(move |_: u32| {
            let r = *next.lock().unwrap();
            async move {
                r.map(|body| (body, None::<Duration>))
                    .map_err(BoxError::from)
            }
        })
    };
    let (clock, time) = Clock::manual();
    let cache = StaleCache::new(60 * S).with_clock(clock);
    let layer = StaleCacheLayer::new(Fallback::default(), cache, |id: &u32| *id)
        .on_stale(|(_, age): &mut (&str, Option<Duration>), a| *age = Some(a));
    assert_eq!(layer.cache().max_age(), 60 * S);
    let mut svc = layer.layer(inner);
    assert_eq!(svc.call(1).await.unwrap(), ("fresh", None));
    *next.lock().unwrap() = Err("down");
    time.advance(20 * S);
    assert_eq!(svc.call(1).await.unwrap(), ("fresh", Some(20 * S)));
    assert_eq!(svc.cache().len(), 1);
}
