//! Error responses: `application/problem+json` (RFC 9457) with a stable
//! `type` per situation.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;

/// The stable `type` URIs of the problems this layer answers with.
pub mod types {
    /// The `Idempotency-Key` header is malformed (400).
    pub const KEY_MALFORMED: &str = "urn:rebound:idempotency:key-malformed";
    /// The route requires an `Idempotency-Key` and none was sent (400).
    pub const KEY_MISSING: &str = "urn:rebound:idempotency:key-missing";
    /// A request with this key is still being processed (409).
    pub const IN_PROGRESS: &str = "urn:rebound:idempotency:in-progress";
    /// The key was used with a different request (422 by default).
    pub const MISMATCH: &str = "urn:rebound:idempotency:key-reused-with-different-request";
    /// The request body is larger than the layer buffers (413).
    pub const BODY_TOO_LARGE: &str = "urn:rebound:idempotency:body-too-large";
    /// The request body could not be read (400).
    pub const BODY_UNREADABLE: &str = "urn:rebound:idempotency:body-unreadable";
    /// The idempotency store is unavailable; the request was not run (503).
    pub const STORE_UNAVAILABLE: &str = "urn:rebound:idempotency:store-unavailable";
    /// The original response could not be stored, so it cannot be replayed
    /// (409, replayed with `Idempotent-Replayed: true`).
    pub const NOT_REPLAYABLE: &str = "urn:rebound:idempotency:response-not-replayable";
    /// The handler's response body failed while being buffered (500).
    pub const RESPONSE_FAILED: &str = "urn:rebound:idempotency:response-body-failed";
}

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(serde::Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

/// The JSON body of a problem.
pub(crate) fn body(kind: &str, title: &str, status: StatusCode, detail: &str) -> Bytes {
    let p = Problem {
        kind,
        title,
        status: status.as_u16(),
        detail,
    };
    Bytes::from(serde_json::to_vec(&p).unwrap_or_default())
}

/// A problem response.
pub(crate) fn response(
    kind: &str,
    title: &str,
    status: StatusCode,
    detail: &str,
    retry_after_secs: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body(kind, title, status, detail)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(secs) = retry_after_secs {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}
