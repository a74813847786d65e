//! The command-line form of a fault: `kind key=value key=value ...`.

use std::str::FromStr;

use crate::spec::RawFault;
use crate::{Fault, FaultKind, FaultSet, SpecError};

/// Reads `kind key=value key=value ...`, the form of `--fault` and of the
/// text body of `PUT /faults`; keys are the fields of a timeline file.
/// Errors name the key.
impl FromStr for Fault {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Fault, SpecError> {
        let mut words = spec.split_whitespace();
        let kind = words.next().ok_or_else(|| {
            SpecError::new(
                "",
                format!(
                    "empty fault spec; a spec starts with its kind ({})",
                    FaultKind::names()
                ),
            )
        })?;
        if kind.contains('=') {
            return Err(SpecError::new(
                "",
                format!(
                    "`{kind}`: a spec starts with the fault's kind ({}), e.g. `error status=503 rate=0.1`",
                    FaultKind::names()
                ),
            ));
        }
        let mut fields = serde_json::Map::new();
        fields.insert("kind".into(), kind.into());
        for word in words {
            let (key, value) = word.split_once('=').ok_or_else(|| {
                SpecError::new(
                    "",
                    format!("`{word}` is not `key=value` (no spaces around `=`)"),
                )
            })?;
            if key == "kind" || fields.contains_key(key) {
                return Err(SpecError::new(key, format!("`{key}` is given twice")));
            }
            fields.insert(key.to_string(), spec_value(key, value));
        }
        let raw: RawFault = serde_path_to_error::deserialize(serde_json::Value::Object(fields))
            .map_err(|e| {
                let path = e.path().to_string();
                SpecError::new(
                    if path == "." { String::new() } else { path },
                    e.into_inner().to_string(),
                )
            })?;
        raw.to_fault()
    }
}

/// A spec's value as the JSON value the field expects: durations as text
/// (so `delay=200` is told it lacks a unit), other numbers and booleans as
/// such, `methods` as a list split at commas, the rest text.
fn spec_value(key: &str, value: &str) -> serde_json::Value {
    const DURATIONS: &[&str] = &[
        "delay",
        "min",
        "max",
        "mean",
        "std_dev",
        "median",
        "retry_after",
        "interval",
    ];
    if DURATIONS.contains(&key) {
        return value.into();
    }
    if key == "methods" {
        return value
            .split(',')
            .map(|m| serde_json::Value::from(m.trim()))
            .collect();
    }
    if let Ok(n) = value.parse::<u64>() {
        return n.into();
    }
    if let Ok(x) = value.parse::<f64>() {
        if x.is_finite() && !value.chars().any(char::is_alphabetic) {
            return x.into();
        }
    }
    match value {
        "true" => true.into(),
        "false" => false.into(),
        _ => value.into(),
    }
}

impl FaultSet {
    /// Reads faults written one spec per line (`kind key=value ...`, the
    /// form of `--fault`); blank lines and lines starting with `#` are
    /// skipped. Errors name the line.
    ///
    /// ```
    /// use rebound_chaos::FaultSet;
    ///
    /// let set = FaultSet::from_specs("latency delay=200ms rate=0.5\n# the outage\nerror status=503")?;
    /// assert_eq!(set.len(), 2);
    /// let err = FaultSet::from_specs("reset\nlatency delay=200").unwrap_err();
    /// assert_eq!(err.line(), Some(2));
    /// assert_eq!(err.path(), "delay");
    /// # Ok::<(), rebound_chaos::SpecError>(())
    /// ```
    pub fn from_specs(text: &str) -> Result<FaultSet, SpecError> {
        let mut faults = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            faults.push(line.parse::<Fault>().map_err(|e| e.at_line(Some(i + 1)))?);
        }
        Ok(FaultSet::from_checked(faults))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Method;

    use super::*;
    use crate::Effect;

    fn err(spec: &str) -> SpecError {
        spec.parse::<Fault>().unwrap_err()
    }

