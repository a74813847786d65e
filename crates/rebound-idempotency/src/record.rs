//! What a store keeps per key, and what a claim answers.
//!
//! Stores keep the result of a completed key as opaque bytes: the HTTP layer
//! keeps an encoded [`StoredResponse`](crate::StoredResponse), the
//! function-level [`once`](crate::once) API a serialized value.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// A SHA-256 hash of the parts of a request that must match for a replay
/// (method, path, query, body and configured headers).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Hash the given parts; each part is length-prefixed so no two different
    /// part lists hash alike by concatenation.
    ///
    /// ```
    /// use rebound_idempotency::Fingerprint;
    /// assert_ne!(Fingerprint::of(&[b"ab", b"c"]), Fingerprint::of(&[b"a", b"bc"]));
    /// ```
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        Fingerprint(h.finalize().into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Why stored bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored record is corrupt: {0}")]
pub struct DecodeError(&'static str);

impl DecodeError {
    pub(crate) fn new(what: &'static str) -> Self {
        DecodeError(what)
    }
}

/// What a claim asks of a store.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// The scoped key (already combines identity, method, route, client key).
    pub key: &'a str,
    /// Fingerprint of the request.
    pub fingerprint: Fingerprint,
    /// The time now, from the layer's clock.
    pub now: Timestamp,
    /// How long the claim holds before another request may take it over.
    pub lease: Duration,
    /// How long the record is kept (from now for a claim; from completion
    /// for a completed record).
    pub ttl: Duration,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller owns the key and must complete or release it with `fence`.
    Claimed {
        /// The fencing token for this ownership; larger than every earlier
        /// owner's token for the same record.
        fence: u64,
    },
    /// Another request holds the key; its lease ends in `retry_after`.
    InProgress {
        /// Time left on the holder's lease.
        retry_after: Duration,
    },
    /// The key completed with this result (same fingerprint): the bytes
    /// passed to [`Store::complete`](crate::Store::complete).
    Completed(Bytes),
    /// The key is live with a different fingerprint; nothing was changed.
    Mismatch,
}

/// The state of a record, as the memory and redb stores keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    InProgress = 0,
    Completed = 1,
    Released = 2,
}

/// One record, in the shape the memory and redb stores share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub state: State,
    pub fence: u64,
    pub fingerprint: Fingerprint,
    pub lease_expires_at: Timestamp,
    pub expires_at: Timestamp,
    pub response: Option<Bytes>,
}

/// Decisions shared by the stores that run the claim logic in Rust (memory,
/// redb). Redis (Lua) and PostgreSQL (SQL) implement the same rules.
impl Record {
    /// Whether a claim at `now` may take this record over: it is past
    /// retention, released, or an in-progress record whose lease ran out.
    pub fn claimable(&self, now: Timestamp) -> bool {
        self.expires_at <= now
            || self.state == State::Released
            || (self.state == State::InProgress && self.lease_expires_at <= now)
    }

    /// The answer for a claim that cannot take this record.
    pub fn outcome_when_held(&self, req: &ClaimRequest<'_>) -> ClaimOutcome {
        if self.fingerprint != req.fingerprint {
            return ClaimOutcome::Mismatch;
        }
        match self.state {
            State::InProgress => ClaimOutcome::InProgress {
                retry_after: self.lease_expires_at.saturating_duration_since(req.now),
            },
            State::Completed => ClaimOutcome::Completed(self.response.clone().unwrap_or_default()),
            // A released record is always claimable, so this is never
            // reached; answer conservatively rather than panic if that
            // ever changes.
            State::Released => ClaimOutcome::InProgress {
                retry_after: Duration::from_millis(1),
            },
        }
    }

    /// The record a successful claim writes over `previous`.
    pub fn claimed(previous: Option<&Record>, req: &ClaimRequest<'_>) -> Record {
        let fence = previous.map_or(0, |r| r.fence).saturating_add(1);
        Record {
            state: State::InProgress,
            fence,
            fingerprint: req.fingerprint,
            lease_expires_at: req.now + req.lease,
            expires_at: (req.now + req.ttl).max(req.now + req.lease),
            response: None,
        }
    }

    /// Encode for the redb store.
    #[cfg_attr(not(feature = "redb"), allow(dead_code))]
    pub fn encode(&self) -> Vec<u8> {
        let resp = self.response.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 8 + 32 + 16 + resp.len());
        out.push(self.state as u8);
        out.extend_from_slice(&self.fence.to_be_bytes());
        out.extend_from_slice(&self.fingerprint.0);
        out.extend_from_slice(&self.lease_expires_at.as_millis().to_be_bytes());
        out.extend_from_slice(&self.expires_at.as_millis().to_be_bytes());
        out.extend_from_slice(resp);
        out
    }

    /// Decode what [`encode`](Self::encode) wrote.
    #[cfg_attr(not(feature = "redb"), allow(dead_code))]
    pub fn decode(b: &[u8]) -> Result<Record, DecodeError> {
        if b.len() < 57 {
            return Err(DecodeError::new("record truncated"));
        }
        let state = match b[0] {
            0 => State::InProgress,
            1 => State::Completed,
            2 => State::Released,
            _ => return Err(DecodeError::new("unknown record state")),
        };
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&b[9..41]);
        Ok(Record {
            state,
            fence: u64_at(1),
            fingerprint: Fingerprint(fp),
            lease_expires_at: Timestamp::from_millis(u64_at(41)),
            expires_at: Timestamp::from_millis(u64_at(49)),
            response: (state == State::Completed).then(|| Bytes::copy_from_slice(&b[57..])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let r = Record {
            state: State::Completed,
            fence: 7,
            fingerprint: Fingerprint::of(&[b"x"]),
            lease_expires_at: Timestamp::from_millis(5),
            expires_at: Timestamp::from_millis(9),
            response: Some(Bytes::from_static(b"resp")),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert!(Record::decode(&[9; 60]).is_err());
    }
}
