//! Error responses: `application/problem+json` (RFC 9457) with a stable
//! `type` and `code` per situation, or your API's own error envelope.
//!
//! Every refusal the layer makes is a [`Problem`]. By default it is written
//! as problem+json:
//!
//! ```json
//! {"type":"urn:rebound:idempotency:in-progress","code":"in-progress",
//!  "title":"Request in progress","status":409,
//!  "detail":"a request with this Idempotency-Key is still being processed; retry after the Retry-After delay"}
//! ```
//!
//! `code` is short and stable, for client SDKs to map to their own errors;
//! `type` is a URI, as RFC 9457 asks. To answer in your API's envelope
//! instead, give the builder an
//! [`error_body`](crate::IdempotencyLayerBuilder::error_body) renderer; the
//! status and `Retry-After` header stay the layer's.
//!
//! ```
//! use rebound_idempotency::{problem::ErrorBody, IdempotencyLayer, MemoryStore};
//! let layer = IdempotencyLayer::builder(MemoryStore::new())
//!     .single_tenant()
//!     .error_body(|p| {
//!         ErrorBody::json(&serde_json::json!({
//!             "error": {"type": "idempotency_error", "code": p.code(), "message": p.detail()}
//!         }))
//!     })
//!     .build()
//!     .unwrap();
//! # let _ = layer;
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

/// The stable `type` URIs of the problems this layer answers with.
pub mod types {
    /// The `Idempotency-Key` header is malformed or too long (400).
    pub const KEY_MALFORMED: &str = "urn:rebound:idempotency:key-malformed";
    /// The route requires an `Idempotency-Key` and none was sent (400).
    pub const KEY_MISSING: &str = "urn:rebound:idempotency:key-missing";
    /// No caller identity was found for the request (400).
    pub const IDENTITY_MISSING: &str = "urn:rebound:idempotency:identity-missing";
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
    /// (409, replayed with the replay header).
    pub const NOT_REPLAYABLE: &str = "urn:rebound:idempotency:response-not-replayable";
    /// The handler's response body failed while being buffered (500).
    pub const RESPONSE_FAILED: &str = "urn:rebound:idempotency:response-body-failed";
}

/// The stable `code` members of the problems this layer answers with.
pub mod codes {
    /// No `Idempotency-Key` on a route that requires one (400).
    pub const MISSING_KEY: &str = "missing-key";
    /// The `Idempotency-Key` is malformed: empty, bad quoting, not
    /// printable ASCII, or sent twice (400).
    pub const INVALID_KEY: &str = "invalid-key";
    /// The `Idempotency-Key` is longer than the configured limit (400).
    pub const KEY_TOO_LONG: &str = "key-too-long";
    /// No caller identity was found for the request (400).
    pub const IDENTITY_MISSING: &str = "identity-missing";
    /// The key was used before with a different request (422 by default).
    pub const FINGERPRINT_MISMATCH: &str = "fingerprint-mismatch";
    /// A request with this key is still being processed (409).
    pub const IN_PROGRESS: &str = "in-progress";
    /// The idempotency store is unavailable; the request was not run (503).
    pub const STORE_UNAVAILABLE: &str = "store-unavailable";
    /// The request was processed but its response was not stored (409).
    pub const NOT_REPLAYABLE: &str = "not-replayable";
    /// The request body is larger than the layer buffers (413).
    pub const BODY_TOO_LARGE: &str = "body-too-large";
    /// The request body could not be read (400).
    pub const BODY_UNREADABLE: &str = "body-unreadable";
    /// The handler's response body failed while being buffered (500).
    pub const RESPONSE_FAILED: &str = "response-failed";
}

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Which refusal a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// No key on a route that requires one (400).
    MissingKey,
    /// A malformed key (400).
    InvalidKey,
    /// A key over the length limit (400).
    KeyTooLong,
    /// No caller identity (400).
    IdentityMissing,
    /// The key was used with a different request (422 by default).
    FingerprintMismatch,
    /// The key's first request is still running (409).
    InProgress,
    /// The store failed; the request was not run (503).
    StoreUnavailable,
    /// The key's response was not stored (409).
    NotReplayable,
    /// The request body is over the cap (413).
    BodyTooLarge,
    /// The request body could not be read (400).
    BodyUnreadable,
    /// The handler's response body failed while it was buffered (500).
    ResponseFailed,
}

