//! The decision for one request: which faults hit it. Sans-IO — given the
//! request's method and path and a random generator, [`Injector::plan`]
//! answers what to do; the proxy does it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;

use crate::fault::{Effect, LatencyAt, RetryAfter};
use crate::{Fault, FaultKind, SpecError};

/// Faults in force together, checked.
///
/// How faults combine on one request:
/// * each fault whose [`Scope`](crate::Scope) matches hits with its rate
///   (an independent draw) until its `times` are used up;
/// * at most one of `error`, `throttle`, `reset`, `drop_response` and
///   `blackhole` hits: the first in the list that does;
/// * latencies add up (one before the upstream and one after it both
///   apply), except on a blackholed request;
/// * a `slow_body` applies to answers that come from the upstream (the
///   first one that hits).
///
/// ```
/// use rebound_chaos::{Fault, FaultSet};
///
/// let set = FaultSet::new(["error status=503 rate=0.1".parse::<Fault>()?, Fault::reset().with_rate(0.05)])?;
/// assert_eq!(set.len(), 2);
/// assert!(FaultSet::healthy().is_empty());
/// assert!(FaultSet::new([Fault::error(503).with_rate(7.0)]).is_err());
/// # Ok::<(), rebound_chaos::SpecError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSet {
    faults: Vec<Fault>,
}

impl FaultSet {
    /// Checks each fault; the error names the first bad one, as
    /// `faults[i].field`.
    pub fn new(faults: impl IntoIterator<Item = Fault>) -> Result<Self, SpecError> {
        let faults: Vec<Fault> = faults.into_iter().collect();
        for (i, f) in faults.iter().enumerate() {
            f.check()
                .map_err(|(field, why)| SpecError::new(format!("faults[{i}].{field}"), why))?;
        }
        Ok(FaultSet { faults })
    }

    /// Faults already checked one by one.
    pub(crate) fn from_checked(faults: Vec<Fault>) -> Self {
        FaultSet { faults }
    }

    /// No faults: every request passes untouched.
    pub fn healthy() -> Self {
        FaultSet::default()
    }

    /// The faults, in order.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// How many faults.
    pub fn len(&self) -> usize {
        self.faults.len()
    }

    /// Whether there are none (healthy).
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// These faults followed by `other`'s.
    pub fn and(mut self, other: FaultSet) -> Self {
        self.faults.extend(other.faults);
        self
    }
}

impl std::fmt::Display for FaultSet {
    /// One spec per line; `healthy` when empty.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.faults.is_empty() {
            return f.write_str("healthy");
        }
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{fault}")?;
        }
        Ok(())
    }
}

/// A [`FaultSet`] in force: decides each request's [`Plan`] and counts
/// each fault's hits against its `times`.
///
/// The proxy makes one when faults are put in force (a timeline phase
/// starts, the control API sets faults), so `times` count afresh each time.
/// Usable on its own to inject faults into any server.
///
/// ```
/// use http::Method;
/// use rebound_chaos::{Action, Fault, FaultKind, FaultSet, Injector};
///
/// let injector = Injector::new(FaultSet::new([Fault::error(503).with_times(1)])?);
/// let mut rng = fastrand::Rng::with_seed(1);
/// let first = injector.plan(&Method::GET, "/stock", &mut rng);
/// assert_eq!(first.action(), &Action::Respond { kind: FaultKind::Error, status: 503, retry_after: None });
/// let second = injector.plan(&Method::GET, "/stock", &mut rng);
/// assert!(second.is_clean());
/// # Ok::<(), rebound_chaos::SpecError>(())
/// ```
#[derive(Debug)]
pub struct Injector {
    faults: FaultSet,
    hits: Box<[AtomicU64]>,
}

impl Injector {
    /// Puts `faults` in force, with no hits yet.
    pub fn new(faults: FaultSet) -> Self {
        let hits = faults.faults.iter().map(|_| AtomicU64::new(0)).collect();
        Injector { faults, hits }
    }

    /// The faults in force.
    pub fn faults(&self) -> &FaultSet {
        &self.faults
    }

