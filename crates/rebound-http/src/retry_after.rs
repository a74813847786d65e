//! Reading how long a server asked us to wait.
//!
//! A server that is overloaded or rate-limiting says when to come back, and a
//! client that comes back sooner only adds to the load it was asked to shed.
//! This module reads the answer from four headers, first match wins:
//!
//! | header | form | source |
//! |---|---|---|
//! | `Retry-After` | delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`) | RFC 9110 §10.2.3 |
//! | `RateLimit` | structured field with a `t=` parameter (`"default";r=0;t=30`) | draft-ietf-httpapi-ratelimit-headers-08+ |
//! | `RateLimit-Reset` | delta-seconds | earlier drafts of the same |
//! | `X-RateLimit-Reset` | delta-seconds, or Unix epoch seconds when ≥ 10⁹ (GitHub's form) | de-facto |
//!
//! An HTTP-date (or an epoch time) is turned into a delay against the
//! response's own `Date` header when it has one — so the client's clock skew
//! does not shorten the wait — and against the caller's `now` otherwise. A
//! date in the past means "now": a delay of zero.
//!
//! Every parser returns either a delay or [`Ignored`] saying why the value
//! was not understood; none panics on any input (they are fuzzed with
//! proptest). Lenient where real servers are sloppy: surrounding whitespace
//! is trimmed and a fractional delta (`1.5`) is accepted and rounded up to
//! the nanosecond, never down. A delta too large to represent saturates — a
//! server asking for forever is treated as asking for a very long time, not
//! ignored.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use rebound_http::retry_after::{parse_retry_after, Ignored};
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! assert_eq!(parse_retry_after(b"120", now), Ok(Duration::from_secs(120)));
//!
//! let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
//! assert_eq!(parse_retry_after(later.as_bytes(), now), Ok(Duration::from_secs(30)));
//!
//! assert_eq!(parse_retry_after(b"soon", now), Err(Ignored::Malformed));
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, DATE, RETRY_AFTER};

