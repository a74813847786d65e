//! The `Idempotency-Key` header: an RFC 9651 sf-string, or (lenient mode) a
//! bare token as Stripe's SDKs send it.

use std::fmt;

/// The name of the request header, as sent on the wire.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Default cap on a key's length in characters.
pub const DEFAULT_MAX_KEY_LEN: usize = 255;

/// A validated idempotency key as the client sent it (quotes and escapes
/// removed).
///
/// ```
/// use rebound_idempotency::KeyParser;
/// let key = KeyParser::default().parse(br#""order_123_line_1_reservation""#).unwrap();
/// assert_eq!(key.as_str(), "order_123_line_1_reservation");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an `Idempotency-Key` header value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The header was present but empty (or only whitespace, or `""`).
    #[error("Idempotency-Key is empty")]
    Empty,
    /// The key is longer than the configured cap.
    #[error("Idempotency-Key is {len} characters long; the limit is {max}")]
    TooLong {
        /// Length of the key received.
        len: usize,
        /// The configured cap.
        max: usize,
    },
    /// A byte that is not allowed at this position.
    #[error("Idempotency-Key has a byte {byte:#04x} at position {position} that is not printable ASCII allowed here")]
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the header value.
        position: usize,
    },
    /// A quoted string without its closing quote.
    #[error("Idempotency-Key starts a quoted string but never closes it")]
    Unterminated,
    /// A backslash followed by something other than `"` or `\`.
    #[error("Idempotency-Key has an invalid escape at position {position}: only \\\" and \\\\ are allowed")]
    InvalidEscape {
        /// Offset of the backslash.
        position: usize,
    },
    /// Text after the closing quote.
    #[error("Idempotency-Key has unexpected text after the closing quote at position {position}")]
    TrailingCharacters {
        /// Offset of the first unexpected byte.
        position: usize,
    },
    /// An unquoted key while lenient parsing is off.
    #[error(
        "Idempotency-Key must be a quoted string (\"...\") per RFC 9651; lenient parsing is off"
    )]
    NotQuoted,
    /// More than one `Idempotency-Key` header field.
    #[error("more than one Idempotency-Key header was sent")]
    Multiple,
}

/// Parses and validates `Idempotency-Key` header values.
///
/// # Default
/// Lenient (bare tokens accepted), keys up to [`DEFAULT_MAX_KEY_LEN`] (255)
/// characters.
///
/// ```
/// use rebound_idempotency::{KeyError, KeyParser};
/// let strict = KeyParser::default().lenient(false);
/// assert_eq!(strict.parse(b"abc"), Err(KeyError::NotQuoted));
/// assert_eq!(KeyParser::default().parse(b"abc").unwrap().as_str(), "abc");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParser {
    lenient: bool,
    max_len: usize,
}

impl Default for KeyParser {
    fn default() -> Self {
        KeyParser {
            lenient: true,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }
}

impl KeyParser {
    /// Accept bare (unquoted) keys too. Default: `true`.
    pub const fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// The longest key accepted, in characters. Default: 255.
    pub const fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The configured length cap.
    pub const fn max_len_value(&self) -> usize {
        self.max_len
    }

    /// Parse one header value.
    pub fn parse(&self, value: &[u8]) -> Result<IdempotencyKey, KeyError> {
        let start = value
            .iter()
            .position(|b| !is_ows(*b))
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|b| !is_ows(*b))
            .map_or(start, |i| i + 1);
        if start >= end {
            return Err(KeyError::Empty);
        }
        let key = if value[start] == b'"' {
            Self::parse_quoted(value, start, end)?
        } else if self.lenient {
            parse_bare(value, start, end)?
        } else {
            return Err(KeyError::NotQuoted);
        };
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > self.max_len {
            return Err(KeyError::TooLong {
                len: key.len(),
                max: self.max_len,
            });
        }
        Ok(IdempotencyKey(key))
    }

