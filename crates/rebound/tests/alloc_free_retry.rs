//! Zero heap allocations on the success paths of core I: delay computation,
//! budget check and record, and the async and blocking executors.
//! (One test per binary: the counting allocator sees the whole process.)

use std::time::Duration;

use rebound::{Backoff, BackoffState, Jitter, RetryBudget, RetryPolicy};

#[test]
fn success_paths_do_not_allocate() {
    let backoff = Backoff::exponential(Duration::from_millis(100)).with_jitter(Jitter::Full);
    let ratio = RetryBudget::ratio(0.2).build().unwrap();
    let bucket = RetryBudget::token_bucket(10.0, 0.1).unwrap();
    let policy = RetryPolicy::builder()
        .budget(ratio.clone())
        .total_timeout(Duration::from_secs(1))
        .attempt_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let plain = RetryPolicy::builder().build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    // Warm up lazily-initialised runtime and thread-local state.
    rt.block_on(policy.retry(|| async { Ok::<_, ()>(1) }))
        .unwrap();
    rt.block_on(plain.retry(|| async { Ok::<_, ()>(1) }))
        .unwrap();

    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            let mut st = BackoffState::new();
            std::hint::black_box(backoff.next_delay(&mut st, &mut rng));
            ratio.record_request();
            std::hint::black_box(ratio.try_withdraw());
            bucket.record_success();
            bucket.record_failure();
            std::hint::black_box(bucket.try_withdraw());
            std::hint::black_box(plain.retry_blocking(|| Ok::<_, ()>(1)).unwrap());
            std::hint::black_box(policy.retry_blocking(|| Ok::<_, ()>(1)).unwrap());
            std::hint::black_box(
                rt.block_on(plain.retry(|| async { Ok::<_, ()>(1) }))
                    .unwrap(),
            );
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");

    // With an attempt timeout the async executor arms a tokio timer: still no
    // allocation of ours.
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            std::hint::black_box(
                rt.block_on(policy.retry(|| async { Ok::<_, ()>(1) }))
                    .unwrap(),
            );
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");

    // Retrying allocates nothing either: metric keys are labelled when the
    // policy is built, and the RNG lives on the stack.
    let retrying = RetryPolicy::builder()
        .dependency("inventory")
        .max_attempts(2)
        .backoff(Backoff::constant(Duration::ZERO))
        .budget(RetryBudget::ratio(1.0).build().unwrap())
        .build()
        .unwrap();
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            let mut n = 0;
            let r = retrying.retry_blocking(|| {
                n += 1;
                if n < 2 {
                    Err(())
                } else {
                    Ok(n)
                }
            });
            std::hint::black_box(r.unwrap());
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}
