//! What the layer tells handlers and observers.

use crate::config::Config;
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

/// What happened to one request, reported to [`tracing`], counted in
/// `idempotency_requests_total{dependency, outcome}` (label: [`as_str`](Self::as_str))
/// and passed to the layer's [`on_event`](crate::IdempotencyLayerBuilder::on_event) hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// The method is not covered, or no key was sent and none is required:
    /// passed through unprotected, by configuration.
    Bypassed,
    /// The key was missing on a route that requires one (400).
    KeyMissing,
    /// The key was malformed (400).
    KeyMalformed,
    /// The identity extractor found no caller identity (400); the request
    /// was not run.
    IdentityMissing,
    /// The request body was over the cap (413) or unreadable (400).
    BodyRejected,
    /// The handler ran and its response was stored.
    Stored,
    /// The handler ran and only its status and headers were stored: the
    /// body was over the response cap. Replays say the body was omitted.
    StoredWithoutBody,
    /// The handler ran; its response was too large to store and the key
    /// was marked not replayable (a retry gets 409).
    MarkedNotReplayable,
    /// The handler ran; its response was not stored (status not stored by
    /// policy, handler error, panic, cancellation, or a response too large
    /// under [`Unstorable::Release`](crate::Unstorable::Release)) and the
    /// claim was released, so a retry runs the handler again.
    Released,
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
    /// The handler ran, but storing its response failed; the response went
    /// to the client and the store is tried again in the background while
    /// the lease is renewed. Followed by `Stored` or `CompletionAbandoned`.
    CompletionRetrying,
    /// Storing the response kept failing for the configured time; the lease
    /// will run out and a retry after it runs the handler again.
    CompletionAbandoned,
}

impl RequestOutcome {
    /// A short snake_case name, used as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Bypassed => "bypassed",
            RequestOutcome::KeyMissing => "key_missing",
            RequestOutcome::KeyMalformed => "key_malformed",
            RequestOutcome::IdentityMissing => "identity_missing",
            RequestOutcome::BodyRejected => "body_rejected",
            RequestOutcome::Stored => "stored",
            RequestOutcome::StoredWithoutBody => "stored_without_body",
            RequestOutcome::MarkedNotReplayable => "marked_not_replayable",
            RequestOutcome::Released => "released",
            RequestOutcome::Replayed => "replayed",
            RequestOutcome::InProgress => "in_progress",
            RequestOutcome::Waiting => "waiting",
            RequestOutcome::Mismatch => "mismatch",
            RequestOutcome::StoreUnavailable => "store_unavailable",
            RequestOutcome::FailedOpen => "failed_open",
            RequestOutcome::FenceRejected => "fence_rejected",
            RequestOutcome::CompletionRetrying => "completion_retrying",
            RequestOutcome::CompletionAbandoned => "completion_abandoned",
        }
    }

    /// Whether this outcome is a key seen again: counted in
    /// `idempotency_key_reused_total` as well.
    pub fn is_key_reuse(self) -> bool {
        matches!(
            self,
            RequestOutcome::Replayed | RequestOutcome::InProgress | RequestOutcome::Mismatch
        )
    }
}

/// One event: an outcome and the request it was about.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// What happened.
    pub outcome: RequestOutcome,
    /// The client's key, when one was parsed.
    pub key: Option<&'a str>,
    /// The request method.
    pub method: &'a http::Method,
    /// The request path.
    pub path: &'a str,
}

/// What a request is about, for events.
#[derive(Clone)]
pub(crate) struct Subject {
    pub method: http::Method,
    pub uri: http::Uri,
    pub key: Option<IdempotencyKey>,
}

/// Report what happened to a request: a tracing event, the metrics, the
/// hook.
pub(crate) fn emit(cfg: &Config, outcome: RequestOutcome, subject: &Subject) {
    let name = &cfg.claims.name;
    let key = subject.key.as_ref().map(IdempotencyKey::as_str);
    let path = subject.uri.path();
    match outcome {
        RequestOutcome::StoreUnavailable
        | RequestOutcome::FailedOpen
        | RequestOutcome::FenceRejected
        | RequestOutcome::CompletionRetrying
        | RequestOutcome::CompletionAbandoned => {
            tracing::warn!(layer = &**name, outcome = outcome.as_str(), key, method = %subject.method, path, "idempotency")
        }
        // A key seen again (a retry answered from the store, a duplicate
        // still running, a key reused for another request) or refused:
        // what operators look for, visible at INFO.
        o if o.is_key_reuse()
            || matches!(
                o,
                RequestOutcome::KeyMalformed
                    | RequestOutcome::KeyMissing
                    | RequestOutcome::IdentityMissing
                    | RequestOutcome::BodyRejected
            ) =>
        {
            tracing::info!(layer = &**name, outcome = outcome.as_str(), key, method = %subject.method, path, "idempotency")
        }
        RequestOutcome::Bypassed => {
            tracing::trace!(layer = &**name, outcome = outcome.as_str(), method = %subject.method, path, "idempotency")
        }
        _ => {
            tracing::debug!(layer = &**name, outcome = outcome.as_str(), key, method = %subject.method, path, "idempotency")
        }
    }
    if outcome != RequestOutcome::Bypassed {
        metrics::counter!("idempotency_requests_total", "dependency" => name.clone(), "outcome" => outcome.as_str()).increment(1);
    }
    if outcome.is_key_reuse() {
        metrics::counter!("idempotency_key_reused_total", "dependency" => name.clone(), "outcome" => outcome.as_str()).increment(1);
    }
    if let Some(hook) = &cfg.on_event {
        hook(&Event {
            outcome,
            key,
            method: &subject.method,
            path,
        });
    }
}
