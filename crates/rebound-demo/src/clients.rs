//! The two ways the order service calls the inventory. Both are rebound's
//! reqwest middleware — the same attempt loop — configured two ways.

use std::time::Duration;

use axum::http::Method;
use rebound::{
    Backoff, CircuitBreaker, ConfigError, Jitter, RandomSource, RetryBudget, RetryPolicy,
};
use rebound_http::{HttpClassifier, MethodRule, RetryMiddleware};

/// Each attempt's timeout, on both sides: the caller gives up on an
/// answer after 250 ms.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);

/// The naive baseline: 3 immediate retries (4 attempts), no idempotency
/// key, no retry budget, no circuit breaker — and POST retried anyway, as a
/// hand-written loop around a client would.
pub fn naive(seed: u64) -> Result<RetryMiddleware, ConfigError> {
    RetryMiddleware::builder()
        .policy(
            RetryPolicy::builder()
                .max_attempts(4)
                .backoff(Backoff::constant(Duration::ZERO))
                .attempt_timeout(ATTEMPT_TIMEOUT)
                .random(RandomSource::seeded(seed)),
        )
        // The mistake on display: a POST without a key retried as if it
        // were idempotent.
        .classifier(HttpClassifier::new().method(Method::POST, MethodRule::Retry))
        .build()
}

/// rebound's answer, shaped like the standard preset
/// (`rebound::pipeline::Pipeline::standard`) with times fit for a demo of
/// a minute: 3 attempts, exponential backoff with full jitter, per-attempt
/// and total timeouts, a 10 % retry budget per host, a circuit breaker per
/// host; the caller sends an `Idempotency-Key` on every reservation.
pub fn rebound(seed: u64) -> Result<RetryMiddleware, ConfigError> {
    RetryMiddleware::builder()
        .policy(
            RetryPolicy::builder()
                .max_attempts(3)
                .backoff(
                    Backoff::exponential(Duration::from_millis(50))
                        .with_max_delay(Duration::from_secs(1))
                        .with_jitter(Jitter::Full),
                )
                .attempt_timeout(ATTEMPT_TIMEOUT)
                .total_timeout(Duration::from_millis(1500))
                .random(RandomSource::seeded(seed)),
        )
        // Retries ≤ 10 % of requests (+ 1 a second) over the last 2 s.
        .budget_per_host(|| {
            RetryBudget::ratio(0.1)
                .min_retries_per_second(1.0)
                .window(Duration::from_secs(2))
                .build()
        })
        // Opens when half of at least 20 attempts in the last 2 s failed;
        // stays open 1 s, then lets a probe through.
        .breaker_per_host(
            CircuitBreaker::builder()
                .failure_ratio(0.5)
                .min_calls(20)
                .time_window(Duration::from_secs(2), 10)
                .break_duration(Duration::from_secs(1))
                .random(RandomSource::seeded(seed ^ 0xb4ea)),
        )
        .build()
}
