//! The retry decision checklist for one dependency, answered from the real
//! policy objects its table builds.

use std::time::Duration;

use http::{Method, StatusCode};
use rebound::config::DependencyConfig;
use rebound::hedge::HedgeDelay;
use rebound::telemetry as t;
use rebound::Stop;
use rebound_http::{HttpClassifier, MethodRule};

use super::load::{self, DeadLoad};
use super::path::{CallPath, Step};
use super::report::{
    human, AttemptsFit, DependencyReport, Finding, GiveUp, Idempotency, Latency, Layer, Load,
    Severity, Transient,
};

/// Answers the checklist for `name`.
pub fn dependency(
    name: &str,
    dep: &DependencyConfig,
    rate: f64,
) -> Result<DependencyReport, rebound::ConfigError> {
    let path = CallPath::build(name, dep)?;
    let mut findings = Vec::new();
    let layers: Vec<Layer> = path
        .steps
        .iter()
        .filter_map(|p| match &p.step {
            Step::Retry(r) => Some(Layer {
                at: p.at.clone(),
                kind: "retry",
                max_attempts: r.max_attempts(),
                budget: r.budget().is_some(),
            }),
            Step::Hedge(h, _) => Some(Layer {
                at: p.at.clone(),
                kind: "hedge",
                max_attempts: h.max_attempts(),
                budget: h.budget().is_some(),
            }),
            _ => None,
        })
        .collect();
    let multipliers = path.multipliers();
    let attempts_per_call = multipliers
        .iter()
        .fold(1u64, |acc, (_, n, _)| acc.saturating_mul(u64::from(*n)));

    // Who owns the retry, and what limits it.
    if multipliers.len() >= 2 && multipliers.iter().any(|(_, _, b)| !b) {
        let product = multipliers
            .iter()
            .map(|(at, n, _)| format!("{n} ({at})"))
            .collect::<Vec<_>>()
            .join(" × ");
        let bare = multipliers
            .iter()
            .filter(|(_, _, b)| !b)
            .map(|(at, ..)| format!("`{at}`"))
            .collect::<Vec<_>>()
            .join(", ");
        findings.push(Finding {
            severity: Severity::Danger,
            rule: "layered-retries-without-budget",
            message: format!(
                "retries at {} layers multiply: {product} = {attempts_per_call} attempts per call on a dead dependency, and {bare} has no budget; give every retrying layer a budget, or retry at one layer only",
                multipliers.len()
            ),
        });
    } else if attempts_per_call > 1 && !path.has_load_limit() {
        findings.push(Finding {
            severity: Severity::Danger,
            rule: "unbounded-amplification",
            message: format!(
                "nothing limits retries across calls (no budget, breaker or throttle): while the dependency is down every call sends {attempts_per_call} attempts, for as long as it is down, at any traffic; add `budget = {{ kind = \"ratio\", ratio = 0.1 }}` to the retry"
            ),
        });
    } else if let Some((at, n, _)) = multipliers.iter().find(|(_, _, b)| !b) {
        findings.push(Finding {
            severity: Severity::Warning,
            rule: "no-budget",
            message: format!(
                "`{at}` has no retry budget: up to {n}× load until its breaker or throttle reacts; a ratio budget caps retries at a share of the traffic"
            ),
        });
    }
    for p in &path.steps {
        if let Step::Hedge(_, false) = p.step {
            findings.push(Finding {
                severity: Severity::Warning,
                rule: "hedge-not-idempotent",
                message: format!(
                    "`{}` sends copies of a call at the same time, but the file does not say the calls are idempotent (`idempotent = true`)",
                    p.at
                ),
            });
        }
    }

    let latency = latency(&path, &mut findings);
    let dead = match load::measure(name, dep, rate) {
        Ok(DeadLoad {
            with_budget,
            without_budget,
        }) => Load {
            attempts_per_call,
            rate,
            with_budget: Some(round2(with_budget)),
            without_budget: without_budget.map(round2),
            not_measured: None,
        },
        Err(e) => Load {
            attempts_per_call,
            rate,
            with_budget: None,
            without_budget: None,
            not_measured: Some(e),
        },
    };
    let give_up = give_up(&path);
    if !give_up.reasons.is_empty() {
        findings.push(Finding {
            severity: Severity::Note,
            rule: "no-fallback",
            message: "on give-up the caller gets the last error: the file declares no fallback; wrap the call in `rebound::fallback` (or a `FallbackLayer`) if a degraded answer is better than an error".into(),
        });
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(DependencyReport {
        name: name.to_string(),
        call_path: path.steps.iter().map(describe).collect(),
        assumptions: path.assumptions.clone(),
        transient: transient(),
        idempotency: idempotency(&path),
        layers,
        dead_dependency: dead,
        latency,
        give_up,
        metrics: metrics(name, &path),
        findings,
    })
}

fn round2(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn describe(p: &super::path::Placed) -> String {
    let what = match &p.step {
        Step::Timeout(t) => format!("timeout {}", human(*t)),
        Step::Retry(r) => {
            let mut parts = vec![format!("retry ×{}", r.max_attempts())];
            if let Some(a) = r.attempt_timeout() {
                parts.push(format!("attempt {}", human(a)));
            }
            if let Some(a) = r.total_timeout() {
                parts.push(format!("total {}", human(a)));
            }
            if r.budget().is_some() {
                parts.push("budget".into());
            }
            if r.breaker().is_some() {
                parts.push("breaker".into());
            }
            if r.throttle().is_some() {
                parts.push("throttle".into());
            }
            parts.join(", ")
        }
        Step::Hedge(h, _) => {
            let delay = match h.delay() {
                HedgeDelay::Fixed(d) => format!("after {}", human(d)),
                _ => "adaptive delay".into(),
            };
            let budget = if h.budget().is_some() { ", budget" } else { "" };
            format!("hedge ×{}, {delay}{budget}", h.max_attempts())
        }
        Step::Breaker => "circuit breaker".into(),
        Step::Bulkhead => "bulkhead".into(),
        Step::Throttle => "adaptive throttle".into(),
    };
    format!("{what} ({})", p.at)
}

/// Worst-case latency, walking the path from the innermost step out, and
/// the timeouts that cut retries (or leave no room for one attempt).
fn latency(path: &CallPath, findings: &mut Vec<Finding>) -> Latency {
    // The longest the part inside the current step can take (`None`: no bound).
    let mut inside: Option<Duration> = None;
    let mut fits = Vec::new();
    // Per retry layer, its longest attempt, with its index on the path.
    let mut attempts: Vec<(usize, Duration)> = Vec::new();
    let mut server_delay = None;
    for (i, p) in path.steps.iter().enumerate().rev() {
        match &p.step {
            Step::Timeout(t) => inside = Some(inside.map_or(*t, |d| d.min(*t))),
            Step::Retry(r) => {
                server_delay = Some(r.max_server_delay());
                let attempt = match (inside, r.attempt_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let n = r.max_attempts();
                let uncapped = attempt.map(|a| {
                    (0..n.saturating_sub(1))
                        .map(|k| r.backoff().longest_delay(k))
                        .fold(a.saturating_mul(n), Duration::saturating_add)
                });
                let fit = match (attempt, r.total_timeout()) {
                    (Some(a), Some(total)) => {
                        let mut start = Duration::ZERO;
                        let mut k = 0;
                        while k < n && start < total {
                            k += 1;
                            start = start
                                .saturating_add(a)
                                .saturating_add(r.backoff().longest_delay(k - 1));
                        }
                        k
                    }
                    _ => n,
                };
                if fit < n {
                    let severity = if fit <= 1 && n > 1 {
                        Severity::Warning
                    } else {
                        Severity::Note
                    };
                    findings.push(Finding {
                        severity,
                        rule: "total-timeout-cuts-attempts",
                        message: format!(
                            "`{}`: in the worst case only {fit} of {n} attempts start within the total timeout of {}",
                            p.at,
                            human(r.total_timeout().unwrap_or_default())
                        ),
                    });
                }
                if attempt.is_none() {
                    findings.push(Finding {
                        severity: Severity::Warning,
                        rule: "no-attempt-timeout",
                        message: format!(
                            "`{}` has no attempt timeout: one hung attempt holds the call{}; set `attempt_timeout`",
                            p.at,
                            if r.total_timeout().is_some() {
                                " until the total timeout and leaves no time to retry"
                            } else {
                                " forever"
                            }
                        ),
                    });
                }
                if let Some(a) = attempt {
                    attempts.push((i, a));
                }
                fits.push(AttemptsFit {
                    at: p.at.clone(),
                    fit,
                    max_attempts: n,
                    attempt_ms: attempt,
                    uncapped_ms: uncapped,
                });
                inside = match (uncapped, r.total_timeout()) {
                    (Some(u), Some(t)) => Some(u.min(t)),
                    (u, t) => u.or(t),
                };
            }
            Step::Hedge(h, _) => {
                // The last copy starts after every delay and may take as
                // long as the first.
                if let (Some(d), HedgeDelay::Fixed(delay)) = (inside, h.delay()) {
                    inside = Some(d.saturating_add(delay.saturating_mul(h.max_attempts() - 1)));
                }
            }
            Step::Breaker | Step::Bulkhead | Step::Throttle => {}
        }
    }
    fits.reverse();
    // A limit outside a retry layer shorter than one of its attempts.
    for (i, attempt) in &attempts {
        for p in &path.steps[..*i] {
            let limit = match &p.step {
                Step::Timeout(t) => Some((*t, "timeout")),
                Step::Retry(r) => r
                    .attempt_timeout()
                    .map(|a| (a, "attempt timeout"))
                    .or(r.total_timeout().map(|t| (t, "total timeout"))),
                _ => None,
            };
            if let Some((limit, what)) = limit {
                if limit < *attempt {
                    findings.push(Finding {
                        severity: Severity::Danger,
                        rule: "timeout-shorter-than-attempt",
                        message: format!(
                            "the {what} of `{}` ({}) is shorter than one attempt of `{}` ({}): the call is cut before its first attempt can fail, so it never retries; make the outer limit cover the inner attempts and backoffs",
                            p.at,
                            human(limit),
                            path.steps[*i].at,
                            human(*attempt)
                        ),
                    });
                }
            }
        }
    }
    let total = path.steps.iter().find_map(|p| match &p.step {
        Step::Timeout(t) => Some(*t),
        Step::Retry(r) => r.total_timeout(),
        _ => None,
    });
    if inside.is_none() && !fits.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            rule: "unbounded-latency",
            message: "no timeout bounds the call: a dependency that hangs holds callers (and their threads, connections, memory) forever; set `attempt_timeout` and `total_timeout`".into(),
        });
    }
    Latency {
        worst_case_ms: inside,
        total_timeout_ms: total,
        attempts_that_fit: fits,
        max_server_delay_ms: server_delay,
    }
}

