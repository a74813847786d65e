//! One fault: what it does, how often, to which requests.

use std::fmt;
use std::time::Duration;

use crate::duration::format as dur;
use crate::{Latency, Scope};

/// The kinds of fault, as named in specs, files and the `fault` label of
/// the proxy's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultKind {
    /// `latency`: a delay before the request is forwarded, or before the
    /// upstream's response is passed on.
    Latency,
    /// `error`: a 5xx answer made by the proxy; the upstream never sees the
    /// request.
    Error,
    /// `throttle`: a 429 or 503 answer with `Retry-After`, made by the
    /// proxy; the upstream never sees the request.
    Throttle,
    /// `reset`: the client's connection is reset (TCP RST) before the
    /// upstream sees the request.
    Reset,
    /// `drop_response`: the request is forwarded, the upstream runs it and
    /// answers, and the client's connection is reset instead of receiving
    /// the answer — the case idempotency keys exist for.
    DropResponse,
    /// `slow_body`: the upstream's response body is passed on a few bytes
    /// at a time.
    SlowBody,
    /// `blackhole`: the request is accepted and never answered.
    Blackhole,
}

impl FaultKind {
    /// Every kind, in the order of the counters.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Latency,
        FaultKind::Error,
        FaultKind::Throttle,
        FaultKind::Reset,
        FaultKind::DropResponse,
        FaultKind::SlowBody,
        FaultKind::Blackhole,
    ];

    /// The name used in specs, files and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::Error => "error",
            FaultKind::Throttle => "throttle",
            FaultKind::Reset => "reset",
            FaultKind::DropResponse => "drop_response",
            FaultKind::SlowBody => "slow_body",
            FaultKind::Blackhole => "blackhole",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The names of every kind, for error messages.
    pub(crate) fn names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a latency fault waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatencyAt {
    /// Before the request is forwarded (`at = "request"`, the default): the
    /// upstream sees the request late, and not at all if the client gives
    /// up first.
    #[default]
    Request,
    /// After the upstream has answered, before the answer is passed on
    /// (`at = "response"`): the upstream did the work, the client waits —
    /// and a client that times out retries work that already happened.
    Response,
}

/// The longest `Retry-After` a throttle fault sends: 2³¹ − 1 seconds
/// (RFC 9111 §1.2.2 asks recipients to accept delta-seconds up to 2³¹).
const MAX_RETRY_AFTER: u64 = (1 << 31) - 1;

/// The `Retry-After` header of a throttle fault: a delay in whole seconds,
/// written as delta-seconds (`Retry-After: 5`) or as an HTTP-date that far
/// ahead (`Retry-After: Wed, 21 Oct 2026 07:28:05 GMT`), as RFC 9110 §10.2.3
/// allows both.
///
/// The date is the proxy's wall clock plus the delay, rounded **up** to the
/// next whole second (a date has no fractions), so a client honouring it
/// never waits less than the delay. A fault set refuses delays over
/// 2³¹ − 1 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    seconds: u64,
    http_date: bool,
}

impl RetryAfter {
    /// `Retry-After: <seconds>`.
    pub const fn seconds(seconds: u64) -> Self {
        RetryAfter {
            seconds,
            http_date: false,
        }
    }

    /// `Retry-After: <the date in seconds seconds>`.
    pub const fn http_date(seconds: u64) -> Self {
        RetryAfter {
            seconds,
            http_date: true,
        }
    }

    /// The delay asked for.
    pub const fn delay(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    /// Whether it is written as an HTTP-date.
    pub const fn is_http_date(&self) -> bool {
        self.http_date
    }

    /// The header's value, sent at wall-clock time `now`.
    pub fn header_value(&self, now: std::time::SystemTime) -> String {
        if !self.http_date {
            return self.seconds.to_string();
        }
        let since_epoch = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Round the date up to a whole second so it is never early.
        let whole = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
        let at = std::time::UNIX_EPOCH + Duration::from_secs(whole.saturating_add(self.seconds));
        httpdate::fmt_http_date(at)
    }
}

/// What a fault does, with its parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Effect {
    /// Waits a drawn delay, before the upstream or after it.
    Latency {
        /// The delay's distribution.
        latency: Latency,
        /// Before the upstream, or after it.
        at: LatencyAt,
    },
    /// Answers `status` (500–599) without calling the upstream.
    Error {
        /// The status code.
        status: u16,
    },
    /// Answers `status` (429 or 503) with `Retry-After` without calling
    /// the upstream.
    Throttle {
        /// 429 or 503.
        status: u16,
        /// The header sent.
        retry_after: RetryAfter,
    },
    /// Resets the client's connection before the upstream sees the request.
    Reset,
    /// Forwards the request, lets the upstream answer in full, then resets
    /// the client's connection instead of answering.
    DropResponse,
    /// Passes the upstream's body on `chunk_bytes` at a time, `interval`
    /// apart.
    SlowBody {
        /// Bytes per piece (≥ 1).
        chunk_bytes: usize,
        /// The wait between pieces.
        interval: Duration,
    },
    /// Never answers.
    Blackhole,
}

