//! What the proxy injected and what it let through, as numbers and as
//! Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{FaultKind, Plan};

/// The live counters, shared by the proxy's connections.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    passed: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_errors: AtomicU64,
    injected: [AtomicU64; FaultKind::ALL.len()],
    delay_nanos: AtomicU64,
}

impl Counters {
    /// A request arrived and its plan was drawn.
    pub(crate) fn planned(&self, plan: &Plan) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if plan.is_clean() {
            self.passed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        for kind in plan.injected() {
            self.injected[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
        let delay = plan.request_delay().saturating_add(plan.response_delay());
        if !delay.is_zero() {
            let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
            let _ = self
                .delay_nanos
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_add(nanos))
                });
        }
    }

    pub(crate) fn upstream_request(&self) {
        self.upstream_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counts {
        // `passed` before `requests`: a request counts in `requests` first,
        // so a snapshot never has more passed than received.
        let passed = self.passed.load(Ordering::Relaxed);
        Counts {
            requests: self.requests.load(Ordering::Relaxed).max(passed),
            passed,
            upstream_requests: self.upstream_requests.load(Ordering::Relaxed),
            upstream_errors: self.upstream_errors.load(Ordering::Relaxed),
            injected: std::array::from_fn(|i| self.injected[i].load(Ordering::Relaxed)),
            injected_delay: Duration::from_nanos(self.delay_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// A snapshot of the proxy's counters since it started.
///
/// A request counts once in `requests`; then either in `passed` (no fault
/// hit it) or once in `injected` for each kind of fault that hit it (a
/// request can be both delayed and answered 503). `upstream_requests`
/// counts what reached the upstream — compare it with `requests` to see the
/// load the faults took off (or a retrying client put on) the upstream.
///
/// ```
/// # async fn demo(proxy: rebound_chaos::ChaosProxy) {
/// use rebound_chaos::FaultKind;
/// let counts = proxy.counts();
/// println!("{} requests, {} passed, {} reset", counts.requests(), counts.passed(), counts.injected(FaultKind::Reset));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    requests: u64,
    passed: u64,
    upstream_requests: u64,
    upstream_errors: u64,
    injected: [u64; FaultKind::ALL.len()],
    injected_delay: Duration,
}

impl Counts {
    /// Requests received (`chaos_requests_total`).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Requests no fault hit (`chaos_requests_passed_total`).
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// Requests that hit a fault of `kind`
    /// (`chaos_faults_injected_total{fault="<kind>"}`).
    pub fn injected(&self, kind: FaultKind) -> u64 {
        self.injected[kind.index()]
    }

    /// Requests that hit any fault.
    pub fn faulted(&self) -> u64 {
        self.requests.saturating_sub(self.passed)
    }

    /// Requests sent to the upstream (`chaos_upstream_requests_total`).
    pub fn upstream_requests(&self) -> u64 {
        self.upstream_requests
    }

    /// Requests answered 502 because the upstream could not be reached or
    /// failed (`chaos_upstream_errors_total`).
    pub fn upstream_errors(&self) -> u64 {
        self.upstream_errors
    }

    /// The latency added, summed over requests
    /// (`chaos_injected_delay_seconds_total`).
    pub fn injected_delay(&self) -> Duration {
        self.injected_delay
    }

    /// The counters in the Prometheus text exposition format, with
    /// `# HELP` and `# TYPE` lines; `phase` adds the `chaos_phase_info`
    /// gauge naming the timeline's current phase.
    pub fn to_prometheus(&self, phase: Option<&str>) -> String {
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, value: &dyn std::fmt::Display| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        counter(
            "chaos_requests_total",
            "Requests the chaos proxy received.",
            &self.requests,
        );
        counter(
            "chaos_requests_passed_total",
            "Requests no fault hit, passed to the upstream untouched.",
            &self.passed,
        );
        counter(
            "chaos_upstream_requests_total",
            "Requests sent to the upstream, with or without a fault.",
            &self.upstream_requests,
        );
        counter(
            "chaos_upstream_errors_total",
            "Requests answered 502 because the upstream could not be reached or failed.",
            &self.upstream_errors,
        );
        counter(
            "chaos_injected_delay_seconds_total",
            "Latency added by latency faults, summed over requests.",
            &self.injected_delay.as_secs_f64(),
        );
        out.push_str(
            "# HELP chaos_faults_injected_total Requests a fault hit, by kind of fault.\n\
             # TYPE chaos_faults_injected_total counter\n",
        );
        for kind in FaultKind::ALL {
            let _ = writeln!(
                out,
                "chaos_faults_injected_total{{fault=\"{kind}\"}} {}",
                self.injected(kind)
            );
        }
        if let Some(phase) = phase {
            out.push_str(
                "# HELP chaos_phase_info The timeline phase in force (value 1).\n\
                 # TYPE chaos_phase_info gauge\n",
            );
            let _ = writeln!(out, "chaos_phase_info{{phase=\"{}\"}} 1", escape(phase));
        }
        out
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultSet, Injector};
    use http::Method;

    #[test]
    fn plans_count_once_per_kind_or_as_passed() {
        let c = Counters::default();
        let inj =
            Injector::new(FaultSet::from_specs("latency delay=1s times=1\nerror times=2").unwrap());
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..4 {
            c.planned(&inj.plan(&Method::GET, "/", &mut rng));
        }
        let n = c.snapshot();
        assert_eq!(n.requests(), 4);
        assert_eq!(n.passed(), 2);
        assert_eq!(n.faulted(), 2);
        assert_eq!(n.injected(FaultKind::Latency), 1);
        assert_eq!(n.injected(FaultKind::Error), 2);
        assert_eq!(n.injected_delay(), Duration::from_secs(1));
    }

    #[test]
    fn prometheus_text_has_help_type_and_every_kind() {
        let c = Counters::default();
        c.upstream_request();
        let text = c.snapshot().to_prometheus(Some("out\"age"));
        assert!(text.contains("# HELP chaos_requests_total "));
        assert!(text.contains("# TYPE chaos_requests_total counter\nchaos_requests_total 0\n"));
        assert!(text.contains("chaos_upstream_requests_total 1\n"));
        for kind in FaultKind::ALL {
            assert!(text.contains(&format!(
                "chaos_faults_injected_total{{fault=\"{kind}\"}} 0\n"
            )));
        }
        assert!(text
            .contains("# TYPE chaos_phase_info gauge\nchaos_phase_info{phase=\"out\\\"age\"} 1\n"));
        // Every sample line belongs to a family announced by # TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let family = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
        }
    }
}
