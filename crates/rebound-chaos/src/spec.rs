//! The written form of a fault — a table in a timeline file, an object in
//! a control payload, a `kind key=value ...` line on the command line — and
//! its checked conversion to a [`Fault`].

use std::str::FromStr;
use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::duration::{format as dur, Dur};
use crate::fault::{Effect, RetryAfter, Stage};
use crate::latency::Param;
use crate::{Fault, FaultKind, FaultSet, Latency, Scope, SpecError};

/// Default piece size of a `slow_body` fault.
pub(crate) const DEFAULT_CHUNK_BYTES: usize = 16;
/// Default wait between the pieces of a `slow_body` fault.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// A fault as written: every field any kind takes, each optional, checked
/// against the kind by [`RawFault::to_fault`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) path_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) distribution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) min: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mean: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) std_dev: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) median: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sigma: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chunk_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<Dur>,
}

/// The fields every kind takes.
const COMMON: &[&str] = &["kind", "rate", "times", "methods", "path_prefix"];

fn own_fields(kind: FaultKind) -> &'static [&'static str] {
    match kind {
        FaultKind::Latency => &[
            "distribution",
            "delay",
            "min",
            "max",
            "mean",
            "std_dev",
            "median",
            "sigma",
            "at",
        ],
        FaultKind::Error => &["status"],
        FaultKind::Throttle => &["status", "retry_after", "retry_after_format"],
        FaultKind::SlowBody => &["chunk_bytes", "interval"],
        FaultKind::Reset | FaultKind::DropResponse | FaultKind::Blackhole => &[],
    }
}

