//! From a give-up to a fallback: the [`Cause`] of a failed request, however
//! it came back.
//!
//! A request the middleware gives up on comes back one of two ways: as a
//! response (the last attempt's `503`, say) with a [`RetryReport`] saying
//! why it stopped, or as a [`reqwest_middleware::Error`] holding an
//! [`Error`]. Both tell their [`Cause`] directly — [`RetryReport::cause`],
//! [`Error::cause`], and [`GiveUpExt::cause`] on the `reqwest_middleware`
//! error itself — and [`error_on_give_up`](crate::RetryMiddlewareBuilder::error_on_give_up)
//! turns the first way into the second, so one error path reaches the
//! fallback:
//!
//! ```
//! use rebound::fallback::Fallback;
//! use rebound_http::{GiveUpExt, RetryMiddleware};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let app = axum::Router::new().route("/stock/17", axum::routing::get(|| async {
//! #     (axum::http::StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "busy")
//! # }));
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # tokio::spawn(async move { axum::serve(listener, app).await });
//! let middleware = RetryMiddleware::builder()
//!     .dependency("inventory")
//!     .error_on_give_up(true)
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(middleware)
//!     .build();
//! let fallback = Fallback::builder().dependency("inventory").build();
//!
//! // The inventory service answers 503 to every attempt: a give-up.
//! let stock = async {
//!     let response = client.get(format!("http://{addr}/stock/17")).send().await?;
//!     response.text().await.map_err(reqwest_middleware::Error::from)
//! };
//! let shown = fallback.call_with(stock.await, GiveUpExt::cause, |_cause, _err| {
//!     Some("unknown (inventory unavailable)".to_owned())
//! })?;
//! assert_eq!(shown, "unknown (inventory unavailable)");
//! # Ok(()) }
//! ```

use rebound::fallback::{Cause, HasCause};

use crate::error::{Error, RetryReport};

impl HasCause for Error {
    fn cause(&self) -> Cause {
        Error::cause(self)
    }
}

/// The give-up inside a [`reqwest_middleware::Error`], and its [`Cause`].
///
/// `reqwest_middleware::Error` is another crate's type, so rebound's
/// [`HasCause`] cannot be implemented for it here; this trait gives it the
/// same method, to pass as `GiveUpExt::cause` to
/// [`Fallback::call_with`](rebound::fallback::Fallback::call_with).
pub trait GiveUpExt {
    /// The middleware's [`Error`], when the middleware gave up on the
    /// request (not for an error it passed through untouched, such as a
    /// builder error).
    fn gave_up(&self) -> Option<&Error>;

    /// Why the request failed: the give-up's [`Error::cause`]; for any
    /// other error, [`Cause::Timeout`] when it is a timeout and
    /// [`Cause::Failed`] otherwise.
    fn cause(&self) -> Cause;
}

impl GiveUpExt for reqwest_middleware::Error {
    fn gave_up(&self) -> Option<&Error> {
        match self {
            reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<Error>(),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }

    fn cause(&self) -> Cause {
        match self.gave_up() {
            Some(e) => e.cause(),
            None if self.is_timeout() => Cause::Timeout,
            None => Cause::Failed,
        }
    }
}

/// Whether a response was given up on.
impl RetryReport {
    /// Whether the middleware gave up on a transient failure (attempts,
    /// deadline, budget, breaker, throttle, or retries not allowed for the
    /// request), as opposed to succeeding or getting a status that is never
    /// retried.
    pub fn gave_up(&self) -> bool {
        !matches!(
            self.stop,
            rebound::Stop::Succeeded | rebound::Stop::Permanent
        )
    }
}