impl Effect {
    /// Its kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Effect::Latency { .. } => FaultKind::Latency,
            Effect::Error { .. } => FaultKind::Error,
            Effect::Throttle { .. } => FaultKind::Throttle,
            Effect::Reset => FaultKind::Reset,
            Effect::DropResponse => FaultKind::DropResponse,
            Effect::SlowBody { .. } => FaultKind::SlowBody,
            Effect::Blackhole => FaultKind::Blackhole,
        }
    }
}

/// One fault: an [`Effect`], the probability that it hits a request in
/// scope (the rate), an optional cap on how many times it hits, and the
/// [`Scope`] of requests it applies to.
///
/// Faults are checked when gathered into a [`FaultSet`](crate::FaultSet),
/// which names the first bad value.
///
/// ```
/// use std::time::Duration;
/// use http::Method;
/// use rebound_chaos::{Fault, FaultSet, Latency, RetryAfter, Scope};
///
/// let faults = FaultSet::new([
///     // Half the requests wait 100–300 ms.
///     Fault::latency(Latency::uniform(Duration::from_millis(100), Duration::from_millis(300)))
///         .with_rate(0.5),
///     // 10 % of the writes to /orders answer 503 with `Retry-After: 2`.
///     Fault::throttle(503, RetryAfter::seconds(2))
///         .with_rate(0.1)
///         .with_scope(Scope::any().method(Method::POST).path_prefix("/orders")),
///     // The first reservation runs upstream but its answer is lost.
///     Fault::drop_response().with_times(1).with_scope(Scope::any().path_prefix("/reserve")),
/// ])?;
/// assert_eq!(faults.len(), 3);
/// # Ok::<(), rebound_chaos::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    effect: Effect,
    rate: f64,
    times: Option<u64>,
    scope: Scope,
}

impl Fault {
    /// A fault with this effect, at rate 1, unlimited, on every request.
    pub fn new(effect: Effect) -> Self {
        Fault {
            effect,
            rate: 1.0,
            times: None,
            scope: Scope::any(),
        }
    }

    /// Delays the request before it is forwarded.
    pub fn latency(latency: Latency) -> Self {
        Self::new(Effect::Latency {
            latency,
            at: LatencyAt::Request,
        })
    }

    /// Delays the upstream's answer after the upstream has run.
    pub fn response_latency(latency: Latency) -> Self {
        Self::new(Effect::Latency {
            latency,
            at: LatencyAt::Response,
        })
    }

    /// Answers `status` (500–599) without calling the upstream.
    pub fn error(status: u16) -> Self {
        Self::new(Effect::Error { status })
    }

    /// Answers `status` (429 or 503) with `Retry-After` without calling the
    /// upstream.
    pub fn throttle(status: u16, retry_after: RetryAfter) -> Self {
        Self::new(Effect::Throttle {
            status,
            retry_after,
        })
    }

    /// Resets the connection before the upstream sees the request.
    pub fn reset() -> Self {
        Self::new(Effect::Reset)
    }

    /// Lets the upstream run the request, then resets the connection
    /// instead of answering.
    pub fn drop_response() -> Self {
        Self::new(Effect::DropResponse)
    }

    /// Passes the body on `chunk_bytes` at a time, `interval` apart.
    pub fn slow_body(chunk_bytes: usize, interval: Duration) -> Self {
        Self::new(Effect::SlowBody {
            chunk_bytes,
            interval,
        })
    }

    /// Accepts the request and never answers.
    pub fn blackhole() -> Self {
        Self::new(Effect::Blackhole)
    }

    /// The probability in `[0, 1]` that the fault hits a request in scope
    /// (default 1: every one).
    pub fn with_rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Hits at most `times` requests (≥ 1) for as long as its fault set is
    /// in force (default: no limit). `with_times(2)` with the default rate
    /// fails exactly the first two requests in scope.
    pub fn with_times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    /// Only requests in `scope` (default: every request).
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// What it does.
    pub fn effect(&self) -> &Effect {
        &self.effect
    }

    /// Its kind.
    pub fn kind(&self) -> FaultKind {
        self.effect.kind()
    }

    /// The probability that it hits a request in scope.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The cap on hits, if any.
    pub fn times(&self) -> Option<u64> {
        self.times
    }

