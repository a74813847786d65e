//! A response as the HTTP layer stores it for replay.

use bytes::Bytes;

use crate::record::DecodeError;

/// A response as stored for replay: status, allow-listed headers, body.
///
/// ```
/// use rebound_idempotency::StoredResponse;
/// let r = StoredResponse::new(201)
///     .with_header("content-type", "text/plain")
///     .with_body("reserved");
/// assert_eq!(StoredResponse::decode(&r.encode()).unwrap(), r);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower case) and raw values, in order.
    pub headers: Vec<(String, Bytes)>,
    /// The full body, or empty when [`body_omitted`](Self::body_omitted).
    pub body: Bytes,
    /// The body was larger than the layer stores, so only the status and
    /// headers were kept; a replay says so in a header.
    pub body_omitted: bool,
}

const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const FLAG_BODY_OMITTED: u8 = 1;

impl StoredResponse {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        StoredResponse {
            status,
            ..Default::default()
        }
    }

    /// This response with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// This response with `body`.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Encode to the compact binary form the stores keep.
    pub fn encode(&self) -> Vec<u8> {
        let hlen: usize = self
            .headers
            .iter()
            .map(|(n, v)| 6 + n.len() + v.len())
            .sum();
        let mut out = Vec::with_capacity(2 + 2 + 2 + hlen + 4 + self.body.len());
        out.push(FORMAT_V2);
        out.push(if self.body_omitted {
            FLAG_BODY_OMITTED
        } else {
            0
        });
        out.extend_from_slice(&self.status.to_be_bytes());
        let headers = self.headers.len().min(u16::MAX as usize);
        out.extend_from_slice(&(headers as u16).to_be_bytes());
        for (name, value) in self.headers.iter().take(headers) {
            let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name);
            let value = &value[..value.len().min(u32::MAX as usize)];
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        let body = &self.body[..self.body.len().min(u32::MAX as usize)];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Decode what [`encode`](Self::encode) wrote (this version's format or
    /// the previous one).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let body_omitted = match r.take(1)? {
            [FORMAT_V1] => false,
            [FORMAT_V2] => r.take(1)?[0] & FLAG_BODY_OMITTED != 0,
            _ => return Err(DecodeError::new("unknown stored response format")),
        };
        let status = r.u16()?;
        let n = r.u16()? as usize;
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let nl = r.u16()? as usize;
            let name = std::str::from_utf8(r.take(nl)?)
                .map_err(|_| DecodeError::new("header name is not UTF-8"))?
                .to_owned();
            let vl = r.u32()? as usize;
            headers.push((name, Bytes::copy_from_slice(r.take(vl)?)));
        }
        let bl = r.u32()? as usize;
        let body = Bytes::copy_from_slice(r.take(bl)?);
        if !r.0.is_empty() {
            return Err(DecodeError::new("trailing bytes after the stored response"));
        }
        Ok(StoredResponse {
            status,
            headers,
            body,
            body_omitted,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::new("stored response truncated"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_response_is_an_error_not_a_panic() {
        let r = StoredResponse::new(200)
            .with_header("a", "b")
            .with_body("hello");
        let enc = r.encode();
        for cut in 0..enc.len() {
            assert!(StoredResponse::decode(&enc[..cut]).is_err());
        }
        assert!(StoredResponse::decode(&[9, 0, 0]).is_err());
    }

    #[test]
    fn the_previous_format_still_decodes() {
        // Version 1: no flags byte.
        let mut v1 = vec![1, 0, 201, 0, 1, 0, 1, b'a', 0, 0, 0, 1, b'b'];
        v1.extend_from_slice(&[0, 0, 0, 2, b'o', b'k']);
        let r = StoredResponse::decode(&v1).unwrap();
        assert_eq!(
            r,
            StoredResponse::new(201)
                .with_header("a", "b")
                .with_body("ok")
        );
    }

    #[test]
    fn an_omitted_body_round_trips() {
        let r = StoredResponse {
            body_omitted: true,
            ..StoredResponse::new(201).with_header("location", "/orders/1")
        };
        let back = StoredResponse::decode(&r.encode()).unwrap();
        assert!(back.body_omitted);
        assert_eq!(back, r);
    }
}
