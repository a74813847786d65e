//! Faults that change over time: phases such as 0–10 s healthy, 10–30 s
//! slow, 30–60 s outage, then recovery.

use std::fmt;
use std::time::Duration;

use crate::duration::format as dur;
use crate::{FaultSet, SpecError};

/// A named stretch of a [`Timeline`] with its faults, from `start` to `end`
/// (measured from the timeline's start); the last phase may have no end.
///
/// ```
/// use std::time::Duration;
/// use rebound_chaos::{Fault, FaultSet, Phase};
///
/// let outage = Phase::new("outage", Duration::from_secs(30), Duration::from_secs(60),
///     FaultSet::new([Fault::error(503)])?);
/// assert_eq!(outage.to_string(), "outage (30s–1m): error status=503");
/// # Ok::<(), rebound_chaos::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    name: String,
    start: Duration,
    end: Option<Duration>,
    faults: FaultSet,
}

impl Phase {
    /// A phase from `start` to `end`.
    pub fn new(name: impl Into<String>, start: Duration, end: Duration, faults: FaultSet) -> Self {
        Phase {
            name: name.into(),
            start,
            end: Some(end),
            faults,
        }
    }

    /// A phase from `start` on, with no end: only the last phase of a
    /// timeline that does not repeat.
    pub fn open_ended(name: impl Into<String>, start: Duration, faults: FaultSet) -> Self {
        Phase {
            name: name.into(),
            start,
            end: None,
            faults,
        }
    }

    pub(crate) fn with_end(mut self, end: Option<Duration>) -> Self {
        self.end = end;
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When it starts, from the timeline's start.
    pub fn start(&self) -> Duration {
        self.start
    }

    /// When it ends, from the timeline's start; `None`: never.
    pub fn end(&self) -> Option<Duration> {
        self.end
    }

    /// Its faults.
    pub fn faults(&self) -> &FaultSet {
        &self.faults
    }

    fn contains(&self, at: Duration) -> bool {
        self.start <= at && self.end.is_none_or(|e| at < e)
    }

    /// `10s–30s`, or `1m–` when open-ended.
    pub(crate) fn span(&self) -> String {
        match self.end {
            Some(e) => format!("{}–{}", dur(self.start), dur(e)),
            None => format!("{}–", dur(self.start)),
        }
    }
}

impl fmt::Display for Phase {
    /// `outage (30s–1m): error status=503; reset rate=0.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.name, self.span())?;
        let specs: Vec<String> = self.faults.faults().iter().map(|x| x.to_string()).collect();
        if specs.is_empty() {
            f.write_str("healthy")
        } else {
            f.write_str(&specs.join("; "))
        }
    }
}

/// Phases in time order, checked: none overlaps the one before, each ends
/// after it starts, only the last may be open-ended. Time outside every
/// phase (a gap, or after the last phase's end) is healthy, unless the
/// timeline repeats, in which case it starts over at the last phase's end.
///
/// Timelines are usually read from TOML
/// ([`from_toml_str`](Self::from_toml_str), [`load`](Self::load)); the
/// crate ships an example as `examples/timeline.toml`.
///
/// ```
/// use std::time::Duration;
/// use rebound_chaos::{Fault, FaultSet, Latency, Phase, Timeline};
///
/// let s = Duration::from_secs;
/// let timeline = Timeline::new([
///     Phase::new("healthy", s(0), s(10), FaultSet::healthy()),
///     Phase::new("slow", s(10), s(30), FaultSet::new([Fault::latency(Latency::fixed(s(1)))])?),
///     Phase::new("outage", s(30), s(60), FaultSet::new([Fault::error(503)])?),
///     Phase::open_ended("recovery", s(60), FaultSet::healthy()),
/// ])?;
/// assert_eq!(timeline.phase_at(s(45)).unwrap().1.name(), "outage");
/// assert_eq!(timeline.next_change(s(45)), Some(s(60)));
///
/// let overlapping = Timeline::new([
///     Phase::new("slow", s(10), s(30), FaultSet::healthy()),
///     Phase::new("outage", s(20), s(60), FaultSet::healthy()),
/// ]);
/// assert_eq!(overlapping.unwrap_err().path(), "phases[1].start");
/// # Ok::<(), rebound_chaos::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    phases: Vec<Phase>,
    repeat: bool,
}

