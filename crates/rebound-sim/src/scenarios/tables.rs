//! The built-in scenarios' policies, written in the core's schema
//! ([`rebound::config`]): each is the table a service's policy file would
//! hold under `[dependencies.NAME]`, and the reports print it that way. An
//! unset field keeps the builder's default.

use std::time::Duration;

use rebound::config::{
    BackoffConfig, BackoffKind, BreakerConfig, BudgetConfig, DependencyConfig, JitterConfig,
    RetryConfig, ThrottleConfig, WindowConfig,
};

use crate::policy::PolicySource;

/// A retry policy of `max_attempts` attempts with no delay between them.
pub fn attempts(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts: Some(max_attempts),
        backoff: Some(constant(Duration::ZERO)),
        ..RetryConfig::default()
    }
}

/// `base` before every retry (no jitter: a constant backoff has none).
pub fn constant(base: Duration) -> BackoffConfig {
    BackoffConfig {
        kind: BackoffKind::Constant,
        base,
        factor: None,
        step: None,
        max_delay: None,
        jitter: None,
    }
}

/// `base × 2ⁿ`, capped at `max_delay`, with `jitter`.
pub fn exponential(base: Duration, max_delay: Duration, jitter: JitterConfig) -> BackoffConfig {
    BackoffConfig {
        kind: BackoffKind::Exponential,
        base,
        factor: None,
        step: None,
        max_delay: Some(max_delay),
        jitter: Some(jitter),
    }
}

/// A ratio budget with no floor: retries ≤ `ratio` × requests.
pub fn ratio_budget(ratio: f64) -> BudgetConfig {
    BudgetConfig::Ratio {
        ratio,
        min_retries_per_second: Some(0.0),
        window: None,
        buckets: None,
    }
}

/// A ratio budget with the library's floor of retries per second.
pub fn ratio_budget_with_floor(ratio: f64) -> BudgetConfig {
    BudgetConfig::Ratio {
        ratio,
        min_retries_per_second: None,
        window: None,
        buckets: None,
    }
}

/// gRPC's token bucket (`max_tokens`, `token_ratio`).
pub fn token_bucket(max_tokens: f64, token_ratio: f64) -> BudgetConfig {
    BudgetConfig::TokenBucket {
        max_tokens,
        token_ratio,
    }
}

/// A breaker that opens when half of the last `window` calls (at least
/// `min_calls`) failed, for `break_duration`.
pub fn ratio_breaker(window: u32, min_calls: u32, break_duration: Duration) -> BreakerConfig {
    BreakerConfig {
        failure_ratio: Some(0.5),
        min_calls: Some(min_calls),
        window: Some(WindowConfig::Count { size: window }),
        break_duration: Some(break_duration),
        ..BreakerConfig::default()
    }
}

/// An adaptive throttle with `K = k` over `window`.
pub fn throttle(k: f64, window: Duration) -> ThrottleConfig {
    ThrottleConfig {
        k: Some(k),
        window: Some(window),
        buckets: None,
    }
}

/// The dependency table holding just `retry`, as a policy source.
pub fn retry(retry: RetryConfig) -> PolicySource {
    PolicySource::config(
        "dependency",
        DependencyConfig {
            retry: Some(retry),
            ..DependencyConfig::default()
        },
    )
}
