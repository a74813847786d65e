//! Staggered expiry and probabilistic early refresh, with a manual clock
//! and seeded randomness: jittered TTLs stay in `ttl × [1 − x, 1]` and
//! spread over it; early refresh fires before expiry with probability
//! `exp(−remaining / (δ·β))`.
#![cfg(feature = "tokio")]

use std::time::Duration;

use rebound::coalesce::Coalescer;
use rebound::fallback::{Fallback, Lookup, Served, StaleCache};
use rebound::freshness::{Freshness, Verdict};
use rebound::{Clock, RandomSource};

const S: Duration = Duration::from_secs(1);

#[test]
fn jittered_ttls_stay_in_bounds_and_spread_over_the_window() {
    let (clock, _time) = Clock::manual();
    let fresh = Freshness::builder(60 * S).jitter(0.25).build().unwrap();
    let cache: StaleCache<u32, u32> = StaleCache::new(600 * S)
        .with_freshness(fresh)
        .with_random(RandomSource::seeded(42))
        .with_max_entries(100_000)
        .with_clock(clock.clone());
    let now = clock.now();
    for k in 0..10_000 {
        cache.put(k, k); // all written at the same instant
    }
    let (lo, hi) = (now + 45 * S, now + 60 * S);
    let expiries: Vec<_> = (0..10_000).map(|k| cache.expires_at(&k).unwrap()).collect();
    assert!(
        expiries.iter().all(|&e| lo <= e && e <= hi),
        "in 60 s × [0.75, 1]"
    );
    // Spread: every 1.5 s tenth of the window holds 7%..13% of them.
    let mut tenths = [0u32; 10];
    for e in &expiries {
        let i = ((*e - lo).as_secs_f64() / 1.5) as usize;
        tenths[i.min(9)] += 1;
    }
    assert!(
        tenths.iter().all(|&n| (700..=1300).contains(&n)),
        "{tenths:?}"
    );

    // The same seed gives the same TTLs.
    let again: StaleCache<u32, u32> = StaleCache::new(600 * S)
        .with_freshness(fresh)
        .with_random(RandomSource::seeded(42))
        .with_clock(clock.clone());
    again.put(0, 0);
    assert_eq!(again.expires_at(&0), Some(expiries[0]));
}

#[test]
fn without_jitter_every_entry_lives_the_ttl() {
    let (clock, time) = Clock::manual();
    let cache: StaleCache<u8, u8> = StaleCache::new(600 * S)
        .with_freshness(Freshness::builder(10 * S).build().unwrap())
        .with_clock(clock.clone());
    cache.put(1, 1);
    assert_eq!(cache.expires_at(&1), Some(clock.now() + 10 * S));
    time.advance(10 * S - Duration::from_nanos(1));
    assert!(matches!(cache.lookup(&1), Lookup::Hit { value: 1, .. }));
    time.advance(Duration::from_nanos(1));
    assert_eq!(
        cache.lookup(&1),
        Lookup::Miss {
            stale: Some((1, 10 * S))
        }
    );
}

/// The share of `n` reads `remaining` before expiry that refresh early,
/// for a load that took `delta`.
fn refresh_share(beta: f64, delta: Duration, remaining: Duration, n: u32) -> f64 {
    let (clock, time) = Clock::manual();
    let fresh = Freshness::builder(60 * S)
        .early_refresh(beta)
        .build()
        .unwrap();
    let cache: StaleCache<u8, u8> = StaleCache::new(600 * S)
        .with_freshness(fresh)
        .with_random(RandomSource::seeded(7))
        .with_clock(clock);
    cache.put_loaded(1, 1, delta);
    time.advance(60 * S - remaining);
    let early = (0..n)
        .filter(|_| matches!(cache.lookup(&1), Lookup::Refresh { .. }))
        .count();
    early as f64 / f64::from(n)
}

#[test]
fn early_refresh_fires_with_the_documented_probability() {
    let delta = Duration::from_millis(200);
    let f = Freshness::builder(60 * S)
        .early_refresh(1.0)
        .build()
        .unwrap();
    for (beta, remaining) in [
        (1.0, delta.mul_f64(std::f64::consts::LN_2)), // p = 1/2
        (1.0, delta),                                 // p = 1/e
        (2.0, delta * 2),                             // p = 1/e
        (1.0, delta * 3),                             // p = e^-3 ≈ 0.05
    ] {
        let expected = Freshness::builder(60 * S)
            .early_refresh(beta)
            .build()
            .unwrap()
            .early_refresh_probability(delta, remaining);
        let seen = refresh_share(beta, delta, remaining, 20_000);
        assert!(
            (seen - expected).abs() < 0.015,
            "β {beta}, remaining {remaining:?}: expected {expected:.3}, saw {seen:.3}"
        );
    }
    assert!((f.early_refresh_probability(delta, delta) - (-1f64).exp()).abs() < 1e-12);
    // Far from expiry it (practically) never fires; without a load time never.
    assert_eq!(refresh_share(1.0, delta, 30 * S, 20_000), 0.0);
    assert_eq!(
        refresh_share(1.0, Duration::ZERO, Duration::from_millis(1), 1000),
        0.0
    );
}

#[test]
fn the_verdict_follows_the_draw() {
    let f = Freshness::builder(60 * S)
        .early_refresh(1.0)
        .build()
        .unwrap();
    let now = std::time::Instant::now();
    let exp = now + S;
    // −ln(1 − u) ≥ 1 s / 1 s ⇔ u ≥ 1 − 1/e ≈ 0.632.
    assert_eq!(f.judge(now, exp, S, 0.63), Verdict::Fresh);
    assert_eq!(f.judge(now, exp, S, 0.64), Verdict::RefreshEarly);
}

#[tokio::test]
async fn one_reader_refreshes_before_expiry_while_the_rest_read() {
    let (clock, time) = Clock::manual();
    let cache: StaleCache<&str, u32> = StaleCache::new(600 * S)
        .with_freshness(
            Freshness::builder(10 * S)
                .early_refresh(1.0)
                .build()
                .unwrap(),
        )
        .with_random(RandomSource::seeded(3))
        .with_clock(clock.clone());
    let herd: Coalescer<&str, u32, std::io::Error> = Coalescer::new().with_clock(clock.clone());
    let fallback = Fallback::default();
    let loads = std::cell::Cell::new(0u32);
    let load = || {
        loads.set(loads.get() + 1);
        let (clock, n) = (clock.clone(), loads.get());
        async move {
            clock.sleep(S).await; // the load takes 1 s: δ = 1 s
            Ok::<_, std::io::Error>(n)
        }
    };
    assert_eq!(
        fallback
            .read_through(&cache, &herd, "k", load)
            .await
            .unwrap(),
        Served::Fresh(1)
    );
    let expires = cache.expires_at("k").unwrap();
    // Read every 100 ms until a read refreshes.
    let mut reads = 0;
    loop {
        time.advance(S / 10);
        reads += 1;
        let before = clock.now();
        let served = fallback
            .read_through(&cache, &herd, "k", load)
            .await
            .unwrap();
        match served {
            Served::Cached { value: 1, .. } => assert!(before < expires),
            Served::Fresh(2) => {
                assert!(before < expires, "refreshed before expiry");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(reads < 100, "never refreshed");
    }
    assert_eq!(loads.get(), 2);
    assert!(cache.expires_at("k").unwrap() > expires, "a new TTL");
}
