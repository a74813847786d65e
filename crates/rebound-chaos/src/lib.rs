//! # rebound-chaos
//!
//! A fault-injecting HTTP proxy for tests, whatever language the client is
//! written in: put it between a client and the service it calls, and it
//! adds latency, answers 5xx, 429 or 503 with `Retry-After`, resets
//! connections, **drops the answer after the service ran the request**,
//! trickles bodies or never answers — at the rates, on the requests and at
//! the moments you choose. From the command line it is `rebound chaos`;
//! here it is a library to embed in your own Rust tests.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//!
//! use axum::{routing::post, Router};
//! use rebound_chaos::{ChaosProxy, Fault, FaultKind, FaultSet};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The service under test: it reserves stock, and counts reservations.
//! let reserved = Arc::new(AtomicU32::new(0));
//! let counter = reserved.clone();
//! let app = Router::new().route(
//!     "/reserve",
//!     post(move || async move { counter.fetch_add(1, Ordering::SeqCst); "reserved" }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let service = format!("http://{}", listener.local_addr()?);
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // The proxy in front of it: the first reservation runs, but its answer
//! // never reaches the client — the case idempotency keys exist for.
//! let proxy = ChaosProxy::builder(service)
//!     .faults(FaultSet::new([Fault::drop_response().with_times(1)])?)
//!     .seed(7)
//!     .start()
//!     .await?;
//!
//! let client = reqwest::Client::new();
//! let lost = client.post(format!("{}/reserve", proxy.url())).send().await;
//! assert!(lost.is_err()); // the client saw its connection reset...
//! assert_eq!(reserved.load(Ordering::SeqCst), 1); // ...after the service reserved.
//!
//! let retried = client.post(format!("{}/reserve", proxy.url())).send().await?;
//! assert_eq!(retried.text().await?, "reserved");
//! assert_eq!(reserved.load(Ordering::SeqCst), 2); // a naive retry reserved twice
//! assert_eq!(proxy.counts().injected(FaultKind::DropResponse), 1);
//! # Ok(()) }
//! ```
//!
//! ## Faults
//!
//! | kind | does | fields (besides `rate`, `times`, `methods`, `path_prefix`) |
//! |---|---|---|
//! | `latency` | waits before forwarding (`at = "request"`), or after the upstream answered (`at = "response"`) | `delay`, or `distribution` = `uniform` (`min`, `max`), `normal` (`mean`, `std_dev`, `max`), `lognormal` (`median`, `sigma`, `max`) — see [`Latency`] |
//! | `error` | answers a 5xx itself; the upstream never sees the request | `status` (500–599, default 500) |
//! | `throttle` | answers 429 or 503 with `Retry-After`; the upstream never sees the request | `status` (429 or 503, default 429), `retry_after` (whole seconds), `retry_after_format` (`seconds` or `http-date`) |
//! | `reset` | resets the connection (TCP RST) before the upstream sees the request | — |
//! | `drop_response` | forwards the request, lets the upstream answer in full, then resets the connection instead of answering | — |
//! | `slow_body` | passes the upstream's body on `chunk_bytes` at a time, `interval` apart | `chunk_bytes` (default 16), `interval` (default 100ms) |
//! | `blackhole` | accepts the request and never answers | — |
//!
//! Every fault hits a request in its [`Scope`] (methods, path prefix) with
//! probability `rate` (default 1), at most `times` times if given. How
//! several combine is in [`FaultSet`]. The same faults are written three
//! ways: in Rust ([`Fault`]), as a `--fault` spec (`error status=503
//! rate=0.1`, also the text form of the control API), and as a table in a
//! timeline file or a JSON object.
//!
//! ## Time and randomness
//!
//! Every wait — added latency, the pauses of a slow body, the timeline's
//! phases — is a timer on the proxy's [`Clock`](rebound::Clock): by default
//! tokio's (so `#[tokio::test(start_paused = true)]` drives it), or a manual
//! clock, whose timers fire only when the test moves it
//! (`time.advance(...)`, `time.set_elapsed(...)`) and never move it
//! themselves. Tests that send requests over sockets are best on a manual
//! clock: tokio's paused clock jumps to the next timer whenever the runtime
//! waits on I/O, so it moves while bytes are in flight. Rates and latency draws
//! come from a seeded [`RandomSource`](rebound::RandomSource)
//! ([`ChaosProxyBuilder::seed`]), one generator per request in arrival
//! order, so a seed repeats a run's draws.
//!
//! ## Timelines and the control API
//!
//! A [`Timeline`] changes the faults over time: 0–10 s healthy, 10–30 s
//! slow, 30–60 s outage, then recovery ([`EXAMPLE_TIMELINE`], shipped as
//! `examples/timeline.toml`). The [`Control`] handle — and the HTTP
//! [`control_api`] on its own address — reads and changes the faults while
//! the proxy runs, and serves its [`Counts`] as Prometheus text.
//!
//! ## What the proxy changes, and what it does not
//!
//! * Methods, paths, queries, status codes, headers and bodies pass as they
//!   are, streamed in both directions (a body is never held whole: a slow
//!   body holds one upstream frame, a dropped response is read and
//!   discarded).
//! * Hop-by-hop headers (`Connection` and those it names, `Keep-Alive`,
//!   `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
//!   `Trailer`, `Transfer-Encoding`, `Upgrade`) are removed in both
//!   directions; `Host` is set to the upstream's; `Via: 1.1 rebound-chaos`
//!   is appended to requests and responses (RFC 9110 §7.6.3).
//! * Responses the proxy made or changed carry `x-rebound-chaos` naming the
//!   faults (`throttle`, `latency=250ms, slow_body`), and a text body
//!   saying what was injected.
//! * An upstream that cannot be reached or fails is answered `502 Bad
//!   Gateway` with the reason in the body and `x-rebound-chaos:
//!   upstream_error`; a malformed request gets hyper's `400 Bad Request`.
//! * HTTP/1.1 (and 1.0) in plain text on both sides; no TLS, no HTTP/2, no
//!   protocol upgrades (WebSocket), no `CONNECT`.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod control;
pub mod control_api;
mod counters;
mod duration;
mod error;
mod fault;
mod latency;
mod plan;
mod proxy;
mod scope;
mod spec;
mod timeline;
mod timeline_file;

pub use control::{Control, Current, Source};
pub use counters::Counts;
pub use error::{SpecError, StartError};
pub use fault::{Effect, Fault, FaultKind, LatencyAt, RetryAfter};
pub use latency::Latency;
pub use plan::{Action, FaultSet, Injector, Plan};
pub use proxy::{ChaosProxy, ChaosProxyBuilder};
pub use scope::Scope;
pub use timeline::{Phase, Timeline};
pub use timeline_file::EXAMPLE_TIMELINE;
