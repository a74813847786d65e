//! The written form of a fault — a table in a timeline file, an object in
//! a control payload, a `kind key=value ...` line on the command line — and
//! its checked conversion to a [`Fault`]. The field-by-field checks live
//! here; [`line`] reads the command-line form and [`json`] the JSON one.

mod json;
mod line;

use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::duration::{format as dur, Dur};
use crate::fault::{Effect, LatencyAt, RetryAfter};
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
        let at = match self.at.as_deref().map(str::trim) {
            None | Some("request") => LatencyAt::Request,
            Some("response") => LatencyAt::Response,
            Some(other) => {
                return Err(SpecError::new(
                    "at",
                    format!("`{other}`: a latency waits at \"request\" (before the upstream) or \"response\" (after it)"),
                ))
            }
        };
        Ok(Effect::Latency { latency, at })
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
            Effect::Latency { latency, at } => {
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
                if *at == LatencyAt::Response {
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
    pub(crate) fn raw(&self) -> Vec<RawFault> {
        self.faults().iter().map(RawFault::from_fault).collect()
    }
}
