//! Fallbacks: which causes they cover, the stale-on-error cache and its
//! freshness rule, and `fallback_used_total`.
#![cfg(feature = "tokio")]

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rebound::fallback::{Cause, Fallback, HasCause, Served, StaleCache};
use rebound::pipeline::Pipeline;
use rebound::{Bulkhead, CircuitBreaker, Clock, RetryBudget, RetryPolicy, Stop};

#[tokio::test(start_paused = true)]
async fn each_cause_is_recognised() {
    let cb = CircuitBreaker::builder().build().unwrap();
    cb.isolate();
    let p = Pipeline::builder()
        .retry(RetryPolicy::default())
        .circuit_breaker(cb)
        .build()
        .unwrap();
    let err = p.execute(|| async { Ok::<_, ()>(1) }).await.unwrap_err();
    assert_eq!(err.cause(), Cause::BreakerOpen);

    let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let _held = b.try_acquire().unwrap();
    let err = Pipeline::builder()
        .bulkhead(b)
        .build()
        .unwrap()
        .execute(|| async { Ok::<_, ()>(1) })
        .await
        .unwrap_err();
    assert_eq!(err.cause(), Cause::BulkheadFull);

    let (clock, _t) = Clock::manual();
    let budget = RetryBudget::ratio(0.0)
        .min_retries_per_second(0.0)
        .clock(clock)
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .budget(budget)
        .backoff(rebound::Backoff::constant(Duration::ZERO))
        .build()
        .unwrap();
    let err = policy
        .retry(|| async { Err::<(), _>("503") })
        .await
        .unwrap_err();
    assert_eq!(err.stop(), Stop::BudgetExhausted);
    assert_eq!(err.cause(), Cause::BudgetExhausted);

    let p = Pipeline::builder()
        .timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let err = p
        .execute(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, ()>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.cause(), Cause::Timeout);
}

#[test]
fn only_covered_causes_fall_back_and_uses_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let fallback = Fallback::builder()
            .dependency("inventory")
            .except(Cause::Failed)
            .build();
        let open = CircuitBreaker::builder().build().unwrap();
        open.isolate();
        let r = fallback.call(open.call(|| Ok::<_, ()>("live")), |_| {
            Some("limited availability")
        });
        assert_eq!(r.ok(), Some("limited availability"));
        let closed = CircuitBreaker::builder().build().unwrap();
        let r = fallback.call(closed.call(|| Err::<&str, _>("500")), |_| Some("never"));
        assert!(r.is_err(), "a plain failure is not covered");
        // The fallback may decline, and then the error passes.
        let r = fallback.call(open.call(|| Ok::<_, ()>("live")), |_| None);
        assert!(r.is_err());
    });
    let used: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == "fallback_used_total")
        .collect();
    assert_eq!(used.len(), 1);
    let (key, _, _, value) = &used[0];
    assert_eq!(value, &DebugValue::Counter(1));
    let labels: Vec<_> = key
        .key()
        .labels()
        .map(|l| (l.key().to_string(), l.value().to_string()))
        .collect();
    assert!(labels.contains(&("dependency".into(), "inventory".into())));
    assert!(labels.contains(&("reason".into(), "breaker_open".into())));
}

#[tokio::test]
async fn stale_values_are_served_only_while_fresh_enough() {
    let (clock, time) = Clock::manual();
    let cache: StaleCache<String, u32> = StaleCache::new(Duration::from_secs(30)).with_clock(clock);
    let fallback = Fallback::default();
    let down = || async { Err::<u32, _>(rebound::BulkheadFull::clone(&full())) };

    // Nothing cached yet: the error passes.
    assert!(fallback.with_stale(&cache, "sku", down()).await.is_err());
    let fresh = fallback
        .with_stale(&cache, "sku", async { Ok::<_, rebound::BulkheadFull>(5) })
        .await;
    assert_eq!(fresh, Ok(Served::Fresh(5)));
    time.advance(Duration::from_secs(30));
    let stale = fallback.with_stale(&cache, "sku", down()).await.unwrap();
    assert_eq!(
        stale,
        Served::Stale {
            value: 5,
            age: Duration::from_secs(30)
        }
    );
    assert!(stale.is_stale());
    time.advance(Duration::from_millis(1));
    assert!(
        fallback.with_stale(&cache, "sku", down()).await.is_err(),
        "too old"
    );
}

fn full() -> rebound::BulkheadFull {
    let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let _p = b.try_acquire().unwrap();
    b.try_acquire().unwrap_err()
}

#[test]
fn the_cache_is_bounded() {
    let cache = StaleCache::new(Duration::from_secs(60)).with_max_entries(2);
    cache.put(1, "a");
    cache.put(2, "b");
    cache.put(3, "c");
    assert!(cache.len() <= 2);
    assert!(cache.get(&3).is_some());
}
