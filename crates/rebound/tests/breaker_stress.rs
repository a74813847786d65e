//! 8 threads hammer one breaker through every state: the half-open probe
//! limit is never exceeded, no probe slot leaks, and the counts add up.
//!
//! 8 × 100 000 calls; well under a second even in a debug build on 2 cores.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use rebound::breaker::State;
use rebound::{CircuitBreaker, Clock};

const THREADS: usize = 8;
const CALLS: u64 = 100_000;
const PROBES: u32 = 3;
const WINDOW: u32 = 50;

#[test]
fn eight_threads_never_exceed_the_probe_limit() {
    let (clock, time) = Clock::manual();
    let cb = CircuitBreaker::builder()
        .failure_ratio(0.5)
        .min_calls(10)
        .count_window(WINDOW)
        .half_open_probes(PROBES)
        .break_duration(Duration::from_micros(500))
        .clock(clock)
        .build()
        .unwrap();
    // Probes in flight per generation (generations in flight at once are
    // far fewer than 4096 apart).
    let in_flight: Arc<Vec<AtomicU32>> = Arc::new((0..4096).map(|_| AtomicU32::new(0)).collect());
    let max_seen = Arc::new(AtomicU32::new(0));
    let [admitted, rejected, succeeded, failed, cancelled, probes] =
        std::array::from_fn(|_| Arc::new(AtomicU64::new(0)));

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (cb, time, in_flight, max_seen) = (&cb, &time, &in_flight, &max_seen);
            let (admitted, rejected, succeeded, failed, cancelled, probes) = (
                &admitted, &rejected, &succeeded, &failed, &cancelled, &probes,
            );
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t as u64);
                for i in 0..CALLS {
                    if t == 0 && i % 16 == 0 {
                        time.advance(Duration::from_micros(100));
                    }
                    let permit = match cb.try_acquire() {
                        Ok(p) => p,
                        Err(_) => {
                            rejected.fetch_add(1, SeqCst);
                            continue;
                        }
                    };
                    admitted.fetch_add(1, SeqCst);
                    let slot = (permit.generation() % 4096) as usize;
                    if permit.is_probe() {
                        probes.fetch_add(1, SeqCst);
                        let n = in_flight[slot].fetch_add(1, SeqCst) + 1;
                        max_seen.fetch_max(n, SeqCst);
                    }
                    // Phases of health and sickness, by the clock.
                    let sick = (time.elapsed().as_millis() / 5) % 2 == 1;
                    let roll = rng.u32(..100);
                    let is_probe = permit.is_probe();
                    // Leave the in-flight count before the slot is released.
                    if is_probe {
                        in_flight[slot].fetch_sub(1, SeqCst);
                    }
                    if roll < 5 {
                        drop(permit);
                        cancelled.fetch_add(1, SeqCst);
                    } else if sick && roll < 80 {
                        permit.failure();
                        failed.fetch_add(1, SeqCst);
                    } else {
                        permit.success();
                        succeeded.fetch_add(1, SeqCst);
                    }
                }
            });
        }
    });

    let total = THREADS as u64 * CALLS;
    let (a, r) = (admitted.load(SeqCst), rejected.load(SeqCst));
    assert_eq!(a + r, total, "every call admitted or rejected");
    assert_eq!(
        succeeded.load(SeqCst) + failed.load(SeqCst) + cancelled.load(SeqCst),
        a,
        "every admitted call ended once"
    );
    assert!(
        max_seen.load(SeqCst) <= PROBES,
        "probe limit exceeded: {max_seen:?}"
    );
    assert!(probes.load(SeqCst) > 0, "the test reached half-open");
    assert!(r > 0, "the test reached open");
    let s = cb.snapshot();
    if s.state == State::HalfOpen {
        assert_eq!(s.probes_reserved, s.probes_succeeded, "a probe slot leaked");
    }
    // Whatever state it ended in, the breaker still works: recover it.
    time.advance(Duration::from_secs(1));
    for _ in 0..PROBES {
        if let Ok(p) = cb.try_acquire() {
            p.success();
        }
    }
    assert_eq!(cb.state(), State::Closed);
    let s = cb.snapshot();
    assert!(s.calls <= u64::from(WINDOW) && s.failures <= s.calls);
}
