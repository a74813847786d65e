//! Server-side `Idempotency-Key` handling for tower and axum: a retried
//! write returns the stored result instead of running twice.
//!
//! ```
//! use axum::{body::Body, http::Request, routing::post, Router};
//! use rebound_idempotency::{IdempotencyLayer, MemoryStore};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let reservations = Arc::new(AtomicU32::new(0));
//! let counter = reservations.clone();
//! let app = Router::new()
//!     .route(
//!         "/inventory/reservations",
//!         post(move |body: String| async move {
//!             let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
//!             (axum::http::StatusCode::CREATED, format!("reservation {n} for {body}"))
//!         }),
//!     )
//!     .layer(
//!         IdempotencyLayer::builder(MemoryStore::new())
//!             .single_tenant() // one trusted client; see `identity` for per-caller keys
//!             .build()
//!             .unwrap(),
//!     );
//!
//! let request = || {
//!     Request::post("/inventory/reservations")
//!         .header("Idempotency-Key", "order_123_line_1_reservation")
//!         .body(Body::from("sku-42 x1"))
//!         .unwrap()
//! };
//! let first = app.clone().oneshot(request()).await.unwrap();
//! assert_eq!(first.status(), 201);
//! assert!(first.headers().get("idempotent-replayed").is_none());
//!
//! // The client timed out and retries with the same key: same answer, no second reservation.
//! let retry = app.clone().oneshot(request()).await.unwrap();
//! assert_eq!(retry.status(), 201);
//! assert_eq!(retry.headers()["idempotent-replayed"], "true");
//! let body = axum::body::to_bytes(retry.into_body(), 1024).await.unwrap();
//! assert_eq!(&body[..], b"reservation 1 for sku-42 x1");
//! assert_eq!(reservations.load(Ordering::SeqCst), 1);
//!
//! // Serve it for real with `axum::serve(listener, app)`.
//! # }
//! ```
//!
//! # What it does
//!
//! For each `POST`/`PATCH` (configurable) carrying an `Idempotency-Key`
//! (an RFC 9651 sf-string, or a bare token in lenient mode), the layer
//! buffers the body, fingerprints method, path, query and body, and makes
//! **one atomic claim** in a [`Store`] under a key scoped by caller identity
//! ([`identity`](IdempotencyLayerBuilder::identity), or explicitly
//! [`single_tenant`](IdempotencyLayerBuilder::single_tenant)), method and
//! route. Then:
//!
//! * first time: the handler runs under a **lease** that is renewed while it
//!   runs; its response is stored (2xx, 3xx and deterministic 4xx by
//!   default) with a **fencing token**, so a holder whose lease was taken
//!   over cannot overwrite the new owner's record;
//! * the client hangs up: the handler runs to its end anyway and its
//!   response is stored ([`OnDisconnect`]);
//! * completed: the stored status, replay headers and body are replayed with
//!   `Idempotent-Replayed: true` (a body over the cap is omitted and the
//!   replay says so, see [`Unstorable`]);
//! * still running: `409` with a `Retry-After` estimated from the route's
//!   recent handler durations (or wait, if configured);
//! * different request with the same key: `422`, the record untouched;
//! * 5xx, handler error or panic: the claim is released so a retry runs again;
//! * saving the response fails: retried in the background while the lease
//!   is renewed;
//! * store down: `503` (fail closed) unless configured to fail open.
//!
//! Errors are `application/problem+json` with a stable `type` and `code`
//! ([`problem`]), or your API's own envelope. The README has the full wire
//! behaviour table, and what each store guarantees across restarts.
//!
//! The same stores, leases and fencing serve message consumers and
//! background jobs through [`once::Once`]: run a closure once per
//! `(scope, key)`, get the stored value on repeats.
//!
//! # Stores
//!
//! | store | feature | for |
//! |---|---|---|
//! | [`MemoryStore`] | always | tests, one process |
//! | [`RedbStore`] | `redb` (default) | one host, durable file (write-ahead log, group commit), no server |
//! | [`RedisStore`] | `redis` | a fleet; one Lua script per operation, Cluster-safe keys |
//! | [`PostgresStore`] | `postgres` | a fleet; `INSERT … ON CONFLICT`, fenced `UPDATE` |
//!
//! All of them pass the same conformance suite (`tests/conformance.rs`).
//! Time comes from an injected [`rebound::Clock`] (its wall time for stored
//! timestamps); a manual one moves it by hand in tests.
//!
// Stores behind a feature that is off: the table links to their docs.rs
// pages instead of leaving the link unresolved.
#![cfg_attr(
    not(feature = "redis"),
    doc = "[`RedisStore`]: https://docs.rs/rebound-idempotency/latest/rebound_idempotency/struct.RedisStore.html"
)]
#![cfg_attr(
    not(feature = "postgres"),
    doc = "[`PostgresStore`]: https://docs.rs/rebound-idempotency/latest/rebound_idempotency/struct.PostgresStore.html"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod claim;
mod config;
mod detach;
mod estimate;
mod event;
mod key;
mod layer;
pub mod once;
mod policy;
pub mod problem;
mod record;
mod response;
mod run;
pub mod store;
mod time;

pub use body::ResponseBody;
pub use config::{
    IdempotencyLayerBuilder, DEFAULT_BODY_OMITTED_HEADER, DEFAULT_REPLAYED_HEADER,
    DEFAULT_REPLAY_HEADERS, MAX_STORED_BODY,
};
pub use event::{Event, IdempotencyContext, RequestOutcome};
pub use key::{IdempotencyKey, KeyError, KeyParser, DEFAULT_MAX_KEY_LEN, IDEMPOTENCY_KEY};
pub use layer::{IdempotencyLayer, IdempotencyService};
pub use policy::{FailMode, OnDisconnect, StorePolicy, Unstorable, WaitMode};
pub use record::{ClaimOutcome, ClaimRequest, DecodeError, Fingerprint};
pub use response::StoredResponse;
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresStore;
#[cfg(feature = "redb")]
pub use store::redb::{RedbOptions, RedbStore};
#[cfg(feature = "redis")]
pub use store::redis::RedisStore;
pub use store::{spawn_sweeper, BoxError, Store, StoreError};
pub use time::Timestamp;
