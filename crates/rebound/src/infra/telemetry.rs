//! Metric names and the helpers that emit them.
//!
//! Everything goes through the [`metrics`] facade (no exporter is installed
//! by rebound — install the one you already use) and [`tracing`]. Every
//! series carries a `dependency` label: the name given to the policy with
//! `dependency("inventory")` (default `"default"`). A policy given an
//! instance with `host("10.0.0.7:3001")` (rebound-http does this for every
//! host) adds a second label, `host`, so the series of one dependency keep
//! one `dependency` name whichever host served them, and dashboards can
//! still split by host.
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `retry_attempts_total` | counter | retries made: attempts after the first |
//! | `retry_exhausted_total` | counter | calls given up while still failing transiently; label `reason` = `attempts`, `deadline`, `budget`, `throttled`, `breaker_open` |
//! | `retry_budget_exhausted_total` | counter | retries refused by a retry budget |
//! | `dependency_timeout_total` | counter | attempts (and `Timeout` calls) cut off by a timeout |
//! | `circuit_breaker_open_total` | counter | times a circuit breaker opened |
//! | `circuit_breaker_state` | gauge | a breaker's state: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled |
//! | `circuit_breaker_rejected_total` | counter | calls a circuit breaker refused |
//! | `bulkhead_rejected_total` | counter | calls a full bulkhead refused; label `reason` = `full`, `queue_full`, `max_wait` |
//! | `throttle_rejected_total` | counter | requests an adaptive throttle refused locally |
//! | `coalesced_calls_total` | counter | calls answered by another caller's call in flight (request coalescing) |
//! | `coalesce_followers` | histogram | followers each coalesced call served |
//! | `cache_early_refresh_total` | counter | cache entries refreshed early (probabilistic early expiration) |
//!
//! `retry_attempts_total`, `retry_exhausted_total`,
//! `dependency_timeout_total`, `circuit_breaker_open_total`,
//! `fallback_used_total`, `idempotency_key_reused_total` and
//! `dead_letter_messages_total` are the names commonly given to these
//! signals, and stay stable: dashboards written for them work unchanged.

use std::sync::Arc;

/// `retry_attempts_total`: retries made (attempts after the first).
pub const RETRY_ATTEMPTS_TOTAL: &str = "retry_attempts_total";
/// `retry_exhausted_total`: calls given up while the failure was transient.
pub const RETRY_EXHAUSTED_TOTAL: &str = "retry_exhausted_total";
/// `retry_budget_exhausted_total`: retries refused by a retry budget.
pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "retry_budget_exhausted_total";
/// `dependency_timeout_total`: attempts cut off by a timeout.
pub const DEPENDENCY_TIMEOUT_TOTAL: &str = "dependency_timeout_total";
/// `circuit_breaker_open_total`: times a circuit breaker opened.
pub const CIRCUIT_BREAKER_OPEN_TOTAL: &str = "circuit_breaker_open_total";
/// `circuit_breaker_state` (gauge): 0 closed, 1 open, 2 half-open,
/// 3 isolated, 4 disabled.
pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker_state";
/// `circuit_breaker_rejected_total`: calls a circuit breaker refused.
pub const CIRCUIT_BREAKER_REJECTED_TOTAL: &str = "circuit_breaker_rejected_total";
/// `bulkhead_rejected_total`: calls a full bulkhead refused (label `reason`).
pub const BULKHEAD_REJECTED_TOTAL: &str = "bulkhead_rejected_total";
/// `fallback_used_total`: times a fallback produced the result.
pub const FALLBACK_USED_TOTAL: &str = "fallback_used_total";
/// `idempotency_key_reused_total`: requests answered from a stored result.
pub const IDEMPOTENCY_KEY_REUSED_TOTAL: &str = "idempotency_key_reused_total";
/// `dead_letter_messages_total`: messages moved to a dead-letter queue.
pub const DEAD_LETTER_MESSAGES_TOTAL: &str = "dead_letter_messages_total";

