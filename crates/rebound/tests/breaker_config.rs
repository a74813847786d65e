//! Bad breaker, bulkhead and timeout settings are refused at build time,
//! naming the field.

use std::time::Duration;

use rebound::breaker::{BreakGrowth, SlidingWindow};
use rebound::{Bulkhead, CircuitBreaker, CircuitBreakerBuilder};

fn field(b: CircuitBreakerBuilder) -> &'static str {
    let e = b.build().expect_err("should be rejected");
    assert_eq!(e.component(), "circuit breaker");
    assert!(e.to_string().contains(e.field()), "{e}");
    e.field()
}

#[test]
fn breaker_rejects_bad_settings() {
    let b = CircuitBreaker::builder;
    assert_eq!(field(b().failure_ratio(1.5)), "failure_ratio");
    assert_eq!(field(b().failure_ratio(-0.1)), "failure_ratio");
    assert_eq!(field(b().failure_ratio(f64::NAN)), "failure_ratio");
    assert_eq!(field(b().failure_ratio(f64::INFINITY)), "failure_ratio");
    assert_eq!(field(b().slow_call_ratio(2.0)), "slow_call_ratio");
    assert_eq!(field(b().min_calls(0)), "min_calls");
    assert_eq!(field(b().count_window(0)), "count_window");
    assert_eq!(field(b().count_window(70_000)), "count_window");
    assert_eq!(field(b().count_window(10).min_calls(11)), "min_calls");
    assert_eq!(field(b().time_window(Duration::ZERO, 10)), "time_window");
    assert_eq!(
        field(b().time_window(Duration::from_secs(10), 0)),
        "buckets"
    );
    assert_eq!(
        field(b().time_window(Duration::from_secs(10), 5000)),
        "buckets"
    );
    assert_eq!(
        field(b().window(SlidingWindow::Time {
            duration: Duration::from_nanos(3),
            buckets: 4
        })),
        "time_window"
    );
    assert_eq!(
        field(b().slow_call_duration(Duration::ZERO)),
        "slow_call_duration"
    );
    assert_eq!(field(b().consecutive_failures(0)), "consecutive_failures");
    assert_eq!(
        field(CircuitBreaker::consecutive_failures(0)),
        "consecutive_failures"
    );
    assert_eq!(field(b().break_duration(Duration::ZERO)), "break_duration");
    assert_eq!(
        field(
            b().break_duration(Duration::from_secs(10))
                .max_break_duration(Duration::from_secs(5))
        ),
        "max_break_duration"
    );
    assert_eq!(
        field(b().break_growth(BreakGrowth::Exponential(0.5))),
        "break_growth"
    );
    assert_eq!(
        field(b().break_growth(BreakGrowth::Exponential(f64::NAN))),
        "break_growth"
    );
    assert_eq!(field(b().break_jitter(1.01)), "break_jitter");
    assert_eq!(field(b().half_open_probes(0)), "half_open_probes");
    assert_eq!(field(b().half_open_probes(1001)), "half_open_probes");
}

#[test]
fn breaker_accepts_edges() {
    let b = CircuitBreaker::builder;
    for ok in [
        b().failure_ratio(0.0),
        b().failure_ratio(1.0),
        b().count_window(1).min_calls(1),
        b().count_window(65_535),
        b().time_window(Duration::from_millis(1), 1),
        b().half_open_probes(1000),
        b().break_jitter(1.0),
        b().break_growth(BreakGrowth::Exponential(1.0)),
        b().time_window(Duration::from_secs(1), 10)
            .min_calls(1_000_000),
    ] {
        ok.build().unwrap();
    }
}

#[test]
fn bulkhead_rejects_bad_settings() {
    let e = Bulkhead::builder().max_concurrent(0).build().unwrap_err();
    assert_eq!((e.component(), e.field()), ("bulkhead", "max_concurrent"));
    let e = Bulkhead::builder()
        .max_queue(1)
        .max_wait(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "max_wait");
    let e = Bulkhead::builder()
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "max_wait", "a wait without a queue");
}

#[cfg(feature = "tokio")]
#[test]
fn timeout_rejects_zero() {
    let e = rebound::Timeout::new(Duration::ZERO).unwrap_err();
    assert_eq!(e.field(), "timeout");
}