/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers, structured form).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Reset` (earlier drafts of the same).
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `X-RateLimit-Reset` (de-facto; GitHub, Twitter, many gateways).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Values of `X-RateLimit-Reset` at or above this are Unix epoch seconds
/// (2001-09-09 onwards); below, delta-seconds.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// Why a header value gave no delay. The value is ignored, never guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ignored {
    /// The value was empty (or only whitespace).
    Empty,
    /// The value held bytes outside visible ASCII.
    NotAscii,
    /// The value was neither a number of seconds nor an HTTP-date.
    Malformed,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ignored::Empty => "empty value",
            Ignored::NotAscii => "not visible ASCII",
            Ignored::Malformed => "neither delay-seconds nor an HTTP-date",
        })
    }
}

impl std::error::Error for Ignored {}

/// Which header a [`ServerDelay`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DelaySource {
    /// `Retry-After`.
    RetryAfter,
    /// `RateLimit` (`t=` parameter).
    RateLimit,
    /// `RateLimit-Reset`.
    RateLimitReset,
    /// `X-RateLimit-Reset`.
    XRateLimitReset,
}

/// A delay a server asked for, and where it said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerDelay {
    /// How long to wait at least.
    pub delay: Duration,
    /// The header it came from.
    pub source: DelaySource,
}

/// Reads the delay a response asks for from its headers (see the
/// [module docs](self) for the headers and their order). `now` is used for
/// dates only when the response has no valid `Date` header. `None` when no
/// header is present or none could be understood.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use rebound_http::retry_after::{server_delay, DelaySource};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-reset", "7".parse().unwrap());
/// let d = server_delay(&headers, SystemTime::now()).unwrap();
/// assert_eq!((d.delay, d.source), (Duration::from_secs(7), DelaySource::XRateLimitReset));
/// ```
pub fn server_delay(headers: &HeaderMap, now: SystemTime) -> Option<ServerDelay> {
    // Fast path: most responses carry none of these.
    let retry_after = headers.get(RETRY_AFTER);
    let ratelimit = headers.get(RATELIMIT);
    let reset = headers.get(RATELIMIT_RESET);
    let x_reset = headers.get(X_RATELIMIT_RESET);
    if retry_after.is_none() && ratelimit.is_none() && reset.is_none() && x_reset.is_none() {
        return None;
    }
    let now = headers
        .get(DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .unwrap_or(now);
    let found = |delay, source| Some(ServerDelay { delay, source });
    if let Some(Ok(d)) = retry_after.map(|v| parse_retry_after(v.as_bytes(), now)) {
        return found(d, DelaySource::RetryAfter);
    }
    if let Some(Ok(d)) = ratelimit.map(|v| parse_ratelimit(v.as_bytes())) {
        return found(d, DelaySource::RateLimit);
    }
    if let Some(Ok(d)) = reset.map(|v| parse_delta_seconds(v.as_bytes())) {
        return found(d, DelaySource::RateLimitReset);
    }
    if let Some(Ok(d)) = x_reset.map(|v| parse_x_ratelimit_reset(v.as_bytes(), now)) {
        return found(d, DelaySource::XRateLimitReset);
    }
    None
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (IMF-fixdate,
/// RFC 850 or asctime, as RFC 9110 requires recipients to accept). A date is
/// measured from `now`; a past date gives zero.
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Result<Duration, Ignored> {
    let s = visible_ascii(value)?;
    if s.as_bytes()[0].is_ascii_digit() {
        if let Ok(d) = parse_seconds(s) {
            return Ok(d);
        }
    }
    match httpdate::parse_http_date(s) {
        Ok(at) => Ok(at.duration_since(now).unwrap_or(Duration::ZERO)),
        Err(_) => Err(Ignored::Malformed),
    }
}

/// Parses delta-seconds (`RateLimit-Reset`): digits, optionally with a
/// fraction.
pub fn parse_delta_seconds(value: &[u8]) -> Result<Duration, Ignored> {
    parse_seconds(visible_ascii(value)?)
}

/// Parses `X-RateLimit-Reset`: values of 10⁹ and more are Unix epoch seconds
/// (measured from `now`; the past gives zero), smaller ones delta-seconds.
pub fn parse_x_ratelimit_reset(value: &[u8], now: SystemTime) -> Result<Duration, Ignored> {
    let d = parse_seconds(visible_ascii(value)?)?;
    if d.as_secs() < EPOCH_THRESHOLD {
        return Ok(d);
    }
    let at = SystemTime::UNIX_EPOCH
        .checked_add(d)
        .ok_or(Ignored::Malformed)?;
    Ok(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses the `t=` (or older `reset=`) parameter of a structured `RateLimit`
/// value such as `"default";r=0;t=30` or `limit=10, remaining=0, reset=30`.
pub fn parse_ratelimit(value: &[u8]) -> Result<Duration, Ignored> {
    let s = visible_ascii(value)?;
    for param in s.split([';', ',']) {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if matches!(k.trim(), "t" | "reset") {
            return parse_seconds(v.trim());
        }
    }
    Err(Ignored::Malformed)
}

fn visible_ascii(value: &[u8]) -> Result<&str, Ignored> {
    let s = std::str::from_utf8(value).map_err(|_| Ignored::NotAscii)?;
    if !s.is_ascii() {
        return Err(Ignored::NotAscii);
    }
    let s = s.trim_matches(|c: char| c == ' ' || c == '\t');
    if s.is_empty() {
        return Err(Ignored::Empty);
    }
    if s.bytes().any(|b| b.is_ascii_control()) {
        return Err(Ignored::NotAscii);
    }
    Ok(s)
}

/// `1*DIGIT [ "." 1*DIGIT ]`, saturating, fractions rounded up to the
/// nanosecond.
fn parse_seconds(s: &str) -> Result<Duration, Ignored> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Ignored::Malformed);
    }
    let secs = int.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    let Some(frac) = frac else {
        return Ok(Duration::from_secs(secs));
    };
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Ignored::Malformed);
    }
    let mut nanos = 0u32;
    for (i, b) in frac.bytes().enumerate() {
        if i < 9 {
            nanos = nanos * 10 + u32::from(b - b'0');
        } else if b != b'0' {
            // Anything below a nanosecond rounds up: never wait less.
            nanos += 1;
            break;
        }
    }
    for _ in frac.len()..9 {
        nanos *= 10;
    }
    Ok(Duration::from_secs(secs).saturating_add(Duration::from_nanos(u64::from(nanos))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn delta_seconds() {
        let now = at(1_700_000_000);
        assert_eq!(parse_retry_after(b"0", now), Ok(Duration::ZERO));
        assert_eq!(parse_retry_after(b" 5 ", now), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after(b"1.5", now),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(b"0.0000000001", now),
            Ok(Duration::from_nanos(1)),
            "rounded up, never down"
        );
        assert_eq!(
            parse_retry_after(b"99999999999999999999999", now),
            Ok(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after(b"-1", now), Err(Ignored::Malformed));
        assert_eq!(parse_retry_after(b"1.", now), Err(Ignored::Malformed));
        assert_eq!(parse_retry_after(b"", now), Err(Ignored::Empty));
        assert_eq!(parse_retry_after(b"\xff", now), Err(Ignored::NotAscii));
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let now = at(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
        let expect = Ok(Duration::from_secs(7));
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(v.as_bytes(), now), expect, "{v}");
        }
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:00:00 GMT", now),
            Ok(Duration::ZERO),
            "the past means now"
        );
    }

    #[test]
    fn ratelimit_headers() {
        let now = at(1_700_000_000);
        assert_eq!(
            parse_x_ratelimit_reset(b"1700000042", now),
            Ok(Duration::from_secs(42))
        );
        assert_eq!(
            parse_x_ratelimit_reset(b"42", now),
            Ok(Duration::from_secs(42))
        );
        assert_eq!(
            parse_ratelimit(br#""default";r=0;t=30"#),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            parse_ratelimit(b"limit=10, remaining=0, reset=9"),
            Ok(Duration::from_secs(9))
        );
        assert_eq!(parse_ratelimit(b"r=0"), Err(Ignored::Malformed));
    }

    #[test]
    fn server_date_beats_local_clock() {
        let mut h = HeaderMap::new();
        h.insert(DATE, "Sun, 06 Nov 1994 08:49:30 GMT".parse().unwrap());
        h.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:40 GMT".parse().unwrap(),
        );
        // The local clock is a day ahead; the server's Date is what counts.
        let d = server_delay(&h, at(784_111_770 + 86_400)).unwrap();
        assert_eq!(d.delay, Duration::from_secs(10));
        assert_eq!(d.source, DelaySource::RetryAfter);
    }

    #[test]
    fn falls_through_to_the_next_header_when_one_is_garbage() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "later".parse().unwrap());
        h.insert(RATELIMIT_RESET, "3".parse().unwrap());
        let d = server_delay(&h, at(0)).unwrap();
        assert_eq!(d.source, DelaySource::RateLimitReset);
        assert!(server_delay(&HeaderMap::new(), at(0)).is_none());
    }
}
