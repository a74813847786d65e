//! The layer's choices, as small enums: which responses are stored, what
//! happens to one too large to store, to a client that hangs up, and when
//! the store fails.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// Which handler responses are stored for replay.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum StorePolicy {
    /// 2xx, 3xx and the deterministic 4xx: every 4xx except 401, 403, 408,
    /// 409, 423, 425 and 429, whose answer may change on retry. 5xx are
    /// never stored (the claim is released so a retry runs again).
    Deterministic,
    /// Every response, 5xx included (Stripe's behaviour). Panics, handler
    /// errors and (with [`OnDisconnect::Cancel`]) cancellations still
    /// release the claim.
    Everything,
    /// Your own rule.
    Custom(fn(StatusCode) -> bool),
}

impl fmt::Debug for StorePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorePolicy::Deterministic => f.write_str("Deterministic"),
            StorePolicy::Everything => f.write_str("Everything"),
            StorePolicy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl StorePolicy {
    /// Whether a response with `status` is stored.
    ///
    /// ```
    /// use http::StatusCode;
    /// use rebound_idempotency::StorePolicy;
    /// assert!(StorePolicy::Deterministic.stores(StatusCode::CREATED));
    /// assert!(StorePolicy::Deterministic.stores(StatusCode::UNPROCESSABLE_ENTITY));
    /// assert!(!StorePolicy::Deterministic.stores(StatusCode::CONFLICT));
    /// assert!(!StorePolicy::Deterministic.stores(StatusCode::TOO_MANY_REQUESTS));
    /// assert!(!StorePolicy::Deterministic.stores(StatusCode::BAD_GATEWAY));
    /// assert!(StorePolicy::Everything.stores(StatusCode::BAD_GATEWAY));
    /// ```
    pub fn stores(&self, status: StatusCode) -> bool {
        match self {
            StorePolicy::Deterministic => match status.as_u16() {
                200..=399 => true,
                401 | 403 | 408 | 409 | 423 | 425 | 429 => false,
                400..=499 => true,
                _ => false,
            },
            StorePolicy::Everything => true,
            StorePolicy::Custom(f) => f(status),
        }
    }
}

/// What to do with a response whose body is larger than the response cap
/// ([`max_response_body`](crate::IdempotencyLayerBuilder::max_response_body)),
/// including a streaming body that grows past it.
///
/// The first client always gets the whole response. What differs is what a
/// retry with the same key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unstorable {
    /// Store the status and the replayed headers without the body. A retry
    /// gets them back with an empty body, the replay header, and the
    /// body-omitted header
    /// ([`body_omitted_header`](crate::IdempotencyLayerBuilder::body_omitted_header),
    /// `Idempotent-Body-Omitted: true` by default). The handler never runs
    /// twice. The default.
    StoreWithoutBody,
    /// Mark the key completed-but-not-replayable: a retry gets 409 with the
    /// code [`not-replayable`](crate::problem::codes::NOT_REPLAYABLE). The
    /// handler never runs twice.
    MarkNotReplayable,
    /// Release the key, so a retry runs the handler again. Only for
    /// handlers that are safe to run twice.
    Release,
}

/// What to do when the store fails (down, timing out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailMode {
    /// Refuse with 503 and `Retry-After`; the request does not run.
    Closed,
    /// Run the request without protection (logged and counted).
    Open,
}

/// What happens to a handler whose client hangs up (or whose response
/// future is dropped by a timeout layer above this one) after the request
/// claimed its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnDisconnect {
    /// The handler keeps running on its own task until it returns, and its
    /// response is stored (and counted) as if the client were still there:
    /// a retry gets 409 while it runs and the stored response afterwards.
    /// The default: a write that was started is never cut off halfway and
    /// never run again.
    RunToCompletion,
    /// The handler's future is dropped with the connection (hyper's
    /// behaviour without this layer) and the claim is released, so a retry
    /// runs the handler again, told by
    /// [`previous_attempts`](crate::IdempotencyContext::previous_attempts)
    /// that an earlier attempt may have done part of the work. For handlers
    /// that want cancellation and are safe to interrupt and re-run.
    Cancel,
}

/// Holding duplicates until the original finishes, instead of answering 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitMode {
    /// The longest a duplicate waits before it gets 409.
    pub max_wait: Duration,
    /// How often the store is asked again while waiting.
    pub poll_every: Duration,
}
