//! Property tests for backoff, jitter, the executors and the budgets.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use rebound::{Backoff, BackoffState, Clock, Jitter, RandomSource, RetryBudget, RetryPolicy};

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        (0.0f64..=1.0).prop_map(Jitter::Proportional),
    ]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    let ms = |lo: u64, hi: u64| (lo..hi).prop_map(Duration::from_millis);
    (
        prop_oneof![
            ms(0, 1_000).prop_map(Backoff::constant),
            (ms(0, 1_000), ms(0, 1_000)).prop_map(|(b, s)| Backoff::linear(b, s)),
            (ms(0, 1_000), 1.0f64..5.0).prop_map(|(b, f)| Backoff::exponential(b).with_factor(f)),
        ],
        ms(1_000, 60_000),
        jitter(),
    )
        .prop_map(|(b, cap, j)| b.with_max_delay(cap).with_jitter(j))
}

proptest! {
    #[test]
    fn every_delay_is_within_its_jitter_bounds_and_the_cap(b in backoff(), seed: u64) {
        prop_assert!(b.validate().is_ok());
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut st = BackoffState::new();
        let base = b.schedule().base();
        let mut prev = base;
        for n in 0..40u32 {
            let d = b.capped(n);
            let got = b.next_delay(&mut st, &mut rng);
            prop_assert!(got <= b.max_delay(), "{got:?} > cap {:?}", b.max_delay());
            match b.jitter() {
                Jitter::None => prop_assert_eq!(got, d),
                Jitter::Full => prop_assert!(got <= d),
                Jitter::Equal => prop_assert!(got >= d / 2 && got <= d),
                Jitter::Decorrelated => {
                    let hi = (prev * 3).min(b.max_delay()).max(base);
                    prop_assert!(got >= base && got <= hi, "{got:?} not in [{base:?}, {hi:?}]");
                }
                Jitter::Proportional(x) => {
                    let lo = d.as_secs_f64() * (1.0 - x) - 1e-9;
                    let hi = d.as_secs_f64() * (1.0 + x) + 1e-9;
                    prop_assert!(got.as_secs_f64() >= lo && got.as_secs_f64() <= hi);
                }
            }
            prev = got;
        }
    }

    #[test]
    fn full_jitter_mean_is_half_the_delay(ms in 1u64..10_000, seed: u64) {
        let d = Duration::from_millis(ms);
        let b = Backoff::constant(d).with_jitter(Jitter::Full).with_max_delay(d);
        let n = 20_000;
        let sum: f64 = b
            .delays(fastrand::Rng::with_seed(seed))
            .take(n)
            .map(|x| x.as_secs_f64())
            .sum();
        let mean = sum / n as f64;
        let want = d.as_secs_f64() / 2.0;
        prop_assert!((mean - want).abs() <= 0.02 * want, "mean {mean} vs {want}");
    }

    #[test]
    fn executor_respects_max_attempts_and_the_deadline(
        b in backoff(),
        max_attempts in 1u32..12,
        total_ms in 1u64..20_000,
        call_ms in proptest::collection::vec(0u64..3_000, 1..12),
        seed: u64,
    ) {
        let (clock, time) = Clock::manual();
        let total = Duration::from_millis(total_ms);
        let policy = RetryPolicy::builder()
            .clock(clock)
            .backoff(b)
            .max_attempts(max_attempts)
            .total_timeout(total)
            .random(RandomSource::seeded(seed))
            .build()
            .unwrap();
        let mut calls = 0usize;
        let mut started_late = false;
        let report = policy.run_blocking(|| {
            if time.elapsed() >= total {
                started_late = true;
            }
            time.advance(Duration::from_millis(call_ms[calls % call_ms.len()]));
            calls += 1;
            Err::<(), _>(())
        });
        prop_assert!(calls as u32 <= max_attempts);
        prop_assert_eq!(calls as u32, report.attempts());
        prop_assert!(!started_late, "an attempt started after the deadline");
        // Delays never cross the deadline: any overrun is the last call's own time.
        let last_call = Duration::from_millis(call_ms[(calls - 1) % call_ms.len()]);
        prop_assert!(time.elapsed() <= total + last_call);
    }

    #[test]
    fn ratio_budget_never_exceeds_ratio_times_requests_plus_floor(
        ratio in 0.0f64..=1.0,
        floor_per_s in 0.0f64..5.0,
        ops in proptest::collection::vec((0u8..3, 0u64..700), 1..400),
    ) {
        let (clock, time) = Clock::manual();
        let window = Duration::from_secs(2);
        let buckets = 4u32;
        let budget = RetryBudget::ratio(ratio)
            .min_retries_per_second(floor_per_s)
            .window(window)
            .buckets(buckets)
            .clock(clock)
            .build()
            .unwrap();
        let bucket = window / buckets;
        // (bucket index, is_retry) of every event the budget accepted.
        let mut events: VecDeque<(u64, bool)> = VecDeque::new();
        for (op, advance_ms) in ops {
            time.advance(Duration::from_millis(advance_ms));
            let now_bucket = (time.elapsed().as_nanos() / bucket.as_nanos()) as u64;
            let granted = match op {
                0 | 1 => {
                    budget.record_request();
                    events.push_back((now_bucket, false));
                    false
                }
                _ => {
                    let ok = budget.try_withdraw();
                    if ok {
                        events.push_back((now_bucket, true));
                    }
                    ok
                }
            };
            if !granted {
                continue;
            }
            // Whenever a retry is granted, the retries in the window that
            // ends now (this one included) are at most ratio × requests in
            // it + floor.
            let lo = now_bucket.saturating_sub(buckets as u64 - 1);
            let (mut req, mut ret) = (0u64, 0u64);
            for &(b, r) in &events {
                if b >= lo {
                    if r { ret += 1 } else { req += 1 }
                }
            }
            let allowed = ratio * req as f64 + floor_per_s * window.as_secs_f64();
            prop_assert!(ret as f64 <= allowed + 1e-9, "{ret} retries > {allowed}");
        }
    }

    #[test]
    fn token_bucket_matches_the_grpc_reference_model(
        max in 1u32..100,
        ratio_milli in 1u32..1000,
        ops in proptest::collection::vec(0u8..3, 1..500),
    ) {
        let max_tokens = max as f64;
        let ratio = (ratio_milli as f64 / 1000.0).min(max_tokens);
        let b = RetryBudget::token_bucket(max_tokens, ratio).unwrap();
        // gRFC A6, in thousandths of a token.
        let (cap, refund) = (max as i64 * 1000, (ratio * 1000.0).round() as i64);
        let mut tokens = cap;
        for op in ops {
            match op {
                0 => { b.record_success(); tokens = (tokens + refund).min(cap); }
                1 => { b.record_failure(); tokens = (tokens - 1000).max(0); }
                _ => prop_assert_eq!(b.try_withdraw(), tokens * 2 > cap),
            }
            let rebound::BudgetSnapshot::TokenBucket { tokens: t, .. } = b.snapshot() else {
                unreachable!()
            };
            prop_assert!((t - tokens as f64 / 1000.0).abs() < 1e-9);
        }
    }
}