impl RawFault {
    /// The names of the fields that are set.
    fn present(&self) -> Vec<&'static str> {
        let set = [
            ("rate", self.rate.is_some()),
            ("times", self.times.is_some()),
            ("methods", self.methods.is_some()),
            ("path_prefix", self.path_prefix.is_some()),
            ("distribution", self.distribution.is_some()),
            ("delay", self.delay.is_some()),
            ("min", self.min.is_some()),
            ("max", self.max.is_some()),
            ("mean", self.mean.is_some()),
            ("std_dev", self.std_dev.is_some()),
            ("median", self.median.is_some()),
            ("sigma", self.sigma.is_some()),
            ("at", self.at.is_some()),
            ("status", self.status.is_some()),
            ("retry_after", self.retry_after.is_some()),
            ("retry_after_format", self.retry_after_format.is_some()),
            ("chunk_bytes", self.chunk_bytes.is_some()),
            ("interval", self.interval.is_some()),
        ];
        set.into_iter()
            .filter(|(_, s)| *s)
            .map(|(n, _)| n)
            .collect()
    }

    /// Checks the fields against the kind and builds the fault. Error paths
    /// are relative to the fault (`rate`, `methods[1]`).
    pub(crate) fn to_fault(&self) -> Result<Fault, SpecError> {
        let kind = FaultKind::from_name(self.kind.trim()).ok_or_else(|| {
            SpecError::new(
                "kind",
                format!(
                    "unknown fault kind `{}`; the kinds are {}",
                    self.kind,
                    FaultKind::names()
                ),
            )
        })?;
        let own = own_fields(kind);
        for field in self.present() {
            if !COMMON.contains(&field) && !own.contains(&field) {
                let takes = if own.is_empty() {
                    "it takes only rate, times, methods and path_prefix".to_string()
                } else {
                    format!("its own fields are {}", own.join(", "))
                };
                return Err(SpecError::new(
                    field,
                    format!("`{field}` does not apply to a `{kind}` fault ({takes})"),
                ));
            }
        }
        let effect = match kind {
            FaultKind::Latency => self.latency()?,
            FaultKind::Error => Effect::Error {
                status: self.status.unwrap_or(500),
            },
            FaultKind::Throttle => self.throttle()?,
            FaultKind::Reset => Effect::Reset,
            FaultKind::DropResponse => Effect::DropResponse,
            FaultKind::SlowBody => Effect::SlowBody {
                chunk_bytes: match self.chunk_bytes {
                    None => DEFAULT_CHUNK_BYTES,
                    Some(n) => usize::try_from(n)
                        .map_err(|_| SpecError::new("chunk_bytes", format!("{n} is too large")))?,
                },
                interval: self.interval.map_or(DEFAULT_INTERVAL, |d| d.0),
            },
            FaultKind::Blackhole => Effect::Blackhole,
        };
        let mut scope = Scope::any();
        for (i, m) in self.methods.iter().flatten().enumerate() {
            let upper = m.trim().to_ascii_uppercase();
            let method = Method::from_bytes(upper.as_bytes())
                .ok()
                .filter(|_| !upper.is_empty())
                .ok_or_else(|| {
                    SpecError::new(
                        format!("methods[{i}]"),
                        format!("`{m}` is not an HTTP method name"),
                    )
                })?;
            scope = scope.method(method);
        }
        if let Some(p) = &self.path_prefix {
            scope = scope.path_prefix(p.clone());
        }
        let mut fault = Fault::new(effect)
            .with_rate(self.rate.unwrap_or(1.0))
            .with_scope(scope);
        if let Some(t) = self.times {
            fault = fault.with_times(t);
        }
        fault
            .check()
            .map_err(|(field, why)| SpecError::new(field, why))?;
        Ok(fault)
    }

    fn latency(&self) -> Result<Effect, SpecError> {
        let need = |field: &'static str, v: Option<Dur>, dist: &str| {
            v.map(|d| d.0)
                .ok_or_else(|| SpecError::new(field, format!("a {dist} latency needs `{field}`")))
        };
        let dist = self.distribution.as_deref().map(str::trim);
        let (latency, uses): (Latency, &[&str]) = match dist {
            None | Some("fixed") => {
                let delay = self.delay.map(|d| d.0).ok_or_else(|| {
                    SpecError::new(
                        "delay",
                        "a latency needs `delay` (fixed), or a `distribution` (uniform, normal, lognormal) and its parameters",
                    )
                })?;
                (Latency::fixed(delay), &["delay"])
            }
            Some("uniform") => (
                Latency::uniform(
                    need("min", self.min, "uniform")?,
                    need("max", self.max, "uniform")?,
                ),
                &["min", "max"],
            ),
            Some("normal") => {
                let l = Latency::normal(
                    need("mean", self.mean, "normal")?,
                    need("std_dev", self.std_dev, "normal")?,
                );
                (self.max.map_or(l, |m| l.with_max(m.0)), &["mean", "std_dev", "max"])
            }
            Some("lognormal") => {
                let sigma = self.sigma.ok_or_else(|| {
                    SpecError::new("sigma", "a lognormal latency needs `sigma` (e.g. 0.5)")
                })?;
                let l = Latency::lognormal(need("median", self.median, "lognormal")?, sigma);
                (
                    self.max.map_or(l, |m| l.with_max(m.0)),
                    &["median", "sigma", "max"],
                )
            }
            Some(other) => {
                return Err(SpecError::new(
                    "distribution",
                    format!(
                        "unknown distribution `{other}`; the distributions are fixed, uniform, normal, lognormal"
                    ),
                ))
            }
        };
        let params = ["delay", "min", "max", "mean", "std_dev", "median", "sigma"];
        for field in self.present() {
            if params.contains(&field) && !uses.contains(&field) {
                return Err(SpecError::new(
                    field,
                    format!(
                        "`{field}` is not a parameter of a {} latency (it takes {})",
                        latency.distribution(),
                        uses.join(", ")
                    ),
                ));
            }
        }
        let stage = match self.at.as_deref().map(str::trim) {
            None | Some("request") => Stage::Request,
            Some("response") => Stage::Response,
            Some(other) => {
                return Err(SpecError::new(
                    "at",
                    format!("`{other}`: a latency waits at \"request\" (before the upstream) or \"response\" (after it)"),
                ))
            }
        };
        Ok(Effect::Latency { latency, stage })
    }

    fn throttle(&self) -> Result<Effect, SpecError> {
        let delay = self.retry_after.map(|d| d.0).ok_or_else(|| {
            SpecError::new(
                "retry_after",
                "a throttle fault needs `retry_after` (e.g. \"2s\"); for a bare 503 use an `error` fault",
            )
        })?;
        if delay.subsec_nanos() != 0 {
            return Err(SpecError::new(
                "retry_after",
                format!(
                    "{} is not a whole number of seconds; Retry-After counts whole seconds",
                    dur(delay)
                ),
            ));
        }
        let seconds = delay.as_secs();
        let retry_after = match self.retry_after_format.as_deref().map(str::trim) {
            None | Some("seconds") => RetryAfter::seconds(seconds),
            Some("http-date") => RetryAfter::http_date(seconds),
            Some(other) => {
                return Err(SpecError::new(
                    "retry_after_format",
                    format!("`{other}`: the formats are \"seconds\" and \"http-date\""),
                ))
            }
        };
        Ok(Effect::Throttle {
            status: self.status.unwrap_or(429),
            retry_after,
        })
    }

    /// The written form of a fault.
    pub(crate) fn from_fault(fault: &Fault) -> RawFault {
        let mut raw = RawFault {
            kind: fault.kind().as_str().to_string(),
            rate: (fault.rate() != 1.0).then_some(fault.rate()),
            times: fault.times(),
            methods: (!fault.scope().methods().is_empty()).then(|| {
                fault
                    .scope()
                    .methods()
                    .iter()
                    .map(|m| m.as_str().to_string())
                    .collect()
            }),
            path_prefix: fault.scope().prefix().map(str::to_string),
            ..RawFault::default()
        };
        match fault.effect() {
            Effect::Latency { latency, stage } => {
                if latency.distribution() != "fixed" {
                    raw.distribution = Some(latency.distribution().to_string());
                }
                for (name, value) in latency.fields() {
                    match (name, value) {
                        ("sigma", Param::Number(x)) => raw.sigma = Some(x),
                        (name, Param::Duration(d)) => {
                            let slot = match name {
                                "delay" => &mut raw.delay,
                                "min" => &mut raw.min,
                                "max" => &mut raw.max,
                                "mean" => &mut raw.mean,
                                "std_dev" => &mut raw.std_dev,
                                _ => &mut raw.median,
                            };
                            *slot = Some(Dur(d));
                        }
                        _ => {}
                    }
                }
                if *stage == Stage::Response {
                    raw.at = Some("response".into());
                }
            }
            Effect::Error { status } => raw.status = Some(*status),
            Effect::Throttle {
                status,
                retry_after,
            } => {
                raw.status = Some(*status);
                raw.retry_after = Some(Dur(retry_after.delay()));
                if retry_after.is_http_date() {
                    raw.retry_after_format = Some("http-date".into());
                }
            }
            Effect::SlowBody {
                chunk_bytes,
                interval,
            } => {
                raw.chunk_bytes = Some(*chunk_bytes as u64);
                raw.interval = Some(Dur(*interval));
            }
            Effect::Reset | Effect::DropResponse | Effect::Blackhole => {}
        }
        raw
    }
}

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

/// A list of faults in a control payload: `[...]` or `{"faults": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    faults: Vec<RawFault>,
}

/// Converts written faults, naming the bad one by `prefix[i]`.
pub(crate) fn to_fault_set(raw: &[RawFault], prefix: &str) -> Result<FaultSet, SpecError> {
    let faults = raw
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_fault().map_err(|e| e.under(&format!("{prefix}[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FaultSet::from_checked(faults))
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

    /// The faults as JSON, in the form [`from_json_str`](Self::from_json_str)
    /// reads.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.raw()).unwrap_or_default()
    }

    pub(crate) fn raw(&self) -> Vec<RawFault> {
        self.faults().iter().map(RawFault::from_fault).collect()
    }
}

/// serde_json appends " at line L column C"; the line is reported apart.
pub(crate) fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
