//! Metrics and tracing.
//!
//! Every series goes through the [`metrics`] facade (install the exporter you
//! already use) with the label `dependency` = the host's authority (`host`
//! or `host:port`). The retry counters are the core's, emitted by the very
//! state machine that decides:
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `retry_attempts_total` | `dependency` | retries made (attempts after the first) |
//! | `retry_exhausted_total` | `dependency`, `reason` | requests given up while failing transiently (`attempts`, `deadline`, `budget`, `throttled`, `breaker_open`) |
//! | `retry_budget_exhausted_total` | `dependency` | retries refused by the host's budget |
//! | `dependency_timeout_total` | `dependency` | attempts cut off by the per-attempt or total timeout, or by reqwest's own |
//! | `retry_not_allowed_total` | `dependency`, `reason` | transient failures not retried because of the request (`missing_idempotency_key`, `method`, `streaming_body`) |
//!
//! Tracing: one span per attempt, `rebound_http.attempt`, with the fields
//! `dependency`, `http.method`, `attempt` and (once known) `http.status`;
//! the core's events (retrying, giving up) are emitted inside the request's
//! span tree.

use std::sync::Arc;

/// `retry_not_allowed_total`: transient failures that were not retried
/// because the request may not be sent twice.
pub const RETRY_NOT_ALLOWED_TOTAL: &str = "retry_not_allowed_total";

pub(crate) fn not_retried(host: &Arc<str>, reason: &'static str) {
    metrics::counter!(
        RETRY_NOT_ALLOWED_TOTAL,
        rebound::telemetry::DEPENDENCY_LABEL => metrics::SharedString::from(Arc::clone(host)),
        "reason" => reason
    )
    .increment(1);
}