/// `throttle_rejected_total`: requests refused locally by an adaptive throttle.
pub const THROTTLE_REJECTED_TOTAL: &str = "throttle_rejected_total";

/// `coalesced_calls_total`: calls answered by another caller's call in
/// flight instead of calling.
pub const COALESCED_CALLS_TOTAL: &str = "coalesced_calls_total";
/// `coalesce_followers` (histogram): the followers one coalesced call
/// served.
pub const COALESCE_FOLLOWERS: &str = "coalesce_followers";
/// `cache_early_refresh_total`: cache entries refreshed before they
/// expired (probabilistic early expiration).
pub const CACHE_EARLY_REFRESH_TOTAL: &str = "cache_early_refresh_total";

/// The label every rebound series carries.
pub const DEPENDENCY_LABEL: &str = "dependency";

/// The label a policy set with `host(...)` adds to every series: the
/// instance (for HTTP, the `host` or `host:port`) the policy guards, beside
/// the `dependency` name. rebound-http sets it on every series it emits.
pub const HOST_LABEL: &str = "host";

/// The `dependency` label, and the `host` label when there is one.
pub(crate) fn labels(dependency: &Arc<str>, host: Option<&Arc<str>>) -> Vec<metrics::Label> {
    let mut labels = vec![metrics::Label::new(
        DEPENDENCY_LABEL,
        metrics::SharedString::from(Arc::clone(dependency)),
    )];
    if let Some(h) = host {
        labels.push(metrics::Label::new(
            HOST_LABEL,
            metrics::SharedString::from(Arc::clone(h)),
        ));
    }
    labels
}

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new("rebound", metrics::Level::INFO, Some("rebound"));

/// A counter series whose labels are fixed when a policy is built, so
/// counting allocates nothing. The recorder is looked up at every increment,
/// so one installed after the policy was built is still honoured.
#[derive(Debug, Clone)]
pub(crate) struct CounterKey(metrics::Key);

impl CounterKey {
    /// `name{dependency=...,host=...}` (no `host` when `None`), plus
    /// `reason=...` when given.
    pub(crate) fn hosted(
        name: &'static str,
        dependency: &Arc<str>,
        host: Option<&Arc<str>>,
        reason: Option<&'static str>,
    ) -> Self {
        let mut labels = labels(dependency, host);
        if let Some(r) = reason {
            labels.push(metrics::Label::new("reason", r));
        }
        CounterKey(metrics::Key::from_parts(name, labels))
    }

    /// Adds one.
    #[inline]
    pub(crate) fn incr(&self) {
        metrics::with_recorder(|r| r.register_counter(&self.0, &METADATA).increment(1));
    }
}

/// A histogram series whose labels are fixed when a policy is built, so
/// recording allocates nothing.
#[derive(Debug, Clone)]
pub(crate) struct HistogramKey(metrics::Key);

impl HistogramKey {
    /// `name{dependency=...}`.
    pub(crate) fn new(name: &'static str, dependency: &Arc<str>) -> Self {
        HistogramKey(metrics::Key::from_parts(
            name,
            vec![metrics::Label::new(
                DEPENDENCY_LABEL,
                metrics::SharedString::from(Arc::clone(dependency)),
            )],
        ))
    }

    /// Records one value.
    #[inline]
    pub(crate) fn record(&self, value: f64) {
        metrics::with_recorder(|r| r.register_histogram(&self.0, &METADATA).record(value));
    }
}

/// Increments `name{dependency=...}` by one.
#[inline]
pub(crate) fn incr(name: &'static str, dependency: &Arc<str>) {
    metrics::counter!(name, DEPENDENCY_LABEL => metrics::SharedString::from(Arc::clone(dependency)))
        .increment(1);
}

/// Increments `name{dependency=...,host=...}` (no `host` when `None`) by
/// one, with `reason=...` when given.
pub(crate) fn incr_hosted(
    name: &'static str,
    dependency: &Arc<str>,
    host: Option<&Arc<str>>,
    reason: Option<&'static str>,
) {
    CounterKey::hosted(name, dependency, host, reason).incr();
}
