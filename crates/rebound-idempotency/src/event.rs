//! What the layer tells handlers and observers.

use crate::key::IdempotencyKey;

/// Inserted into the request's extensions when the layer runs the handler
/// under a claim, so the handler knows the key and whether an earlier
/// attempt with this key started (and failed, was released, or crashed).
///
/// ```
/// use rebound_idempotency::IdempotencyContext;
/// async fn handler(ctx: Option<axum::Extension<IdempotencyContext>>) -> String {
///     match ctx {
///         Some(ctx) if ctx.previous_attempts() > 0 => "retry: check for partial work".into(),
///         Some(_) => "first attempt".into(),
///         None => "no idempotency key".into(),
///     }
/// }
/// # let _ = handler;
/// ```
#[derive(Debug, Clone)]
pub struct IdempotencyContext {
    pub(crate) key: IdempotencyKey,
    pub(crate) fence: u64,
}

impl IdempotencyContext {
    /// The client's key.
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }

    /// The fencing token of this claim.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// How many earlier claims of this key are on record: zero on a first
    /// attempt; more when an earlier claim was released after a failure,
    /// taken over after its lease ran out (it may have done part of the
    /// work), or completed and then expired after its retention. Replays
    /// never reach the handler.
    pub fn previous_attempts(&self) -> u64 {
        self.fence.saturating_sub(1)
    }
}

/// What happened to one request, reported to [`tracing`] and to the
/// layer's [`on_event`](crate::IdempotencyLayerBuilder::on_event) hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The method is not covered, or no key was sent and none is required:
    /// passed through unprotected, by configuration.
    Bypassed,
    /// The key was missing on a route that requires one (400).
    KeyMissing,
    /// The key was malformed (400).
    KeyMalformed,
    /// The request body was over the cap (413) or unreadable (400).
    BodyRejected,
    /// The handler ran and its response was stored.
    Stored,
    /// The handler ran; its response was not stored (status not stored by
    /// policy, handler error, panic, or cancellation) and the claim was released.
    Released,
    /// The handler ran; the response was too large or streaming, and was
    /// passed through unstored.
    PassedThroughUnstored,
    /// A stored response was replayed.
    Replayed,
    /// Another request holds the key (409).
    InProgress,
    /// Another request holds the key; this duplicate waits for it (wait
    /// mode). Reported once per request, when the wait starts.
    Waiting,
    /// The key was reused with a different request.
    Mismatch,
    /// The store failed and the layer refused the request (503).
    StoreUnavailable,
    /// The store failed and the layer ran the request unprotected (fail open).
    FailedOpen,
    /// The handler finished but its claim had been taken over; its
    /// completion was rejected and nothing was stored.
    FenceRejected,
}

impl Outcome {
    /// A short snake_case name, used as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Bypassed => "bypassed",
            Outcome::KeyMissing => "key_missing",
            Outcome::KeyMalformed => "key_malformed",
            Outcome::BodyRejected => "body_rejected",
            Outcome::Stored => "stored",
            Outcome::Released => "released",
            Outcome::PassedThroughUnstored => "passed_through_unstored",
            Outcome::Replayed => "replayed",
            Outcome::InProgress => "in_progress",
            Outcome::Waiting => "waiting",
            Outcome::Mismatch => "mismatch",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::FailedOpen => "failed_open",
            Outcome::FenceRejected => "fence_rejected",
        }
    }
}

/// One event: an outcome and the request it was about.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// What happened.
    pub outcome: Outcome,
    /// The client's key, when one was parsed.
    pub key: Option<&'a str>,
    /// The request method.
    pub method: &'a http::Method,
    /// The request path.
    pub path: &'a str,
}
