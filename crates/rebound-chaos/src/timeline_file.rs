//! Timelines in TOML: reading, writing, and errors that point at the line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::duration::Dur;
use crate::spec::{to_fault_set, RawFault};
use crate::{Phase, SpecError, Timeline};

/// The example timeline shipped with the crate (`examples/timeline.toml`):
/// healthy, a blip, slow, an outage, recovery.
pub const EXAMPLE_TIMELINE: &str = include_str!("../examples/timeline.toml");

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeline {
    #[serde(default, skip_serializing_if = "is_false")]
    repeat: bool,
    #[serde(default)]
    phases: Vec<RawPhase>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    name: String,
    start: Dur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<Dur>,
    #[serde(default)]
    faults: Vec<RawFault>,
}

impl Timeline {
    /// Reads and checks a timeline written in TOML; `origin` (a file name)
    /// starts every error message.
    ///
    /// The format — see `examples/timeline.toml` for a full one:
    ///
    /// ```toml
    /// repeat = false              # start over at the last phase's end?
    ///
    /// [[phases]]
    /// name = "healthy"
    /// start = "0s"
    /// end = "10s"                 # only the last phase may leave it out
    ///
    /// [[phases]]
    /// name = "outage"
    /// start = "10s"
    /// end = "30s"
    ///   [[phases.faults]]         # any number; the fields of --fault
    ///   kind = "throttle"
    ///   status = 503
    ///   retry_after = "5s"
    ///   rate = 0.9
    /// ```
    ///
    /// ```
    /// use rebound_chaos::Timeline;
    ///
    /// let t = Timeline::from_toml_str(rebound_chaos::EXAMPLE_TIMELINE, "timeline.toml")?;
    /// assert_eq!(t.phases()[0].name(), "healthy");
    ///
    /// let err = Timeline::from_toml_str("[[phases]]\nname = \"x\"\nstart = \"10\"\n", "t.toml").unwrap_err();
    /// assert_eq!(err.to_string(), "t.toml:3: phases[0].start: `10` has no unit: write \"10ms\" or \"10s\"");
    /// # Ok::<(), rebound_chaos::SpecError>(())
    /// ```
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Timeline, SpecError> {
        parse(text).map_err(|e| {
            let line = toml_line(text, e.path());
            e.at_line(line).or_origin(origin)
        })
    }

    /// Reads and checks a TOML timeline file.
    pub fn load(path: impl AsRef<Path>) -> Result<Timeline, SpecError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecError::new("", format!("cannot read the timeline: {e}")).or_origin(&origin)
        })?;
        Timeline::from_toml_str(&text, &origin)
    }

    /// The timeline in TOML, in the form [`from_toml_str`](Self::from_toml_str) reads.
    pub fn to_toml_string(&self) -> String {
        toml::to_string(&self.raw()).unwrap_or_default()
    }

    /// The timeline as JSON (the form of the control API's `GET /timeline`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.raw()).unwrap_or_default()
    }

    fn raw(&self) -> RawTimeline {
        RawTimeline {
            repeat: self.is_repeating(),
            phases: self
                .phases()
                .iter()
                .map(|p| RawPhase {
                    name: p.name().to_string(),
                    start: Dur(p.start()),
                    end: p.end().map(Dur),
                    faults: p.faults().raw(),
                })
                .collect(),
        }
    }
}

fn parse(text: &str) -> Result<Timeline, SpecError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| {
        SpecError::new("", e.message().to_string())
            .at_line(e.span().map(|s| line_of(text, s.start)))
    })?;
    let raw: RawTimeline = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        SpecError::new(
            if path == "." { String::new() } else { path },
            inner.message().to_string(),
        )
        .at_line(inner.span().map(|s| line_of(text, s.start)))
    })?;
    let phases = raw
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let faults = to_fault_set(&p.faults, &format!("phases[{i}].faults"))?;
            Ok(Phase::new(p.name.clone(), p.start.0, p.start.0, faults)
                .with_end(p.end.map(|d| d.0)))
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    Timeline::with_repeat(phases, raw.repeat)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where the field at `path` (`phases[1].faults[0].rate`) is
/// written, from the parser's spans; the nearest enclosing table's line
/// when the field itself is absent (a missing `end`).
fn toml_line(text: &str, path: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};

    let root = DeValue::Table(DeTable::parse(text).ok()?.into_inner());
    let mut value = &root;
    let mut at: Option<usize> = None;
    for segment in segments(path) {
        match segment {
            Segment::Key(k) => {
                let DeValue::Table(t) = value else { break };
                let Some((key, v)) = t.iter().find(|(name, _)| name.get_ref() == k) else {
                    break;
                };
                at = Some(key.span().start);
                value = v.get_ref();
            }
            Segment::Index(i) => {
                let DeValue::Array(a) = value else { break };
                let Some(item) = a.get(i) else { break };
                value = item.get_ref();
                // An array-of-tables item: the line of its first key (its
                // `[[...]]` header has no span of its own).
                at = match value {
                    DeValue::Table(t) => t.iter().map(|(k, _)| k.span().start).min(),
                    _ => None,
                }
                .or(Some(item.span().start))
                .or(at);
            }
        }
    }
    at.map(|offset| line_of(text, offset))
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `phases[1].faults[0].rate` → phases, 1, faults, 0, rate.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = after.trim_start_matches('[');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn err(text: &str) -> SpecError {
        Timeline::from_toml_str(text, "t.toml").unwrap_err()
    }

    const GOOD: &str = r#"