    /// What to do with a request: see [`FaultSet`] for how faults combine.
    pub fn plan(&self, method: &Method, path: &str, rng: &mut fastrand::Rng) -> Plan {
        let mut plan = Plan::clean();
        if self.faults.faults.is_empty() {
            return plan;
        }
        // The answer first: the first of the faults that replace it.
        for (i, fault) in self.faults.faults.iter().enumerate() {
            let action = match fault.effect() {
                Effect::Error { status } => Action::Respond {
                    kind: FaultKind::Error,
                    status: *status,
                    retry_after: None,
                },
                Effect::Throttle {
                    status,
                    retry_after,
                } => Action::Respond {
                    kind: FaultKind::Throttle,
                    status: *status,
                    retry_after: Some(*retry_after),
                },
                Effect::Reset => Action::Reset,
                Effect::DropResponse => Action::DropResponse,
                Effect::Blackhole => Action::Blackhole,
                Effect::Latency { .. } | Effect::SlowBody { .. } => continue,
            };
            if self.hits(i, fault, method, path, rng) {
                plan.injected |= 1 << fault.kind().index();
                plan.action = action;
                break;
            }
        }
        // Then what changes the answer's timing.
        for (i, fault) in self.faults.faults.iter().enumerate() {
            match fault.effect() {
                Effect::Latency { latency, at }
                    if plan.action != Action::Blackhole
                        && self.hits(i, fault, method, path, rng) =>
                {
                    plan.injected |= 1 << FaultKind::Latency.index();
                    let delay = latency.sample(rng);
                    match at {
                        LatencyAt::Request => {
                            plan.request_delay = plan.request_delay.saturating_add(delay)
                        }
                        LatencyAt::Response => {
                            plan.response_delay = plan.response_delay.saturating_add(delay)
                        }
                    }
                }
                Effect::SlowBody {
                    chunk_bytes,
                    interval,
                } if plan.action == Action::Forward
                    && plan.slow_body.is_none()
                    && self.hits(i, fault, method, path, rng) =>
                {
                    plan.injected |= 1 << FaultKind::SlowBody.index();
                    plan.slow_body = Some((*chunk_bytes, *interval));
                }
                _ => {}
            }
        }
        plan
    }

    /// Whether fault `i` hits this request: in scope, drawn at its rate,
    /// and with a hit left under its `times`.
    fn hits(
        &self,
        i: usize,
        fault: &Fault,
        method: &Method,
        path: &str,
        rng: &mut fastrand::Rng,
    ) -> bool {
        if !fault.scope().matches(method, path) {
            return false;
        }
        let rate = fault.rate();
        if rate < 1.0 && rng.f64() >= rate {
            return false;
        }
        match fault.times() {
            None => true,
            Some(times) => self.hits[i]
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < times).then_some(n + 1)
                })
                .is_ok(),
        }
    }
}

/// What the proxy does instead of (or on top of) forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Forward the request and pass the answer on.
    Forward,
    /// Answer this status without calling the upstream.
    Respond {
        /// `Error` or `Throttle`.
        kind: FaultKind,
        /// The status.
        status: u16,
        /// The `Retry-After` header to send, if any.
        retry_after: Option<RetryAfter>,
    },
    /// Reset the connection without calling the upstream.
    Reset,
    /// Forward, let the upstream answer, then reset the connection.
    DropResponse,
    /// Never answer.
    Blackhole,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    action: Action,
    request_delay: Duration,
    response_delay: Duration,
    slow_body: Option<(usize, Duration)>,
    injected: u8,
}

impl Plan {
    /// Forward untouched.
    pub const fn clean() -> Self {
        Plan {
            action: Action::Forward,
            request_delay: Duration::ZERO,
            response_delay: Duration::ZERO,
            slow_body: None,
            injected: 0,
        }
    }

    /// What to answer.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The wait before anything else.
    pub fn request_delay(&self) -> Duration {
        self.request_delay
    }

    /// The wait before the answer is sent.
    pub fn response_delay(&self) -> Duration {
        self.response_delay
    }

    /// `(chunk_bytes, interval)` when the body is to be trickled.
    pub fn slow_body(&self) -> Option<(usize, Duration)> {
        self.slow_body
    }

    /// Whether no fault hit the request.
    pub fn is_clean(&self) -> bool {
        self.injected == 0
    }

