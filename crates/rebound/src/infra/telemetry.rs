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
//! | `hedge_attempts_total` | counter | hedged copies sent: attempts after the first |
//! | `fallback_used_total` | counter | times a fallback produced the result; label `reason` |
//!
//! Every metric is **described** (unit and help text, the `# HELP` line of
//! a Prometheus page: [`METRICS`], [`describe`]) and its series are
//! **registered at zero** when the policy that emits them is built, so a
//! dashboard shows `0` rather than no data before the first failure —
//! provided the recorder (exporter) is installed before the policies are
//! built. With the `prometheus` feature, `telemetry::prometheus::install()` does both in
//! one line; [`crate::state`] holds the live state of every policy for a
//! `/resilience` endpoint.
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
/// `hedge_attempts_total`: hedged copies sent (attempts after the first).
pub const HEDGE_ATTEMPTS_TOTAL: &str = "hedge_attempts_total";

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

/// Whether a metric counts, or reads a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of observed values.
    Histogram,
}

/// One metric rebound emits: its name, kind, unit and help text.
#[derive(Debug, Clone, Copy)]
pub struct MetricInfo {
    /// The name, e.g. `retry_attempts_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// The unit, when it has one.
    pub unit: Option<metrics::Unit>,
    /// The help text (`# HELP` on a Prometheus page).
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> MetricInfo {
    MetricInfo {
        name,
        kind: MetricKind::Counter,
        unit: Some(metrics::Unit::Count),
        help,
    }
}

/// Every metric of the `rebound` crates, described. [`describe`] hands them
/// to the installed recorder; policies do so when they are built.
///
/// ```
/// use rebound::telemetry::{MetricKind, METRICS};
/// let state = METRICS.iter().find(|m| m.name == "circuit_breaker_state").unwrap();
/// assert_eq!(state.kind, MetricKind::Gauge);
/// assert!(METRICS.iter().all(|m| !m.help.is_empty()));
/// ```
pub const METRICS: &[MetricInfo] = &[
    counter(
        RETRY_ATTEMPTS_TOTAL,
        "Retries made: attempts after the first, by dependency.",
    ),
    counter(
        RETRY_EXHAUSTED_TOTAL,
        "Calls given up while still failing transiently, by dependency and reason (attempts, deadline, budget, throttled, breaker_open).",
    ),
    counter(
        RETRY_BUDGET_EXHAUSTED_TOTAL,
        "Retries refused by a retry budget, by dependency.",
    ),
    counter(
        DEPENDENCY_TIMEOUT_TOTAL,
        "Attempts and calls cut off by a timeout, by dependency.",
    ),
    counter(
        CIRCUIT_BREAKER_OPEN_TOTAL,
        "Times a circuit breaker opened, by dependency.",
    ),
    MetricInfo {
        name: CIRCUIT_BREAKER_STATE,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Circuit breaker state, by dependency: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled.",
    },
    counter(
        CIRCUIT_BREAKER_REJECTED_TOTAL,
        "Calls a circuit breaker refused, by dependency.",
    ),
    counter(
        BULKHEAD_REJECTED_TOTAL,
        "Calls a full bulkhead refused, by dependency and reason (full, queue_full, max_wait).",
    ),
    counter(
        THROTTLE_REJECTED_TOTAL,
        "Requests an adaptive client-side throttle refused locally, by dependency.",
    ),
    counter(
        HEDGE_ATTEMPTS_TOTAL,
        "Hedged copies sent: attempts after the first, by dependency.",
    ),
    counter(
        FALLBACK_USED_TOTAL,
        "Times a fallback produced the result, by dependency and reason.",
    ),
    counter(
        IDEMPOTENCY_KEY_REUSED_TOTAL,
        "Requests whose Idempotency-Key was seen before (replayed, in progress, mismatched), by dependency and outcome.",
    ),
    counter(
        "idempotency_requests_total",
        "Requests through an idempotency layer, by dependency and outcome.",
    ),
    counter(
        DEAD_LETTER_MESSAGES_TOTAL,
        "Messages moved to a dead-letter queue, by queue and reason.",
    ),
    counter(
        "retry_not_allowed_total",
        "Transient failures not retried because of the request (rebound-http: missing_idempotency_key, method, streaming_body), by dependency, host and reason.",
    ),
    counter(
        COALESCED_CALLS_TOTAL,
        "Calls answered by another caller's call in flight (request coalescing), by dependency.",
    ),
    MetricInfo {
        name: COALESCE_FOLLOWERS,
        kind: MetricKind::Histogram,
        unit: Some(metrics::Unit::Count),
        help: "Followers one coalesced call served, by dependency.",
    },
    counter(
        CACHE_EARLY_REFRESH_TOTAL,
        "Cache entries refreshed before they expired (probabilistic early expiration), by dependency.",
    ),
];

/// Describes every metric of [`METRICS`] to the installed recorder (unit
/// and help text). Policies call it when they are built; call it yourself
/// after installing a recorder if policies were built before.
pub fn describe() {
    for m in METRICS {
        match (m.kind, m.unit) {
            (MetricKind::Counter, Some(u)) => metrics::describe_counter!(m.name, u, m.help),
            (MetricKind::Counter, None) => metrics::describe_counter!(m.name, m.help),
            (MetricKind::Gauge, Some(u)) => metrics::describe_gauge!(m.name, u, m.help),
            (MetricKind::Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (MetricKind::Histogram, Some(u)) => metrics::describe_histogram!(m.name, u, m.help),
            (MetricKind::Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// Registers `name{dependency=..., reason=...}` at zero (an existing series
/// keeps its value), after describing every metric.
pub(crate) fn register_counter(
    name: &'static str,
    dependency: &Arc<str>,
    reason: Option<&'static str>,
) {
    CounterKey::hosted(name, dependency, None, reason).touch();
}

/// Registers every series a policy of `kind` emits, at zero.
pub(crate) fn register_all(names: &[&'static str], dependency: &Arc<str>) {
    describe();
    for n in names {
        register_counter(n, dependency, None);
    }
}

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

    /// Registers the series without changing it (a new one reads 0).
    pub(crate) fn touch(&self) {
        metrics::with_recorder(|r| r.register_counter(&self.0, &METADATA).increment(0));
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
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) struct HistogramKey(metrics::Key);

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
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

/// A Prometheus exporter in one line (feature `prometheus`).
///
/// ```no_run
/// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
/// // Install before building policies, so their series start at 0.
/// let metrics = rebound::telemetry::prometheus::install()?;
/// // ... build policies, then serve `metrics.render()` at `/metrics`.
/// let page: String = metrics.render();
/// # Ok(()) }
/// ```
#[cfg(feature = "prometheus")]
pub mod prometheus {
    pub use metrics_exporter_prometheus::{BuildError, PrometheusHandle};

    /// Installs a Prometheus recorder as the global `metrics` recorder,
    /// describes every rebound metric, and returns the handle whose
    /// [`render`](PrometheusHandle::render) is the text page to serve.
    /// Fails if a recorder is already installed.
    pub fn install() -> Result<PrometheusHandle, BuildError> {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
        super::describe();
        Ok(handle)
    }
}
