//! The JSON form of a list of faults (the control API's bodies).

use serde::Deserialize;

use crate::spec::{to_fault_set, RawFault};
use crate::{FaultSet, SpecError};

/// A list of faults in a control payload: `[...]` or `{"faults": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    faults: Vec<RawFault>,
}

impl FaultSet {
    /// Reads faults from JSON: a list of fault objects, or an object with a
    /// `faults` list (the form `GET /faults` answers with). The fields are
    /// those of a timeline file's faults.
    ///
    /// ```
    /// use rebound_chaos::FaultSet;
    ///
    /// let set = FaultSet::from_json_str(r#"[{"kind": "error", "status": 502, "rate": 0.5}]"#)?;
    /// assert_eq!(set.faults()[0].to_string(), "error status=502 rate=0.5");
    ///
    /// let err = FaultSet::from_json_str(r#"{"faults": [{"kind": "error", "rate": 2}]}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "faults[0].rate: 2 is outside [0, 1] (a rate is a probability)");
    /// # Ok::<(), rebound_chaos::SpecError>(())
    /// ```
    pub fn from_json_str(text: &str) -> Result<FaultSet, SpecError> {
        let json_err = |e: serde_path_to_error::Error<serde_json::Error>| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.line();
            SpecError::new(
                if path == "." { String::new() } else { path },
                strip_position(&inner.to_string()),
            )
            .at_line((line > 0).then_some(line))
        };
        let mut de = serde_json::Deserializer::from_str(text);
        if text.trim_start().starts_with('[') {
            let raw: Vec<RawFault> = serde_path_to_error::deserialize(&mut de).map_err(json_err)?;
            de.end()
                .map_err(|e| SpecError::new("", strip_position(&e.to_string())))?;
            to_fault_set(&raw, "")
        } else {
            let raw: RawFaults = serde_path_to_error::deserialize(&mut de).map_err(json_err)?;
            de.end()
                .map_err(|e| SpecError::new("", strip_position(&e.to_string())))?;
            to_fault_set(&raw.faults, "faults")
        }
    }

    /// The faults as JSON, in the form [`from_json_str`](Self::from_json_str)
    /// reads.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.raw()).unwrap_or_default()
    }
}

/// serde_json appends " at line L column C"; the line is reported apart.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lists_and_objects_read_the_same() {
        let a = FaultSet::from_json_str(r#"[{"kind":"reset","rate":0.5}]"#).unwrap();
        let b = FaultSet::from_json_str(r#"{"faults":[{"kind":"reset","rate":0.5}]}"#).unwrap();
        assert_eq!(a, b);
        let back = FaultSet::from_json_str(&serde_json::json!({"faults": a.to_json()}).to_string())
            .unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn bad_json_names_the_field_and_line() {
        let e =
            FaultSet::from_json_str("{\"faults\": [\n {\"kind\": \"error\", \"status\": \"x\"}]}")
                .unwrap_err();
        assert_eq!(e.path(), "faults[0].status");
        assert_eq!(e.line(), Some(2));
        let e = FaultSet::from_json_str("{\"faults\": [").unwrap_err();
        assert!(e.message().contains("EOF"), "{e}");
        let e = FaultSet::from_json_str("[] trailing").unwrap_err();
        assert!(e.message().contains("trailing"), "{e}");
        let e = FaultSet::from_json_str(r#"{"fault": []}"#).unwrap_err();
        assert!(e.message().contains("unknown field `fault`"), "{e}");
    }
}