    /// The kinds of fault that hit the request.
    pub fn injected(&self) -> impl Iterator<Item = FaultKind> + '_ {
        FaultKind::ALL
            .into_iter()
            .filter(|k| self.injected & (1 << k.index()) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Latency, Scope};

    fn set(specs: &str) -> Injector {
        Injector::new(FaultSet::from_specs(specs).unwrap())
    }

    fn plans(inj: &Injector, n: usize) -> Vec<Plan> {
        let mut rng = fastrand::Rng::with_seed(9);
        (0..n)
            .map(|_| inj.plan(&Method::GET, "/x", &mut rng))
            .collect()
    }

    #[test]
    fn healthy_plans_are_clean() {
        assert!(plans(&Injector::new(FaultSet::healthy()), 10)
            .iter()
            .all(|p| p.is_clean() && p.action() == &Action::Forward));
    }

    #[test]
    fn a_rate_hits_that_share_of_requests() {
        let hits = plans(&set("error rate=0.2"), 10_000)
            .iter()
            .filter(|p| !p.is_clean())
            .count();
        assert!((1_850..=2_150).contains(&hits), "{hits}");
        assert!(plans(&set("error rate=0"), 1000).iter().all(Plan::is_clean));
    }

    #[test]
    fn times_caps_the_hits_exactly() {
        let p = plans(&set("reset times=3"), 10);
        assert!(p[..3].iter().all(|p| p.action() == &Action::Reset));
        assert!(p[3..].iter().all(Plan::is_clean));
    }

    #[test]
    fn the_first_answer_replacing_fault_wins_and_latencies_add() {
        let p = &plans(
            &set("latency delay=100ms\nerror status=502\nreset\nlatency delay=50ms at=response\nlatency delay=1ms"),
            1,
        )[0];
        assert_eq!(
            p.action(),
            &Action::Respond {
                kind: FaultKind::Error,
                status: 502,
                retry_after: None
            }
        );
        assert_eq!(p.request_delay(), Duration::from_millis(101));
        assert_eq!(p.response_delay(), Duration::from_millis(50));
        assert_eq!(
            p.injected().collect::<Vec<_>>(),
            [FaultKind::Latency, FaultKind::Error]
        );
    }

    #[test]
    fn a_slow_body_applies_only_to_forwarded_answers() {
        let p = &plans(&set("slow_body\nerror"), 1)[0];
        assert_eq!(p.slow_body(), None);
        assert_eq!(p.injected().collect::<Vec<_>>(), [FaultKind::Error]);
        let p = &plans(&set("slow_body chunk_bytes=3"), 1)[0];
        assert_eq!(p.slow_body(), Some((3, Duration::from_millis(100))));
    }

    #[test]
    fn a_blackhole_takes_no_latency() {
        let inj = set("blackhole\nlatency delay=1s times=1");
        let p = &plans(&inj, 1)[0];
        assert_eq!(p.action(), &Action::Blackhole);
        assert_eq!(p.request_delay(), Duration::ZERO);
        // The latency's single hit was not spent on the blackholed request.
        assert_eq!(inj.hits[1].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn scopes_choose_the_requests() {
        let inj = Injector::new(
            FaultSet::new([Fault::error(503)
                .with_scope(Scope::any().method(Method::POST).path_prefix("/orders"))])
            .unwrap(),
        );
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(!inj.plan(&Method::POST, "/orders/1", &mut rng).is_clean());
        assert!(inj.plan(&Method::GET, "/orders/1", &mut rng).is_clean());
        assert!(inj.plan(&Method::POST, "/stock", &mut rng).is_clean());
    }

    #[test]
    fn the_same_seed_gives_the_same_plans() {
        let make = || {
            Injector::new(
                FaultSet::new([
                    Fault::latency(Latency::uniform(Duration::ZERO, Duration::from_secs(1)))
                        .with_rate(0.5),
                    Fault::reset().with_rate(0.1),
                ])
                .unwrap(),
            )
        };
        assert_eq!(plans(&make(), 200), plans(&make(), 200));
    }

    #[test]
    fn fault_set_errors_name_the_fault() {
        let e = FaultSet::new([Fault::reset(), Fault::error(200)]).unwrap_err();
        assert_eq!(e.path(), "faults[1].status");
    }
}
