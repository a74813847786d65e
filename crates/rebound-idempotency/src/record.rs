//! What a store keeps per key, and what a claim answers.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;

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

/// A response as stored for replay: status, allow-listed headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower case) and raw values, in order.
    pub headers: Vec<(String, Bytes)>,
    /// The full body.
    pub body: Bytes,
}

/// Why stored bytes could not be read back as a [`StoredResponse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored response is corrupt: {0}")]
pub struct DecodeError(&'static str);

const FORMAT_V1: u8 = 1;

impl StoredResponse {
    /// Encode to the compact binary form every store keeps.
    ///
    /// ```
    /// use rebound_idempotency::StoredResponse;
    /// let r = StoredResponse { status: 201, headers: vec![("content-type".into(), "text/plain".into())], body: "ok".into() };
    /// assert_eq!(StoredResponse::decode(&r.encode()).unwrap(), r);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let hlen: usize = self
            .headers
            .iter()
            .map(|(n, v)| 6 + n.len() + v.len())
            .sum();
        let mut out = Vec::with_capacity(1 + 2 + 2 + hlen + 4 + self.body.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&(self.headers.len().min(u16::MAX as usize) as u16).to_be_bytes());
        for (name, value) in self.headers.iter().take(u16::MAX as usize) {
            out.extend_from_slice(&(name.len().min(u16::MAX as usize) as u16).to_be_bytes());
            out.extend_from_slice(&name.as_bytes()[..name.len().min(u16::MAX as usize)]);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Decode what [`encode`](Self::encode) wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        if r.take(1)? != [FORMAT_V1] {
            return Err(DecodeError("unknown format version"));
        }
        let status = r.u16()?;
        let n = r.u16()? as usize;
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let nl = r.u16()? as usize;
            let name = std::str::from_utf8(r.take(nl)?)
                .map_err(|_| DecodeError("header name is not UTF-8"))?
                .to_owned();
            let vl = r.u32()? as usize;
            headers.push((name, Bytes::copy_from_slice(r.take(vl)?)));
        }
        let bl = r.u32()? as usize;
        let body = Bytes::copy_from_slice(r.take(bl)?);
        if !r.0.is_empty() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(StoredResponse {
            status,
            headers,
            body,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
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
    /// The key completed with this response (same fingerprint).
    Completed(StoredResponse),
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
    pub fn outcome_when_held(
        &self,
        req: &ClaimRequest<'_>,
    ) -> Result<ClaimOutcome, crate::StoreError> {
        if self.fingerprint != req.fingerprint {
            return Ok(ClaimOutcome::Mismatch);
        }
        match self.state {
            State::InProgress => Ok(ClaimOutcome::InProgress {
                retry_after: self.lease_expires_at.saturating_duration_since(req.now),
            }),
            State::Completed => {
                let bytes = self.response.as_deref().unwrap_or_default();
                Ok(ClaimOutcome::Completed(StoredResponse::decode(bytes)?))
            }
            State::Released => unreachable_released(),
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
            return Err(DecodeError("record truncated"));
        }
        let state = match b[0] {
            0 => State::InProgress,
            1 => State::Completed,
            2 => State::Released,
            _ => return Err(DecodeError("unknown record state")),
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

// A released record is always claimable, so `outcome_when_held` never sees
// one; answer conservatively rather than panic if that ever changes.
fn unreachable_released() -> Result<ClaimOutcome, crate::StoreError> {
    Ok(ClaimOutcome::InProgress {
        retry_after: Duration::from_millis(1),
    })
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

    #[test]
    fn corrupt_response_is_an_error_not_a_panic() {
        let r = StoredResponse {
            status: 200,
            headers: vec![("a".into(), Bytes::from_static(b"b"))],
            body: Bytes::from_static(b"hello"),
        };
        let enc = r.encode();
        for cut in 0..enc.len() {
            assert!(StoredResponse::decode(&enc[..cut]).is_err());
        }
    }
}
