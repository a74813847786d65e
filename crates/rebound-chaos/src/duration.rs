//! Durations as people write them in timeline files, control payloads and
//! `--fault` specs: `"250ms"`, `"1.5s"`, `"2m"`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A [`Duration`] read and written as text with a unit.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; the number may have a
/// fraction (`"1.5s"`); a bare `"0"` is zero. A bare number anywhere else is
/// refused, since `10` could mean seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Dur(pub(crate) Duration);

const UNITS: &str = "a number and a unit (ns, us, ms, s, m, h), e.g. \"250ms\" or \"1.5s\"";

/// Parses `"250ms"`, `"1.5s"`, `"0"`.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            if t.is_empty() {
                format!("empty duration: expected {UNITS}")
            } else {
                format!("`{t}` has no unit: write \"{t}ms\" or \"{t}s\"")
            }
        })?;
    let (number, unit) = t.split_at(split);
    let bad = || format!("invalid duration `{t}`: expected {UNITS}");
    if number.is_empty() {
        return Err(bad());
    }
    let nanos_per_unit: u128 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    // Exact decimal arithmetic: "0.1s" is 100 ms, not 99.999 ms.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(bad());
    }
    let too_long = || format!("duration `{t}` is too long");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_long())?
    };
    let mut nanos = whole.checked_mul(nanos_per_unit).ok_or_else(too_long)?;
    let mut scale = nanos_per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Formats a duration in the largest unit that keeps it exact: `"1.5s"`,
/// `"250ms"`, `"3us"`. [`parse`] reads it back to the same value.
pub(crate) fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    for (unit, per) in [("h", 3_600_000_000_000u128), ("m", 60_000_000_000)] {
        if nanos.is_multiple_of(per) {
            return format!("{}{unit}", nanos / per);
        }
    }
    for (unit, per, digits) in [
        ("s", 1_000_000_000u128, 9usize),
        ("ms", 1_000_000, 6),
        ("us", 1_000, 3),
    ] {
        if nanos >= per {
            let (whole, rest) = (nanos / per, nanos % per);
            if rest == 0 {
                return format!("{whole}{unit}");
            }
            let fraction = format!("{rest:0digits$}");
            return format!("{whole}.{}{unit}", fraction.trim_end_matches('0'));
        }
    }
    format!("{nanos}ns")
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a duration as text: {UNITS}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse(s).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
                if n == 0 {
                    return Ok(Dur(Duration::ZERO));
                }
                Err(E::custom(format!(
                    "{n} has no unit: write \"{n}ms\" or \"{n}s\" (a string)"
                )))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                if n < 0 {
                    return Err(E::custom(format!("{n} is negative: a duration cannot be")));
                }
                self.visit_u64(n as u64)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{n} has no unit: write \"{n}s\" (a string)"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_fractions_exactly() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("7us"), Ok(Duration::from_micros(7)));
        assert_eq!(parse("7µs"), Ok(Duration::from_micros(7)));
        assert_eq!(parse("9ns"), Ok(Duration::from_nanos(9)));
        assert_eq!(parse(" 3 s "), Ok(Duration::from_secs(3)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_with_a_hint() {
        assert!(parse("10").unwrap_err().contains("no unit"));
        assert!(parse("10 parsecs")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse("-1s").unwrap_err().contains("invalid duration"));
        assert!(parse("1.2.3s").unwrap_err().contains("invalid duration"));
        assert!(parse("s").unwrap_err().contains("invalid duration"));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("99999999999999999999999h")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn formats_exactly_and_round_trips() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_nanos(2_500), "2.5us"),
        ] {
            assert_eq!(format(d), text);
            assert_eq!(parse(text), Ok(d), "{text}");
        }
    }
}
