//! What the check reports for one dependency: the answers to the retry
//! decision checklist and the findings, serializable as JSON.

use std::time::Duration;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Note,
    /// Likely a mistake.
    Warning,
    /// Makes an outage worse: the check fails.
    Danger,
}

/// One thing the check found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// A stable name for the rule.
    pub rule: &'static str,
    /// What and why, and what to do.
    pub message: String,
}

/// A layer that multiplies load.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// Where the file writes it.
    pub at: String,
    /// `retry` or `hedge`.
    pub kind: &'static str,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Whether it has a retry budget.
    pub budget: bool,
}

/// Worst-case latency of one call.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Every attempt taking its whole timeout and every backoff at its
    /// longest, within the limits; `None`: nothing bounds it.
    #[serde(serialize_with = "ms_opt")]
    pub worst_case_ms: Option<Duration>,
    /// The outermost limit on the whole call (a total timeout or a
    /// timeout around the retries); `None`: there is none.
    #[serde(serialize_with = "ms_opt")]
    pub total_timeout_ms: Option<Duration>,
    /// Per retry layer: attempts that start before its total timeout in
    /// the worst case, of `max_attempts`.
    pub attempts_that_fit: Vec<AttemptsFit>,
    /// The longest delay a server's `Retry-After` may ask for (HTTP).
    #[serde(serialize_with = "ms_opt")]
    pub max_server_delay_ms: Option<Duration>,
}

/// Attempts of one retry layer that fit in its total timeout.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptsFit {
    /// Where the file writes the layer.
    pub at: String,
    /// Attempts that start in time in the worst case.
    pub fit: u32,
    /// Attempts configured.
    pub max_attempts: u32,
    /// One attempt at its longest (`None`: unbounded).
    #[serde(serialize_with = "ms_opt")]
    pub attempt_ms: Option<Duration>,
    /// Every attempt and backoff at its longest, before the total timeout.
    #[serde(serialize_with = "ms_opt")]
    pub uncapped_ms: Option<Duration>,
}

/// The load on the dependency while it is dead.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Attempts per call at most: the product of the layers' attempts.
    pub attempts_per_call: u64,
    /// Calls per second the measurement used.
    pub rate: f64,
    /// Measured attempts per call, with the file's budgets.
    pub with_budget: Option<f64>,
    /// Measured attempts per call without them (`None`: no budget to remove).
    pub without_budget: Option<f64>,
    /// Why it could not be measured.
    pub not_measured: Option<String>,
}

/// What happens when retrying stops.
#[derive(Debug, Clone, Serialize)]
pub struct GiveUp {
    /// The reasons a call can give up with (the `reason` label of
    /// `retry_exhausted_total`).
    pub reasons: Vec<&'static str>,
    /// What the caller gets.
    pub outcome: String,
}

/// Which failures are retried.
#[derive(Debug, Clone, Serialize)]
pub struct Transient {
    /// Through the closure API, tower layers and pipelines.
    pub code: String,
    /// Statuses rebound-http retries by default.
    pub http_statuses: Vec<u16>,
    /// Other outcomes rebound-http retries by default.
    pub http_other: String,
}

/// Whether non-idempotent calls are retried and what protects them.
#[derive(Debug, Clone, Serialize)]
pub struct Idempotency {
    /// HTTP methods retried as they are (idempotent by RFC 9110).
    pub http_retried: Vec<String>,
    /// HTTP methods retried only with an `Idempotency-Key`.
    pub http_with_key: Vec<String>,
    /// HTTP methods never retried.
    pub http_never: Vec<String>,
    /// What protects writes.
    pub protection: String,
}

/// The checklist answered for one dependency.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyReport {
    /// The dependency's name.
    pub name: String,
    /// The policies a call passes through, outermost first.
    pub call_path: Vec<String>,
    /// How tables the service's code combines were assumed to combine.
    pub assumptions: Vec<String>,
    /// 1. Is the failure transient?
    pub transient: Transient,
    /// 2. Is the operation safe to retry?
    pub idempotency: Idempotency,
    /// 3. Who owns the retry: the layers that multiply load.
    pub layers: Vec<Layer>,
    /// 4. The policy's effect: load on a dead dependency.
    pub dead_dependency: Load,
    /// 4. The policy's effect: latency.
    pub latency: Latency,
    /// 5. What happens when retries fail.
    pub give_up: GiveUp,
    /// 6. The series that show it (`name{labels}`).
    pub metrics: Vec<String>,
    /// What is wrong or worth knowing.
    pub findings: Vec<Finding>,
}

fn ms_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3),
        None => s.serialize_none(),
    }
}

/// `1.5s`, `300ms`, `2m` (humantime, rounded to the millisecond).
pub fn human(d: Duration) -> String {
    let ms = Duration::from_millis(d.as_millis().min(u64::MAX as u128) as u64);
    let d = if ms.is_zero() { d } else { ms };
    humantime::format_duration(d).to_string().replace(' ', "")
}
