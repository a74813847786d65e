//! Metrics and tracing.
//!
//! Every series goes through the [`metrics`] facade (install the exporter you
//! already use) with two labels: `dependency`, the middleware's
//! [`dependency`](crate::RetryMiddlewareBuilder::dependency) name (default:
//! the host's authority), and `host`, the host's authority (`host` or
//! `host:port`). Name the dependency once and every series of it — retries,
//! budget, breaker, throttle here; fallbacks and bulkheads given the same
//! name in your code — joins on `dependency`. The retry counters are the
//! core's, emitted by the very state machine that decides:
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `retry_attempts_total` | `dependency`, `host` | retries made (attempts after the first) |
//! | `retry_exhausted_total` | `dependency`, `host`, `reason` | requests given up while failing transiently (`attempts`, `deadline`, `budget`, `throttled`, `breaker_open`) |
//! | `retry_budget_exhausted_total` | `dependency`, `host` | retries refused by the host's budget |
//! | `dependency_timeout_total` | `dependency`, `host` | attempts cut off by the per-attempt or total timeout, or by reqwest's own |
//! | `circuit_breaker_state`, `circuit_breaker_open_total`, `circuit_breaker_rejected_total` | `dependency`, `host` | the host's breaker, when it has one |
//! | `throttle_rejected_total` | `dependency`, `host` | the host's adaptive throttle, when it has one |
//! | `retry_not_allowed_total` | `dependency`, `host`, `reason` | transient failures not retried because of the request (`missing_idempotency_key`, `method`, `streaming_body`) |
//!
//! Tracing: one span per attempt, `rebound_http.attempt`, with the fields
//! `dependency`, `host`, `http.method`, `attempt` and (once known) `http.status`;
//! the core's events (retrying, giving up) are emitted inside the request's
//! span tree.

use std::sync::Arc;

use crate::hosts::Host;

/// `retry_not_allowed_total`: transient failures that were not retried
/// because the request may not be sent twice.
pub const RETRY_NOT_ALLOWED_TOTAL: &str = "retry_not_allowed_total";

pub(crate) fn not_retried(host: &Host, reason: &'static str) {
    metrics::counter!(
        RETRY_NOT_ALLOWED_TOTAL,
        rebound::telemetry::DEPENDENCY_LABEL => metrics::SharedString::from(Arc::clone(host.dependency_arc())),
        rebound::telemetry::HOST_LABEL => metrics::SharedString::from(Arc::clone(host.authority_arc())),
        "reason" => reason
    )
    .increment(1);
}