    /// The requests it applies to.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The first value that is wrong: `(field, why)`.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err((
                "rate",
                format!("{} is outside [0, 1] (a rate is a probability)", self.rate),
            ));
        }
        if self.times == Some(0) {
            return Err((
                "times",
                "0 would never inject; leave `times` out for no limit".into(),
            ));
        }
        self.scope.check()?;
        match &self.effect {
            Effect::Latency { latency, .. } => latency.check()?,
            Effect::Error { status } if !(500..=599).contains(status) => {
                return Err((
                    "status",
                    format!("{status} is not a 5xx status; an `error` fault answers 500–599 (use `throttle` for 429)"),
                ))
            }
            Effect::Throttle { status, .. } if *status != 429 && *status != 503 => {
                return Err((
                    "status",
                    format!("{status}: a `throttle` fault answers 429 or 503, the statuses `Retry-After` is defined for"),
                ))
            }
            Effect::Throttle { retry_after, .. } if retry_after.seconds > MAX_RETRY_AFTER => {
                return Err((
                    "retry_after",
                    format!(
                        "{}s is longer than {MAX_RETRY_AFTER}s, the most a client must accept as delta-seconds (RFC 9111 §1.2.2)",
                        retry_after.seconds
                    ),
                ))
            }
            Effect::SlowBody { chunk_bytes: 0, .. } => {
                return Err(("chunk_bytes", "0 would never send the body; use 1 or more".into()))
            }
            Effect::SlowBody { interval, .. } if interval.is_zero() => {
                return Err(("interval", "0s would not slow anything; use a positive interval".into()))
            }
            _ => {}
        }
        Ok(())
    }
}

/// Writes the fault as the spec `--fault` and `PUT /faults` accept:
/// `throttle status=503 retry_after=2s rate=0.1 methods=POST path_prefix=/orders`.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().as_str())?;
        match &self.effect {
            Effect::Latency { latency, at } => {
                write!(f, " {latency}")?;
                if *at == LatencyAt::Response {
                    f.write_str(" at=response")?;
                }
            }
            Effect::Error { status } => write!(f, " status={status}")?,
            Effect::Throttle {
                status,
                retry_after,
            } => {
                write!(
                    f,
                    " status={status} retry_after={}",
                    dur(retry_after.delay())
                )?;
                if retry_after.is_http_date() {
                    f.write_str(" retry_after_format=http-date")?;
                }
            }
            Effect::SlowBody {
                chunk_bytes,
                interval,
            } => write!(f, " chunk_bytes={chunk_bytes} interval={}", dur(*interval))?,
            Effect::Reset | Effect::DropResponse | Effect::Blackhole => {}
        }
        if self.rate != 1.0 {
            write!(f, " rate={}", self.rate)?;
        }
        if let Some(t) = self.times {
            write!(f, " times={t}")?;
        }
        if !self.scope.methods().is_empty() {
            let m: Vec<&str> = self.scope.methods().iter().map(|m| m.as_str()).collect();
            write!(f, " methods={}", m.join(","))?;
        }
        if let Some(p) = self.scope.prefix() {
            write!(f, " path_prefix={p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn an_http_date_is_never_early() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_400);
        let value = RetryAfter::http_date(2).header_value(at);
        let date = httpdate::parse_http_date(&value).unwrap();
        assert_eq!(date, UNIX_EPOCH + Duration::from_secs(1_700_000_003));
        assert!(date.duration_since(at).unwrap() >= Duration::from_secs(2));
        // On a whole second, exactly the delay.
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::parse_http_date(&RetryAfter::http_date(2).header_value(at)).unwrap();
        assert_eq!(date.duration_since(at).unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn seconds_are_delta_seconds() {
        assert_eq!(RetryAfter::seconds(5).header_value(SystemTime::now()), "5");
    }

    #[test]
    fn checks_name_the_field() {
        assert_eq!(Fault::error(404).check().unwrap_err().0, "status");
        assert_eq!(
            Fault::throttle(500, RetryAfter::seconds(1))
                .check()
                .unwrap_err()
                .0,
            "status"
        );
        assert_eq!(
            Fault::reset().with_rate(1.01).check().unwrap_err().0,
            "rate"
        );
        assert_eq!(
            Fault::reset().with_rate(f64::NAN).check().unwrap_err().0,
            "rate"
        );
        assert_eq!(Fault::reset().with_times(0).check().unwrap_err().0, "times");
        assert_eq!(
            Fault::slow_body(0, Duration::from_millis(1))
                .check()
                .unwrap_err()
                .0,
            "chunk_bytes"
        );
        assert_eq!(
            Fault::reset()
                .with_scope(Scope::any().path_prefix("orders"))
                .check()
                .unwrap_err()
                .0,
            "path_prefix"
        );
        assert_eq!(
            Fault::throttle(429, RetryAfter::http_date(1 << 31))
                .check()
                .unwrap_err()
                .0,
            "retry_after"
        );
        assert!(Fault::throttle(429, RetryAfter::http_date((1 << 31) - 1))
            .check()
            .is_ok());
        assert!(Fault::blackhole().with_rate(0.0).check().is_ok());
    }

    #[test]
    fn displays_as_a_spec() {
        let f = Fault::throttle(503, RetryAfter::http_date(2))
            .with_rate(0.25)
            .with_times(3)
            .with_scope(
                Scope::any()
                    .method(http::Method::POST)
                    .path_prefix("/orders"),
            );
        assert_eq!(
            f.to_string(),
            "throttle status=503 retry_after=2s retry_after_format=http-date rate=0.25 times=3 methods=POST path_prefix=/orders"
        );
        assert_eq!(
            Fault::response_latency(Latency::fixed(Duration::from_millis(5))).to_string(),
            "latency delay=5ms at=response"
        );
    }
}