fn give_up(path: &CallPath) -> GiveUp {
    let mut reasons = Vec::new();
    let mut add = |s: Stop| {
        if !reasons.contains(&s.as_str()) {
            reasons.push(s.as_str());
        }
    };
    for p in &path.steps {
        match &p.step {
            Step::Retry(r) => {
                add(Stop::AttemptsExhausted);
                if r.total_timeout().is_some() {
                    add(Stop::DeadlineExceeded {
                        requested_delay: None,
                    });
                }
                if r.budget().is_some() {
                    add(Stop::BudgetExhausted);
                }
                if r.breaker().is_some() {
                    add(Stop::BreakerOpen);
                }
                add(Stop::Throttled { retry_after: None });
            }
            Step::Breaker => add(Stop::BreakerOpen),
            Step::Bulkhead => add(Stop::BulkheadFull),
            _ => {}
        }
    }
    let outcome = if reasons.is_empty() {
        "no retries: the caller gets the first failure".to_string()
    } else {
        "the caller gets the last error with the reason (`RetryError`, `rebound_http::Error`, or the last response with its `RetryReport`); no fallback or dead-letter is declared in the file".to_string()
    };
    GiveUp { reasons, outcome }
}

fn transient() -> Transient {
    let classifier = HttpClassifier::new();
    let http_statuses = (100..=599u16)
        .filter(|s| StatusCode::from_u16(*s).is_ok_and(|s| classifier.is_retryable_status(s)))
        .collect();
    Transient {
        code: "every error and every timeout, unless the call's classifier says permanent (the default `RetryErrors` retries them all; `rebound::classify::error_chain` keeps only transient I/O errors)".into(),
        http_statuses,
        http_other: "connect errors, resets, connections closed before the response, timeouts; 409 with a Retry-After".into(),
    }
}