    fn parse_quoted(value: &[u8], start: usize, end: usize) -> Result<String, KeyError> {
        let mut out = String::new();
        let mut i = start + 1;
        while i < end {
            let b = value[i];
            match b {
                b'"' => {
                    if i + 1 != end {
                        return Err(KeyError::TrailingCharacters { position: i + 1 });
                    }
                    return Ok(out);
                }
                b'\\' => {
                    match value.get(i + 1) {
                        Some(&e @ (b'"' | b'\\')) if i + 1 < end => out.push(char::from(e)),
                        _ => return Err(KeyError::InvalidEscape { position: i }),
                    }
                    i += 2;
                    continue;
                }
                0x20..=0x7e => out.push(char::from(b)),
                _ => {
                    return Err(KeyError::InvalidByte {
                        byte: b,
                        position: i,
                    });
                }
            }
            i += 1;
        }
        Err(KeyError::Unterminated)
    }
}

fn parse_bare(value: &[u8], start: usize, end: usize) -> Result<String, KeyError> {
    for (i, &b) in value.iter().enumerate().take(end).skip(start) {
        // Visible ASCII, minus the characters that would make it a list,
        // a parameter or a broken quoted string.
        if !(0x21..=0x7e).contains(&b) || matches!(b, b'"' | b',' | b';' | b'\\') {
            return Err(KeyError::InvalidByte {
                byte: b,
                position: i,
            });
        }
    }
    Ok(String::from_utf8_lossy(&value[start..end]).into_owned())
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_quoted_with_escapes_and_whitespace() {
        let k = KeyParser::default().parse(br#"  "a\"b\\c d"  "#).unwrap();
        assert_eq!(k.as_str(), r#"a"b\c d"#);
    }

    #[test]
    fn parses_bare_uuid_in_lenient_mode() {
        let k = KeyParser::default()
            .parse(b"550e8400-e29b-41d4-a716-446655440000")
            .unwrap();
        assert_eq!(k.as_str(), "550e8400-e29b-41d4-a716-446655440000");
    }

    #[test]
    fn refuses_bad_values_with_named_reasons() {
        let p = KeyParser::default();
        assert_eq!(p.parse(b""), Err(KeyError::Empty));
        assert_eq!(p.parse(b"   "), Err(KeyError::Empty));
        assert_eq!(p.parse(b"\"\""), Err(KeyError::Empty));
        assert_eq!(p.parse(b"\"abc"), Err(KeyError::Unterminated));
        assert_eq!(
            p.parse(b"\"a\"b"),
            Err(KeyError::TrailingCharacters { position: 3 })
        );
        assert_eq!(
            p.parse(b"\"a\\x\""),
            Err(KeyError::InvalidEscape { position: 2 })
        );
        assert_eq!(
            p.parse(b"a b"),
            Err(KeyError::InvalidByte {
                byte: b' ',
                position: 1
            })
        );
        assert_eq!(
            p.parse("\"caf\u{e9}\"".as_bytes()),
            Err(KeyError::InvalidByte {
                byte: 0xc3,
                position: 4
            })
        );
        let long = vec![b'k'; 256];
        assert_eq!(
            p.parse(&long),
            Err(KeyError::TooLong { len: 256, max: 255 })
        );
        assert!(p.parse(&long[..255]).is_ok());
        let msg = KeyError::TooLong { len: 256, max: 255 }.to_string();
        assert!(msg.contains("256") && msg.contains("255"), "{msg}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Any byte string: Ok with a valid key, or a clean error; never a panic.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                           lenient in any::<bool>(),
                                           max in 1usize..300) {
            let parser = KeyParser::default().lenient(lenient).max_len(max);
            match parser.parse(&bytes) {
                Ok(key) => {
                    prop_assert!(!key.as_str().is_empty());
                    prop_assert!(key.as_str().len() <= max);
                    prop_assert!(key.as_str().bytes().all(|b| (0x20..=0x7e).contains(&b)));
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        /// Quoting any printable key and parsing it gives the key back.
        #[test]
        fn quoted_round_trip(key in "[ -~]{1,255}") {
            let mut wire = String::from("\"");
            for c in key.chars() {
                if c == '"' || c == '\\' { wire.push('\\'); }
                wire.push(c);
            }
            wire.push('"');
            let parsed = KeyParser::default().lenient(false).parse(wire.as_bytes()).unwrap();
            prop_assert_eq!(parsed.as_str(), key.as_str());
        }
    }
}
