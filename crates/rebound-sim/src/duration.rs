//! Durations written the way people write them: `"250ms"`, `"1.5s"`, `"2m"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads and writes as text such as `"250ms"`.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; the number may have a
/// fraction (`"1.5s"`). A bare `0` is zero.
///
/// ```
/// use std::time::Duration;
/// use rebound_sim::Dur;
///
/// let d: Dur = "1.5s".parse().unwrap();
/// assert_eq!(d.0, Duration::from_millis(1500));
/// assert_eq!(d.to_string(), "1.5s");
/// assert!("10 parsecs".parse::<Dur>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl From<Duration> for Dur {
    fn from(d: Duration) -> Self {
        Dur(d)
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Self {
        d.0
    }
}

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad(s))?;
        let (num, unit) = t.split_at(split);
        let value: f64 = num.parse().map_err(|_| bad(s))?;
        let scale = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad(s)),
        };
        Duration::try_from_secs_f64(value * scale)
            .map(Dur)
            .map_err(|_| bad(s))
    }
}

fn bad(s: &str) -> String {
    format!(
        "invalid duration {s:?}: expected a number and a unit (ns, us, ms, s, m, h), e.g. \"250ms\" or \"1.5s\""
    )
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        let (div, unit) = if n == 0 {
            return f.write_str("0s");
        } else if n >= 1_000_000_000 {
            (1e9, "s")
        } else if n >= 1_000_000 {
            (1e6, "ms")
        } else if n >= 1_000 {
            (1e3, "us")
        } else {
            (1.0, "ns")
        };
        let v = n as f64 / div;
        // Up to 6 significant decimals, trailing zeros trimmed: stable text.
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{s}{unit}")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\" or \"1.5s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "a bare number ({v}) has no unit: write it as \"{v}ms\" or \"{v}s\""
                    )))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) has no unit: write it as \"{v}s\""
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
    fn round_trips() {
        for s in ["250ms", "1.5s", "2s", "10us", "7ns", "0s", "120s"] {
            let d: Dur = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("2m".parse::<Dur>().unwrap().0, Duration::from_secs(120));
        assert!("ms".parse::<Dur>().is_err());
        assert!("-1s".parse::<Dur>().is_err());
        assert!("1.2.3s".parse::<Dur>().is_err());
    }
}