[[phases]]
name = "healthy"
start = "0s"
end = "10s"

[[phases]]
name = "outage"
start = "10s"
end = "30s"

  [[phases.faults]]
  kind = "throttle"
  status = 503
  retry_after = "5s"
  rate = 0.9

  [[phases.faults]]
  kind = "latency"
  distribution = "lognormal"
  median = "200ms"
  sigma = 0.5

[[phases]]
name = "recovery"
start = "30s"
"#;

    #[test]
    fn the_shipped_example_reads_and_round_trips() {
        let t = Timeline::from_toml_str(EXAMPLE_TIMELINE, "timeline.toml").unwrap();
        assert!(t.phases().len() >= 4);
        let back = Timeline::from_toml_str(&t.to_toml_string(), "again").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn a_good_file_reads() {
        let t = Timeline::from_toml_str(GOOD, "t.toml").unwrap();
        assert_eq!(t.phases().len(), 3);
        assert_eq!(t.phases()[1].faults().len(), 2);
        assert_eq!(t.phases()[2].end(), None);
        assert_eq!(
            t.phase_at(Duration::from_secs(15)).unwrap().1.name(),
            "outage"
        );
    }

    #[test]
    fn a_bad_rate_names_its_line() {
        let e = err(&GOOD.replace("rate = 0.9", "rate = 1.9"));
        assert_eq!(e.path(), "phases[1].faults[0].rate");
        assert_eq!(e.line(), Some(16));
        assert!(
            e.to_string()
                .starts_with("t.toml:16: phases[1].faults[0].rate: 1.9 is outside [0, 1]"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_kind_names_its_line() {
        let e = err(&GOOD.replace("kind = \"latency\"", "kind = \"earthquake\""));
        assert_eq!(e.path(), "phases[1].faults[1].kind");
        assert_eq!(e.line(), Some(19));
        assert!(
            e.message().contains("unknown fault kind `earthquake`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_duration_names_its_line() {
        let e = err(&GOOD.replace("end = \"30s\"", "end = \"30 seconds\""));
        assert_eq!(e.path(), "phases[1].end");
        assert_eq!(e.line(), Some(10));
        assert!(e.message().contains("invalid duration `30 seconds`"), "{e}");
    }

    #[test]
    fn overlapping_and_unordered_phases_name_their_line() {
        let e = err(&GOOD.replace("start = \"10s\"", "start = \"5s\""));
        assert_eq!(e.path(), "phases[1].start");
        assert_eq!(e.line(), Some(9));
        assert!(
            e.message().contains("overlapping `healthy` (0s–10s)"),
            "{e}"
        );

        let e = err(&GOOD.replace("start = \"30s\"", "start = \"2s\""));
        assert_eq!(e.path(), "phases[2].start");
        assert_eq!(e.line(), Some(26));
        assert!(e.message().contains("time order"), "{e}");
    }

    #[test]
    fn a_missing_end_points_at_its_phase() {
        let e = err(&GOOD.replace("end = \"10s\"\n", ""));
        assert_eq!(e.path(), "phases[0].end");
        assert_eq!(e.line(), Some(3));
    }

    #[test]
    fn type_errors_and_unknown_fields_name_their_line() {
        let e = err(&GOOD.replace("status = 503", "status = \"503\""));
        assert_eq!(e.path(), "phases[1].faults[0].status");
        assert_eq!(e.line(), Some(14));
        let e = err(&GOOD.replace(
            "name = \"recovery\"",
            "name = \"recovery\"\nduration = \"1s\"",
        ));
        assert!(e.message().contains("unknown field `duration`"), "{e}");
        assert_eq!(e.line(), Some(26));
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let e = err("[[phases]]\nname = \"x\nstart = \"0s\"\n");
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().starts_with("t.toml:2: "), "{e}");
    }

    #[test]
    fn an_empty_file_says_what_is_missing() {
        let e = err("");
        assert_eq!(e.path(), "phases");
        assert!(e.message().contains("at least one phase"), "{e}");
    }

    #[test]
    fn a_missing_file_names_it() {
        let e = Timeline::load("/nonexistent/timeline.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/timeline.toml: cannot read the timeline"),
            "{e}"
        );
    }
}