fn idempotency(path: &CallPath) -> Idempotency {
    let classifier = HttpClassifier::new();
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
        Method::POST,
        Method::PATCH,
        Method::CONNECT,
    ];
    let with = |rule: MethodRule| {
        methods
            .iter()
            .filter(|m| classifier.method_rule(m) == rule)
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
    };
    let retries = path.multipliers().iter().any(|(_, n, _)| *n > 1);
    let protection = if !retries {
        "no retries: every call is sent once".to_string()
    } else {
        let hedged = path.steps.iter().any(|p| matches!(p.step, Step::Hedge(..)));
        format!(
            "rebound-http sends a POST or PATCH once unless it carries an `Idempotency-Key` (or the middleware generates one: `generate_idempotency_keys(true)`), and every attempt sends the same key, so a server deduplicating with it (rebound-idempotency) runs the write once; the closure API and tower layers retry whatever they are given: retry writes only with such a key{}",
            if hedged {
                "; hedging sends copies at the same time, so only for idempotent calls"
            } else {
                ""
            }
        )
    };
    Idempotency {
        http_retried: with(MethodRule::Retry),
        http_with_key: with(MethodRule::RetryWithIdempotencyKey),
        http_never: with(MethodRule::Never),
        protection,
    }
}

fn metrics(name: &str, path: &CallPath) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |metric: &str, extra: &str| {
        let s = format!("{metric}{{dependency=\"{name}\"{extra}}}");
        if !out.contains(&s) {
            out.push(s);
        }
    };
    let breaker = |add: &mut dyn FnMut(&str, &str)| {
        add(t::CIRCUIT_BREAKER_STATE, "");
        add(t::CIRCUIT_BREAKER_OPEN_TOTAL, "");
        add(t::CIRCUIT_BREAKER_REJECTED_TOTAL, "");
    };
    for p in &path.steps {
        match &p.step {
            Step::Retry(r) => {
                add(t::RETRY_ATTEMPTS_TOTAL, "");
                add(t::RETRY_EXHAUSTED_TOTAL, ",reason=…");
                if r.attempt_timeout().is_some() || r.total_timeout().is_some() {
                    add(t::DEPENDENCY_TIMEOUT_TOTAL, "");
                }
                if r.budget().is_some() {
                    add(t::RETRY_BUDGET_EXHAUSTED_TOTAL, "");
                }
                if r.breaker().is_some() {
                    breaker(&mut add);
                }
                if r.throttle().is_some() {
                    add(t::THROTTLE_REJECTED_TOTAL, "");
                }
            }
            Step::Hedge(h, _) => {
                add(rebound::hedge::HEDGE_ATTEMPTS_TOTAL, "");
                if h.budget().is_some() {
                    add(t::RETRY_BUDGET_EXHAUSTED_TOTAL, "");
                }
            }
            Step::Timeout(_) => add(t::DEPENDENCY_TIMEOUT_TOTAL, ""),
            Step::Breaker => breaker(&mut add),
            Step::Bulkhead => add(t::BULKHEAD_REJECTED_TOTAL, ",reason=…"),
            Step::Throttle => add(t::THROTTLE_REJECTED_TOTAL, ""),
        }
    }
    out
}
