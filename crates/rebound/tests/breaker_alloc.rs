//! The closed-state hot path allocates nothing: counted by a global
//! allocator that counts (the `allocation-counter` crate), so this test
//! lives in its own binary.

use std::time::Duration;

use rebound::{Bulkhead, CircuitBreaker, Clock};

fn allocations(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn closed_acquire_and_record_allocate_nothing() {
    let (clock, time) = Clock::manual();
    let count = CircuitBreaker::builder()
        .clock(clock.clone())
        .build()
        .unwrap();
    let timed = CircuitBreaker::builder()
        .time_window(Duration::from_secs(10), 10)
        .slow_call_duration(Duration::from_secs(1))
        .consecutive_failures(1_000)
        .clock(clock)
        .build()
        .unwrap();
    let system = CircuitBreaker::builder().build().unwrap();
    // Warm up (first-touch of lazily initialised statics, if any).
    count.try_acquire().unwrap().success();
    timed.try_acquire().unwrap().success();
    system.try_acquire().unwrap().success();
    let n = allocations(|| {
        for i in 0..10_000u32 {
            for cb in [&count, &timed, &system] {
                let p = cb.try_acquire().unwrap();
                if i % 10 == 0 {
                    p.failure(); // 10 %: stays closed
                } else {
                    p.success();
                }
            }
            if i % 100 == 0 {
                time.advance(Duration::from_millis(100));
            }
        }
    });
    assert_eq!(n, 0, "allocations on the closed path");
}

#[test]
fn bulkhead_permits_allocate_nothing() {
    let b = Bulkhead::builder().max_concurrent(4).build().unwrap();
    let n = allocations(|| {
        for _ in 0..10_000 {
            let p = b.try_acquire().unwrap();
            drop(p);
        }
    });
    assert_eq!(n, 0);
}