    #[test]
    fn every_kind_reads_from_a_spec_and_writes_back_the_same() {
        for spec in [
            "latency delay=200ms",
            "latency delay=1.5s at=response rate=0.5",
            "latency distribution=uniform min=100ms max=300ms",
            "latency distribution=normal mean=200ms std_dev=50ms max=1s",
            "latency distribution=lognormal median=200ms sigma=0.5",
            "error status=502 rate=0.1",
            "throttle status=429 retry_after=5s",
            "throttle status=503 retry_after=2s retry_after_format=http-date times=2",
            "reset rate=0.05 methods=POST,PUT path_prefix=/orders",
            "drop_response times=1 methods=POST",
            "slow_body chunk_bytes=4 interval=250ms",
            "blackhole rate=0.01",
        ] {
            let fault: Fault = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(fault.to_string(), spec);
            let back = RawFault::from_fault(&fault).to_fault().unwrap();
            assert_eq!(back, fault, "{spec}");
        }
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let f: Fault = "error".parse().unwrap();
        assert_eq!(f.effect(), &Effect::Error { status: 500 });
        assert_eq!(f.rate(), 1.0);
        let f: Fault = "slow_body".parse().unwrap();
        assert_eq!(
            f.effect(),
            &Effect::SlowBody {
                chunk_bytes: 16,
                interval: Duration::from_millis(100)
            }
        );
        let f: Fault = "reset methods=post".parse().unwrap();
        assert_eq!(f.scope().methods(), &[Method::POST]);
    }

    #[test]
    fn mistakes_name_the_key_and_say_what_is_right() {
        let e = err("explode rate=1");
        assert_eq!(e.path(), "kind");
        assert!(e.message().contains("unknown fault kind `explode`"), "{e}");
        assert!(e.message().contains("drop_response"), "{e}");

        let e = err("latency status=503");
        assert_eq!(e.path(), "status");
        assert!(
            e.message().contains("does not apply to a `latency` fault"),
            "{e}"
        );

        let e = err("reset delay=1s");
        assert!(
            e.message()
                .contains("only rate, times, methods and path_prefix"),
            "{e}"
        );

        let e = err("latency delay=200");
        assert_eq!(e.path(), "delay");
        assert!(e.message().contains("no unit"), "{e}");

        let e = err("latency distribution=lognormal median=1s");
        assert_eq!(e.path(), "sigma");

        let e = err("latency distribution=uniform min=1s max=2s delay=1s");
        assert_eq!(e.path(), "delay");
        assert!(
            e.message().contains("not a parameter of a uniform latency"),
            "{e}"
        );

        let e = err("latency distribution=gamma");
        assert_eq!(e.path(), "distribution");

        let e = err("latency delay=1s at=later");
        assert_eq!(e.path(), "at");

        let e = err("throttle status=429");
        assert_eq!(e.path(), "retry_after");

        let e = err("throttle retry_after=1500ms");
        assert!(e.message().contains("whole number of seconds"), "{e}");

        let e = err("throttle retry_after=1s retry_after_format=rfc850");
        assert_eq!(e.path(), "retry_after_format");

        let e = err("error status=404");
        assert_eq!(e.path(), "status");

        let e = err("error rate=1.5");
        assert_eq!(
            e.to_string(),
            "rate: 1.5 is outside [0, 1] (a rate is a probability)"
        );

        let e = err("error rate=often");
        assert_eq!(e.path(), "rate");

        let e = err("error color=red");
        assert!(e.message().contains("unknown field `color`"), "{e}");

        let e = err("error status=503 status=502");
        assert!(e.message().contains("given twice"), "{e}");

        let e = err("error status 503");
        assert!(e.message().contains("not `key=value`"), "{e}");

        let e = err("rate=0.5");
        assert!(e.message().contains("starts with the fault's kind"), "{e}");

        let e = err("reset methods=POST,,GET");
        assert_eq!(e.path(), "methods[1]");

        let e = err("reset path_prefix=orders");
        assert_eq!(e.path(), "path_prefix");

        assert!(err("").message().contains("empty"));
    }
}
