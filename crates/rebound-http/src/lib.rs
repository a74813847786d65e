//! # rebound-http
//!
//! Retries for [reqwest] that do not make outages worse: a
//! [`reqwest_middleware`] middleware driven by rebound's retry policy, with
//! the HTTP rules for transient and permanent failures built in.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use axum::{http::StatusCode, routing::get, Router};
//! use rebound::{Backoff, RetryBudget, RetryPolicy};
//! use rebound_http::{RetryMiddleware, RetryReport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A flaky inventory service: "503, come back in a moment", then stock.
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! let app = Router::new().route(
//!     "/stock/17",
//!     get(move || {
//!         let n = seen.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             if n == 0 {
//!                 Err((StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "busy"))
//!             } else {
//!                 Ok("42")
//!             }
//!         }
//!     }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // One middleware per client: 3 attempts (the first and 2 retries),
//! // exponential backoff with full jitter, a 2 s budget of time, and a retry
//! // budget per host so an outage is not amplified.
//! let middleware = RetryMiddleware::builder()
//!     .policy(
//!         RetryPolicy::builder()
//!             .max_attempts(3)
//!             .backoff(Backoff::exponential(Duration::from_millis(10)))
//!             .attempt_timeout(Duration::from_millis(500))
//!             .total_timeout(Duration::from_secs(2)),
//!     )
//!     .budget_per_host(|| RetryBudget::ratio(0.1).build())
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(middleware)
//!     .build();
//!
//! let response = client.get(format!("http://{addr}/stock/17")).send().await?;
//! assert_eq!(RetryReport::of(&response).unwrap().attempts(), 2);
//! assert_eq!(response.text().await?, "42");
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(()) }
//! ```
//!
//! ## What it does
//!
//! 1. **Transient vs permanent** ([`HttpClassifier`]): connection
//!    errors, resets, timeouts and 408, 429, 500, 502, 503, 504 are retried;
//!    400, 401, 403, 404, 409 (unless it carries `Retry-After`), 422 and
//!    every other status are not. Overridable per status and per method.
//! 2. **The server says when** ([`retry_after`]): `Retry-After` as
//!    delta-seconds or an HTTP-date, else `RateLimit` / `RateLimit-Reset` /
//!    `X-RateLimit-Reset`. Never waits less than asked; a request longer than
//!    the policy's `max_server_delay` stops at once as
//!    [`Stop::Throttled`](rebound::Stop::Throttled), and one that would cross
//!    the total timeout stops at once as
//!    [`Stop::DeadlineExceeded`](rebound::Stop::DeadlineExceeded) — both
//!    reporting the server's delay.
//! 3. **Only idempotent requests are repeated** ([`MethodRule`]): GET, HEAD,
//!    OPTIONS, PUT, DELETE are retried; POST and PATCH only with an
//!    `Idempotency-Key` header — which the middleware can generate (a UUID
//!    sf-string, the same on every attempt) with
//!    [`generate_idempotency_keys`](RetryMiddlewareBuilder::generate_idempotency_keys).
//!    A request that may not be repeated runs under the host's policy like
//!    any other (budget, breaker, timeouts) with retries forbidden: a
//!    transient failure stops it with
//!    [`Stop::NotRetryable`](rebound::Stop::NotRetryable), and the report's
//!    `not_retried()` says why.
//! 4. **Per host** ([`hosts`]): each authority gets its own policy, budget
//!    (and breaker), created on first use, shared by clones of the client,
//!    bounded in number and evicted when idle.
//! 5. **Attempt header**: `x-attempt-count: 1`, `2`, … on each attempt
//!    (name configurable, or off).
//! 6. **Timeouts**: per-attempt and total, from the policy;
//!    `dependency_timeout_total` counts them.
//! 7. **Streaming bodies** are sent once and never retried; the
//!    [`Error`] (or the [`RetryReport`]) says why.
//! 8. **Coalescing** ([`coalesce`]): concurrent identical `GET`s (method,
//!    URI, the headers that change the answer) sent once, every caller
//!    getting a copy of the response: a thundering herd becomes one request.
//! 9. **Observable** ([`telemetry`]): the standard metric names, labelled
//!    `dependency` (the name given with
//!    [`dependency`](RetryMiddlewareBuilder::dependency), else the host) and
//!    `host` (the authority), and a `tracing` span per attempt.
//! 10. **From a policy file** (feature `config`):
//!     `RetryMiddlewareBuilder::from_policies` takes a dependency's retry
//!     policy, budget, breaker and throttle from a
//!     `rebound::config::Policies` file, each from its one place.
//!
//! ## Errors and reports
//!
//! A response — any status — comes back as `Ok(response)` with a
//! [`RetryReport`] in its extensions (attempts, why it stopped, why it was
//! not retried). A request the middleware gave up on without a response
//! comes back as [`reqwest_middleware::Error::Middleware`] holding an
//! [`Error`] that names the host, the reason and the last failure; a
//! permanent error (say, a builder error) comes back untouched.
//!
//! Both say why in a [`Fallback`](rebound::fallback::Fallback)'s terms —
//! [`RetryReport::cause`], [`Error::cause`], [`GiveUpExt::cause`] — and
//! [`error_on_give_up`](RetryMiddlewareBuilder::error_on_give_up) turns a
//! response given up on into the error, so a fallback needs no glue: see
//! [`give_up`].
//!
//! ## Design
//!
//! The middleware is a *driver*: rebound's sans-IO
//! [`RetryState`](rebound::RetryState) decides whether to start an attempt,
//! whether to retry and after how long; this crate sends, waits on the
//! policy's [`Clock`](rebound::Clock) and reports. A manual clock in the
//! policy makes every wait instant and every delay observable in tests.
//!
//! One private module uses `unsafe`: each attempt is lent the request's
//! `&mut Extensions` by reborrow, which is sound because the core's attempt
//! loop holds one attempt at a time (a promise of
//! [`AttemptIo`](rebound::retry::AttemptIo), tested in the core). The lock
//! and the boxed future per attempt that safe code needed cost about 430
//! instructions a request. Its tests run under Miri in CI.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod classify;
pub mod coalesce;
pub mod error;
pub mod give_up;
pub mod hosts;
pub mod middleware;
pub mod retry_after;
pub mod telemetry;

pub use classify::{HttpClassifier, MethodRule};
pub use error::{Error, NotRetried, RetryReport};
pub use give_up::GiveUpExt;
pub use hosts::Host;
#[cfg(feature = "config")]
pub use middleware::LiveRetryMiddleware;
pub use middleware::{
    RetryMiddleware, RetryMiddlewareBuilder, RetryNotice, DEFAULT_ATTEMPT_HEADER, IDEMPOTENCY_KEY,
};
pub use retry_after::{DelaySource, Ignored, ServerDelay};
