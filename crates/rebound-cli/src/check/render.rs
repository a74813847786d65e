//! The report as text for a terminal, or as Markdown.

use std::fmt::Write;
use std::time::Duration;

use super::report::{human, DependencyReport, Severity};
use super::Report;

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "unbounded".to_string(), human)
}

fn times(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3}×")
    } else {
        format!("{x:.2}×")
    }
}

fn statuses(s: &[u16]) -> String {
    s.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}

/// The answers for one dependency, as `(question, answer lines)`.
fn answers(d: &DependencyReport) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    out.push((
        "Is the failure transient? (what is retried)",
        vec![
            format!("code: {}", d.transient.code),
            format!(
                "HTTP (rebound-http): status {}; {}",
                statuses(&d.transient.http_statuses),
                d.transient.http_other
            ),
        ],
    ));
    let i = &d.idempotency;
    out.push((
        "Is the operation safe to retry?",
        vec![
            format!(
                "HTTP methods retried: {}; only with an Idempotency-Key: {}; never: {}",
                i.http_retried.join(" "),
                i.http_with_key.join(" "),
                i.http_never.join(" ")
            ),
            i.protection.clone(),
        ],
    ));
    let mut owns = Vec::new();
    if d.layers.is_empty() {
        owns.push("no layer retries: one attempt per call".to_string());
    }
    for l in &d.layers {
        owns.push(format!(
            "{} `{}`: {} attempts per call, {}",
            l.kind,
            l.at,
            l.max_attempts,
            if l.budget {
                "with a budget"
            } else {
                "no budget"
            }
        ));
    }
    let retrying = d.layers.iter().filter(|l| l.max_attempts > 1).count();
    if retrying > 1 {
        owns.push(format!(
            "{retrying} layers retry: they multiply to {} attempts per call",
            d.dead_dependency.attempts_per_call
        ));
    }
    out.push(("Who owns the retry?", owns));
    let l = &d.dead_dependency;
    let mut policy = vec![format!("call path: {}", d.call_path.join(" → "))];
    match (l.with_budget, &l.not_measured) {
        (Some(w), _) => {
            let without = match l.without_budget {
                Some(x) => format!("{} without its budget", times(x)),
                None => "no budget to remove".to_string(),
            };
            policy.push(format!(
                "dead dependency at {} calls/s: {} load with the file's policies, {without} (at most {} attempts per call)",
                l.rate,
                times(w),
                l.attempts_per_call
            ));
        }
        (None, Some(e)) => policy.push(format!(
            "dead dependency: at most {} attempts per call (not measured: {e})",
            l.attempts_per_call
        )),
        (None, None) => {}
    }
    let lat = &d.latency;
    policy.push(format!(
        "worst-case latency: {} (every attempt at its timeout, every backoff at its longest); total timeout: {}",
        opt(lat.worst_case_ms),
        lat.total_timeout_ms.map_or_else(|| "none".to_string(), human)
    ));
    for f in &lat.attempts_that_fit {
        policy.push(format!(
            "`{}`: attempt {}, all attempts and backoffs {}, {} of {} attempts fit",
            f.at,
            opt(f.attempt_ms),
            opt(f.uncapped_ms),
            f.fit,
            f.max_attempts
        ));
    }
    if let Some(s) = lat.max_server_delay_ms {
        policy.push(format!(
            "a server's Retry-After is honoured up to {}; a longer one stops retrying (`throttled`)",
            human(s)
        ));
    }
    for a in &d.assumptions {
        policy.push(format!("assumed: {a}"));
    }
    out.push(("What is the retry policy?", policy));
    let mut g = vec![d.give_up.outcome.clone()];
    if !d.give_up.reasons.is_empty() {
        g.push(format!("give-up reasons: {}", d.give_up.reasons.join(", ")));
    }
    out.push(("What happens if retries fail?", g));
    out.push((
        "Can you observe it?",
        if d.metrics.is_empty() {
            vec!["no policy, no series".to_string()]
        } else {
            d.metrics.clone()
        },
    ));
    out
}

fn label(s: Severity) -> &'static str {
    match s {
        Severity::Danger => "DANGER",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// For a terminal.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    for d in &r.dependencies {
        let _ = writeln!(s, "== {} ==", d.name);
        for (n, (q, lines)) in answers(d).into_iter().enumerate() {
            let _ = writeln!(s, "{}. {q}", n + 1);
            for l in lines {
                let _ = writeln!(s, "   - {l}");
            }
        }
        for f in &d.findings {
            let _ = writeln!(s, "{}: [{}] {}", label(f.severity), f.rule, f.message);
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "{}: {} dangerous, {} warnings in {}",
        r.verdict.to_uppercase(),
        r.dangers,
        r.warnings,
        r.file
    );
    s
}

/// As Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = format!("# Retry checklist: `{}`\n\n", r.file);
    let _ = writeln!(
        s,
        "**{}**: {} dangerous, {} warnings.\n",
        r.verdict.to_uppercase(),
        r.dangers,
        r.warnings
    );
    for d in &r.dependencies {
        let _ = writeln!(s, "## `{}`\n", d.name);
        if !d.findings.is_empty() {
            s.push_str("| severity | rule | finding |\n|---|---|---|\n");
            for f in &d.findings {
                let _ = writeln!(
                    s,
                    "| {} | `{}` | {} |",
                    label(f.severity),
                    f.rule,
                    f.message.replace('|', "\\|")
                );
            }
            s.push('\n');
        }
        for (n, (q, lines)) in answers(d).into_iter().enumerate() {
            let _ = writeln!(s, "{}. **{q}**", n + 1);
            for l in lines {
                let _ = writeln!(s, "   - {l}");
            }
        }
        s.push('\n');
    }
    s
}