impl Timeline {
    /// Checks the phases; the error names the first bad field as
    /// `phases[i].field`.
    pub fn new(phases: impl IntoIterator<Item = Phase>) -> Result<Self, SpecError> {
        let t = Timeline {
            phases: phases.into_iter().collect(),
            repeat: false,
        };
        t.check()?;
        Ok(t)
    }

    /// The same phases over and over: at the last phase's end the timeline
    /// starts again. The last phase must have an end.
    pub fn repeating(mut self) -> Result<Self, SpecError> {
        self.repeat = true;
        self.check()?;
        Ok(self)
    }

    pub(crate) fn with_repeat(phases: Vec<Phase>, repeat: bool) -> Result<Self, SpecError> {
        let t = Timeline { phases, repeat };
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<(), SpecError> {
        if self.phases.is_empty() {
            return Err(SpecError::new(
                "phases",
                "a timeline needs at least one phase ([[phases]] with name, start, end and faults)",
            ));
        }
        let last = self.phases.len() - 1;
        for (i, p) in self.phases.iter().enumerate() {
            let at = |field: &str| format!("phases[{i}].{field}");
            if p.name.trim().is_empty() {
                return Err(SpecError::new(at("name"), "a phase needs a name"));
            }
            if let Some(j) = self.phases[..i].iter().position(|q| q.name == p.name) {
                return Err(SpecError::new(
                    at("name"),
                    format!(
                        "`{}` is also the name of phases[{j}]; names must differ",
                        p.name
                    ),
                ));
            }
            match p.end {
                Some(end) if end <= p.start => {
                    return Err(SpecError::new(
                        at("end"),
                        format!(
                            "`{}` ends at {}, not after it starts ({})",
                            p.name,
                            dur(end),
                            dur(p.start)
                        ),
                    ))
                }
                None if i < last => {
                    return Err(SpecError::new(
                        at("end"),
                        format!(
                            "`{}` has no end, but only the last phase may leave `end` out",
                            p.name
                        ),
                    ))
                }
                _ => {}
            }
            if i > 0 {
                let prev = &self.phases[i - 1];
                if p.start < prev.start {
                    return Err(SpecError::new(
                        at("start"),
                        format!(
                            "`{}` starts at {}, before the phase listed above it (`{}`, {}); list phases in time order",
                            p.name,
                            dur(p.start),
                            prev.name,
                            prev.span()
                        ),
                    ));
                }
                if prev.end.is_some_and(|e| p.start < e) {
                    return Err(SpecError::new(
                        at("start"),
                        format!(
                            "`{}` starts at {}, overlapping `{}` ({})",
                            p.name,
                            dur(p.start),
                            prev.name,
                            prev.span()
                        ),
                    ));
                }
            }
        }
        if self.repeat && self.phases[last].end.is_none() {
            return Err(SpecError::new(
                "repeat",
                format!(
                    "a repeating timeline starts over at its last phase's end, but `{}` has none",
                    self.phases[last].name
                ),
            ));
        }
        Ok(())
    }

    /// The phases, in time order.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Whether it starts over at the last phase's end.
    pub fn is_repeating(&self) -> bool {
        self.repeat
    }

    /// The last phase's end: when a repeating timeline starts over.
    pub fn length(&self) -> Option<Duration> {
        self.phases.last().and_then(|p| p.end)
    }

    /// The time into the current cycle: `elapsed` itself, unless the
    /// timeline repeats.
    fn in_cycle(&self, elapsed: Duration) -> Duration {
        match (self.repeat, self.length()) {
            (true, Some(len)) if !len.is_zero() => {
                let rem = elapsed.as_nanos() % len.as_nanos();
                Duration::new((rem / 1_000_000_000) as u64, (rem % 1_000_000_000) as u32)
            }
            _ => elapsed,
        }
    }

    /// The phase in force `elapsed` after the start, with its index; `None`
    /// in a gap or after the end (healthy).
    pub fn phase_at(&self, elapsed: Duration) -> Option<(usize, &Phase)> {
        let at = self.in_cycle(elapsed);
        self.phases
            .iter()
            .enumerate()
            .rev()
            .find(|(_, p)| p.start <= at)
            .filter(|(_, p)| p.contains(at))
    }

    /// When (from the start) the phase in force next changes after
    /// `elapsed`; `None` if it never does.
    pub fn next_change(&self, elapsed: Duration) -> Option<Duration> {
        let at = self.in_cycle(elapsed);
        let cycle_start = elapsed - at;
        let next = self
            .phases
            .iter()
            .flat_map(|p| [Some(p.start), p.end])
            .flatten()
            .filter(|b| *b > at)
            .min();
        match next {
            Some(b) => cycle_start.checked_add(b),
            None if self.repeat => self.length().and_then(|len| cycle_start.checked_add(len)),
            None => None,
        }
    }
}

impl fmt::Display for Timeline {
    /// One phase per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.phases {
            writeln!(f, "{p}")?;
        }
        if self.repeat {
            writeln!(f, "then again from the start")?;
        } else if let Some(end) = self.length() {
            writeln!(f, "healthy from {} on", dur(end))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn story() -> Timeline {
        Timeline::new([
            Phase::new("healthy", s(0), s(10), FaultSet::healthy()),
            Phase::new("slow", s(10), s(30), FaultSet::healthy()),
            Phase::new("outage", s(40), s(60), FaultSet::healthy()),
        ])
        .unwrap()
    }

    #[test]
    fn phases_are_found_by_time_with_gaps_healthy() {
        let t = story();
        let name = |e| t.phase_at(e).map(|(_, p)| p.name().to_string());
        assert_eq!(name(s(0)).as_deref(), Some("healthy"));
        assert_eq!(
            name(Duration::from_millis(9_999)).as_deref(),
            Some("healthy")
        );
        assert_eq!(name(s(10)).as_deref(), Some("slow"));
        assert_eq!(name(s(35)), None);
        assert_eq!(name(s(40)).as_deref(), Some("outage"));
        assert_eq!(name(s(60)), None);
        assert_eq!(name(s(6000)), None);
    }

    #[test]
    fn next_changes_step_through_every_boundary() {
        let t = story();
        assert_eq!(t.next_change(s(0)), Some(s(10)));
        assert_eq!(t.next_change(s(10)), Some(s(30)));
        assert_eq!(t.next_change(s(31)), Some(s(40)));
        assert_eq!(t.next_change(s(59)), Some(s(60)));
        assert_eq!(t.next_change(s(60)), None);
    }

    #[test]
    fn a_repeating_timeline_starts_over() {
        let t = story().repeating().unwrap();
        assert_eq!(t.phase_at(s(65)).unwrap().1.name(), "healthy");
        assert_eq!(t.phase_at(s(130)).unwrap().1.name(), "slow");
        assert_eq!(t.next_change(s(59)), Some(s(60)));
        assert_eq!(t.next_change(s(60)), Some(s(70)));
        assert_eq!(t.next_change(s(95)), Some(s(100)));
    }

    #[test]
    fn bad_timelines_name_the_field() {
        let bad = |phases: Vec<Phase>| Timeline::new(phases).unwrap_err();
        let h = FaultSet::healthy;
        assert_eq!(bad(vec![]).path(), "phases");
        let e = bad(vec![Phase::new("a", s(5), s(5), h())]);
        assert_eq!(e.path(), "phases[0].end");
        let e = bad(vec![
            Phase::new("a", s(10), s(20), h()),
            Phase::new("b", s(0), s(5), h()),
        ]);
        assert_eq!(e.path(), "phases[1].start");
        assert!(e.message().contains("time order"), "{e}");
        let e = bad(vec![
            Phase::new("a", s(0), s(20), h()),
            Phase::new("b", s(10), s(30), h()),
        ]);
        assert!(e.message().contains("overlapping `a` (0s–20s)"), "{e}");
        let e = bad(vec![
            Phase::open_ended("a", s(0), h()),
            Phase::new("b", s(10), s(30), h()),
        ]);
        assert_eq!(e.path(), "phases[0].end");
        let e = bad(vec![
            Phase::new("a", s(0), s(1), h()),
            Phase::new("a", s(1), s(2), h()),
        ]);
        assert_eq!(e.path(), "phases[1].name");
        let e = bad(vec![Phase::new(" ", s(0), s(1), h())]);
        assert_eq!(e.path(), "phases[0].name");
        let e = Timeline::new([Phase::open_ended("a", s(0), h())])
            .unwrap()
            .repeating()
            .unwrap_err();
        assert_eq!(e.path(), "repeat");
    }
}
