//! The story's timeline: healthy, a blip, a slow dependency, an outage,
//! recovery — the same shape at any length, so a 12 s run in CI and a
//! 60 s run on a laptop tell the same story.

use std::time::Duration;

use axum::http::Method;
use rebound_chaos::{Fault, FaultSet, Latency, Phase, Scope, SpecError, Timeline};

/// One phase of the story, as the dashboard and the summary show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoryPhase {
    /// `healthy`, `blip`, `slow`, `outage`, `recovery`.
    pub name: &'static str,
    /// From the story's start, in seconds.
    pub start: f64,
    /// From the story's start, in seconds.
    pub end: f64,
    /// What the chaos proxy does in it, as a `--fault` spec.
    pub faults: String,
}

/// Where each phase starts, as a share of the run: healthy 0–15 %, blip
/// 15–25 %, slow 25–45 %, outage 45–75 %, recovery 75–100 %.
const SHAPE: [(&str, f64); 5] = [
    ("healthy", 0.0),
    ("blip", 0.15),
    ("slow", 0.25),
    ("outage", 0.45),
    ("recovery", 0.75),
];

/// The faults of a phase. Only the reservations (POST) are hit.
fn faults(name: &str) -> Result<FaultSet, SpecError> {
    let post = || Scope::any().method(Method::POST);
    match name {
        // A network blip: some answers are lost after the inventory
        // reserved (the case idempotency keys exist for), some
        // connections are reset before it saw the request.
        "blip" => FaultSet::new([
            Fault::drop_response().with_rate(0.25).with_scope(post()),
            Fault::reset().with_rate(0.1).with_scope(post()),
        ]),
        // A slow dependency: the inventory answers, but the answer comes
        // back late, often after the caller's 250 ms attempt timeout.
        "slow" => FaultSet::new([Fault::response_latency(Latency::uniform(
            Duration::from_millis(100),
            Duration::from_millis(600),
        ))
        .with_scope(post())]),
        // The inventory is down: every reservation gets a 503.
        "outage" => FaultSet::new([Fault::error(503).with_scope(post())]),
        _ => Ok(FaultSet::healthy()),
    }
}

/// The phases of a run of `duration`.
pub fn phases(duration: Duration) -> Result<Vec<StoryPhase>, SpecError> {
    let total = duration.as_secs_f64();
    SHAPE
        .iter()
        .enumerate()
        .map(|(i, (name, from))| {
            let to = SHAPE.get(i + 1).map_or(1.0, |(_, s)| *s);
            let set = faults(name)?;
            let specs: Vec<String> = set.faults().iter().map(|f| f.to_string()).collect();
            Ok(StoryPhase {
                name,
                start: from * total,
                end: to * total,
                faults: if specs.is_empty() {
                    "healthy".to_owned()
                } else {
                    specs.join("; ")
                },
            })
        })
        .collect()
}

/// The chaos proxy's timeline for a run of `duration`.
pub fn timeline(duration: Duration) -> Result<Timeline, SpecError> {
    let total = duration.as_secs_f64();
    let at = |share: f64| Duration::from_secs_f64(share * total);
    let mut out = Vec::new();
    for (i, (name, from)) in SHAPE.iter().enumerate() {
        let set = faults(name)?;
        out.push(match SHAPE.get(i + 1) {
            Some((_, to)) => Phase::new(*name, at(*from), at(*to), set),
            None => Phase::open_ended(*name, at(*from), set),
        });
    }
    Timeline::new(out)
}

/// The phase in force `elapsed` seconds into the run.
pub fn phase_at(phases: &[StoryPhase], elapsed: f64) -> &'static str {
    phases
        .iter()
        .rev()
        .find(|p| p.start <= elapsed)
        .map_or("healthy", |p| p.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phases_scale_with_the_duration() {
        let p = phases(Duration::from_secs(12)).unwrap();
        let names: Vec<_> = p.iter().map(|p| p.name).collect();
        assert_eq!(names, ["healthy", "blip", "slow", "outage", "recovery"]);
        assert!((p[3].start - 5.4).abs() < 1e-9 && (p[3].end - 9.0).abs() < 1e-9);
        assert_eq!(phase_at(&p, 6.0), "outage");
        let t = timeline(Duration::from_secs(12)).unwrap();
        assert_eq!(
            t.phase_at(Duration::from_secs(6)).unwrap().1.name(),
            "outage"
        );
    }
}