impl ProblemKind {
    /// The stable `code` (see [`codes`]).
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::MissingKey => codes::MISSING_KEY,
            ProblemKind::InvalidKey => codes::INVALID_KEY,
            ProblemKind::KeyTooLong => codes::KEY_TOO_LONG,
            ProblemKind::IdentityMissing => codes::IDENTITY_MISSING,
            ProblemKind::FingerprintMismatch => codes::FINGERPRINT_MISMATCH,
            ProblemKind::InProgress => codes::IN_PROGRESS,
            ProblemKind::StoreUnavailable => codes::STORE_UNAVAILABLE,
            ProblemKind::NotReplayable => codes::NOT_REPLAYABLE,
            ProblemKind::BodyTooLarge => codes::BODY_TOO_LARGE,
            ProblemKind::BodyUnreadable => codes::BODY_UNREADABLE,
            ProblemKind::ResponseFailed => codes::RESPONSE_FAILED,
        }
    }

    /// The stable `type` URI (see [`types`]).
    pub fn type_uri(self) -> &'static str {
        match self {
            ProblemKind::MissingKey => types::KEY_MISSING,
            ProblemKind::InvalidKey | ProblemKind::KeyTooLong => types::KEY_MALFORMED,
            ProblemKind::IdentityMissing => types::IDENTITY_MISSING,
            ProblemKind::FingerprintMismatch => types::MISMATCH,
            ProblemKind::InProgress => types::IN_PROGRESS,
            ProblemKind::StoreUnavailable => types::STORE_UNAVAILABLE,
            ProblemKind::NotReplayable => types::NOT_REPLAYABLE,
            ProblemKind::BodyTooLarge => types::BODY_TOO_LARGE,
            ProblemKind::BodyUnreadable => types::BODY_UNREADABLE,
            ProblemKind::ResponseFailed => types::RESPONSE_FAILED,
        }
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::MissingKey => "Idempotency-Key required",
            ProblemKind::InvalidKey => "Malformed Idempotency-Key",
            ProblemKind::KeyTooLong => "Idempotency-Key too long",
            ProblemKind::IdentityMissing => "Caller identity missing",
            ProblemKind::FingerprintMismatch => "Idempotency-Key reused",
            ProblemKind::InProgress => "Request in progress",
            ProblemKind::StoreUnavailable => "Idempotency store unavailable",
            ProblemKind::NotReplayable => "Response not replayable",
            ProblemKind::BodyTooLarge => "Request body too large",
            ProblemKind::BodyUnreadable => "Request body unreadable",
            ProblemKind::ResponseFailed => "Response failed",
        }
    }
}

/// One refusal: what it is, its status, a human `detail`, and the
/// `Retry-After` delay when the client may try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    kind: ProblemKind,
    status: StatusCode,
    detail: String,
    retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Which refusal this is.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The stable `code`, e.g. `"in-progress"`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The stable `type` URI.
    pub fn type_uri(&self) -> &'static str {
        self.kind.type_uri()
    }

    /// A short human title.
    pub fn title(&self) -> &'static str {
        self.kind.title()
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What happened, in a sentence.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The `Retry-After` delay in seconds, when there is one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
    }

    /// The default body: problem+json with `type`, `code`, `title`,
    /// `status` and `detail`.
    pub fn to_problem_json(&self) -> ErrorBody {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            code: &'a str,
            title: &'a str,
            status: u16,
            detail: &'a str,
        }
        let body = serde_json::to_vec(&Json {
            kind: self.type_uri(),
            code: self.code(),
            title: self.title(),
            status: self.status.as_u16(),
            detail: &self.detail,
        })
        .unwrap_or_default();
        ErrorBody {
            content_type: HeaderValue::from_static(PROBLEM_JSON),
            body: Bytes::from(body),
        }
    }
}

/// The body of an error response: its media type and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    content_type: HeaderValue,
    body: Bytes,
}

impl ErrorBody {
    /// A body with the given media type.
    pub fn new(content_type: HeaderValue, body: impl Into<Bytes>) -> Self {
        ErrorBody {
            content_type,
            body: body.into(),
        }
    }

    /// `value` serialized as `application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        ErrorBody {
            content_type: HeaderValue::from_static("application/json"),
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    /// The media type.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// Renders problems as error bodies: problem+json by default, or the
/// closure given to [`error_body`](crate::IdempotencyLayerBuilder::error_body).
#[derive(Clone, Default)]
pub(crate) struct Renderer {
    custom: Option<RenderFn>,
}

type RenderFn = Arc<dyn Fn(&Problem) -> ErrorBody + Send + Sync>;

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.custom.is_some() {
            "Renderer::Custom"
        } else {
            "Renderer::ProblemJson"
        })
    }
}

impl Renderer {
    pub(crate) fn custom(f: impl Fn(&Problem) -> ErrorBody + Send + Sync + 'static) -> Self {
        Renderer {
            custom: Some(Arc::new(f)),
        }
    }

    pub(crate) fn body(&self, problem: &Problem) -> ErrorBody {
        match &self.custom {
            Some(f) => f(problem),
            None => problem.to_problem_json(),
        }
    }

    /// The response for `problem`: its status, the rendered body, and
    /// `Retry-After` when it has one.
    pub(crate) fn response(&self, problem: &Problem) -> Response<Bytes> {
        let body = self.body(problem);
        let mut res = Response::new(body.body);
        *res.status_mut() = problem.status;
        res.headers_mut().insert(CONTENT_TYPE, body.content_type);
        if let Some(secs) = problem.retry_after {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
