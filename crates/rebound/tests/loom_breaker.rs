//! Model checks of the breaker's and bulkhead's atomics with loom:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p rebound --release --test loom_breaker
//! ```
//!
//! Under `--cfg loom` the breaker and bulkhead take their atomics and lock
//! from loom (`src/sync.rs`), so loom explores every interleaving of the
//! real code.
#![cfg(loom)]

use std::time::Duration;

use loom::thread;
use rebound::breaker::State;
use rebound::{Bulkhead, CircuitBreaker, Clock};

/// A breaker already half-open with `probes` probe slots.
fn half_open(probes: u32) -> CircuitBreaker {
    let (clock, time) = Clock::manual();
    let cb = CircuitBreaker::consecutive_failures(1)
        .half_open_probes(probes)
        .break_duration(Duration::from_secs(1))
        .clock(clock)
        .build()
        .unwrap();
    cb.try_acquire().unwrap().failure();
    time.advance(Duration::from_secs(1));
    cb
}

#[test]
fn probe_limit_holds_across_threads() {
    loom::model(|| {
        // Two slots, one taken here: two threads race for the last one
        // through the lock-free reserve path.
        let cb = half_open(2);
        let _first = cb.try_acquire_owned().unwrap();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let cb = cb.clone();
                thread::spawn(move || {
                    let p = cb.try_acquire_owned().ok();
                    let got = p.is_some();
                    // Hold the permit until the end so both are concurrent.
                    (got, p)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let admitted = results.iter().filter(|(got, _)| *got).count();
        assert_eq!(admitted, 1, "exactly one more probe");
        assert_eq!(cb.state(), State::HalfOpen);
    });
}

#[test]
fn a_cancelled_probe_always_gives_its_slot_back() {
    loom::model(|| {
        let cb = half_open(1);
        let probe = cb.try_acquire_owned().unwrap();
        let c2 = cb.clone();
        let canceller = thread::spawn(move || drop(probe));
        let other = thread::spawn(move || c2.try_acquire_owned().ok().map(|p| p.success()));
        canceller.join().unwrap();
        let took = other.join().unwrap().is_some();
        if took {
            assert_eq!(cb.state(), State::Closed);
        } else {
            // The other thread looked before the slot came back; it is back now.
            let p = cb.try_acquire().expect("slot released");
            p.success();
            assert_eq!(cb.state(), State::Closed);
        }
    });
}

#[test]
fn a_stale_release_cannot_free_a_new_periods_slot() {
    loom::model(|| {
        let cb = half_open(1);
        let stale = cb.try_acquire_owned().unwrap();
        // Meanwhile, another thread fails the half-open period by hand and a
        // new period begins.
        let c2 = cb.clone();
        let t = thread::spawn(move || drop(stale));
        c2.isolate();
        c2.reset();
        t.join().unwrap();
        assert_eq!(cb.state(), State::Closed);
        let s = cb.snapshot();
        assert_eq!(s.probes_reserved, 0);
    });
}

#[test]
fn racing_probe_outcomes_make_one_transition() {
    loom::model(|| {
        let cb = half_open(2);
        let a = cb.try_acquire_owned().unwrap();
        let b = cb.try_acquire_owned().unwrap();
        let ta = thread::spawn(move || a.success());
        let tb = thread::spawn(move || b.failure());
        ta.join().unwrap();
        tb.join().unwrap();
        // Either the failure came first (open) or the success then the
        // failure (open): never closed, never stuck half-open.
        assert_eq!(cb.state(), State::Open);
    });
}

#[test]
fn bulkhead_never_admits_more_than_max() {
    loom::model(|| {
        let b = Bulkhead::builder().max_concurrent(1).build().unwrap();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || {
                    let p = b.try_acquire().ok();
                    let inside = b.in_use();
                    assert!(inside <= 1);
                    p.is_some()
                })
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|x| *x)
            .count();
        assert!(admitted >= 1, "a free slot is never refused to both");
        assert_eq!(b.in_use(), 0, "every permit released");
    });
}

#[test]
fn a_success_skipped_on_a_full_healthy_window_keeps_the_counts() {
    loom::model(|| {
        // A full window of successes: the next success writes nothing, and a
        // failure racing with it still lands, whatever the interleaving.
        let cb = CircuitBreaker::builder()
            .count_window(2)
            .min_calls(2)
            .failure_ratio(1.0)
            .build()
            .unwrap();
        cb.try_acquire().unwrap().success();
        cb.try_acquire().unwrap().success();
        let (c1, c2) = (cb.clone(), cb.clone());
        let ok = thread::spawn(move || c1.try_acquire().unwrap().success());
        let bad = thread::spawn(move || c2.try_acquire().unwrap().failure());
        ok.join().unwrap();
        bad.join().unwrap();
        let s = cb.snapshot();
        assert_eq!(s.state, State::Closed);
        assert_eq!((s.calls, s.failures), (2, 1), "last 2 calls: one failure");
    });
}
