//! One request's attempts: the middleware's side of the core's attempt
//! loop.

use std::fmt;
use std::time::Instant;

use http::header::HeaderValue;
use http::Extensions;
use rebound::retry::{Attempt, AttemptIo, RetryEvent};
use rebound::{Decision, Failure, Outcome};
use reqwest::{Request, Response};
use reqwest_middleware::Next;
use tracing::instrument::{Instrument, Instrumented};

use super::loan::SerialLoan;
use super::{Inner, RetryNotice};
use crate::hosts::Host;

/// What the rest of the middleware chain returns.
pub(super) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The middleware's side of the core's attempt loop: one request, the
/// rest of the chain, and what each attempt needs.
pub(super) struct HttpAttempts<'c> {
    pub(super) inner: &'c Inner,
    pub(super) host: &'c Host,
    /// The request as it came in: copied for each attempt but the last,
    /// which sends it.
    pub(super) original: &'c mut Option<Request>,
    pub(super) next: Next<'c>,
    /// The request's extensions, lent to each attempt in turn.
    pub(super) extensions: SerialLoan<'c, Extensions>,
    /// When the attempt in flight started, on the policy's clock: a
    /// timeout of the client's own is reported as the time since then.
    pub(super) attempt_started: Instant,
}

impl<'c> AttemptIo<Response, reqwest_middleware::Error> for HttpAttempts<'c> {
    type Attempt = HttpAttempt<'c>;

    // The crate's one `unsafe` call: lending the extensions (see `loan`).
    #[allow(unsafe_code)]
    fn start(&mut self, attempt: &Attempt) -> HttpAttempt<'c> {
        let number = attempt.number();
        // The last possible attempt sends the original; earlier ones a
        // copy (cheap: the body is shared `Bytes`).
        let request = if attempt.is_last() {
            self.original.take()
        } else {
            self.original.as_ref().and_then(Request::try_clone)
        };
        // A span per attempt when anyone listens; none otherwise (not even
        // a disabled one), so an unobserved attempt pays no span
        // bookkeeping.
        let span = if tracing::span_enabled!(tracing::Level::INFO) {
            Some(tracing::info_span!(
                "rebound_http.attempt",
                dependency = self.host.dependency(),
                host = self.host.authority(),
                http.method = request
                    .as_ref()
                    .map(|r| tracing::field::display(r.method())),
                attempt = number,
                http.status = tracing::field::Empty,
            ))
            .filter(|s| !s.is_disabled())
        } else {
            None
        };
        // The first attempt starts with the call (the driver has just read
        // the clock); later ones after a wait.
        if number > 1 {
            self.attempt_started = self.host.policy().clock().now();
        }
        let sent: BoxFuture<'c, reqwest_middleware::Result<Response>> = match request {
            Some(mut request) => {
                if let Some(name) = &self.inner.attempt_header {
                    request
                        .headers_mut()
                        .insert(name.clone(), attempt_number(number));
                }
                // SAFETY: the attempt loop finishes or drops each attempt
                // before it starts the next, and every attempt before it
                // returns (the contract of `AttemptIo`, tested in the core);
                // `Call::run` does not touch the extensions meanwhile. So the
                // reference lent here is the only one alive while it is.
                let extensions = unsafe { self.extensions.lend() };
                self.next.clone().run(request, extensions)
            }
            // Unreachable: only the last attempt takes the original, and
            // only requests with replayable bodies get more than one.
            None => Box::pin(std::future::ready(Err(
                reqwest_middleware::Error::middleware(Unreplayable),
            ))),
        };
        match span {
            None => HttpAttempt::Plain { sent },
            Some(span) => HttpAttempt::Traced {
                sent: sent.instrument(span),
            },
        }
    }

    fn outcome<'r>(
        &self,
        result: &'r Result<Response, Failure<reqwest_middleware::Error>>,
    ) -> Outcome<'r, Response, reqwest_middleware::Error> {
        match result {
            // reqwest's own timeout counts as a timeout too, of the attempt.
            Err(Failure::Error(e)) if e.is_timeout() => Outcome::Timeout(
                self.host
                    .policy()
                    .clock()
                    .now()
                    .saturating_duration_since(self.attempt_started),
            ),
            other => Outcome::of(other),
        }
    }

    fn classify(&self, outcome: Outcome<'_, Response, reqwest_middleware::Error>) -> Decision {
        let classifier = &self.inner.classifier;
        match outcome {
            Outcome::Ok(r) if classifier.may_retry(r.status()) => classifier.classify_response(
                r.status(),
                r.headers(),
                self.host.policy().clock().wall(),
            ),
            // The common case: no need to read the wall clock.
            Outcome::Ok(_) => Decision::DoNotRetry,
            Outcome::Err(e) => classifier.classify_error(e),
            Outcome::Timeout(_) => Decision::Retry,
        }
    }

    fn on_retry(&mut self, event: &RetryEvent<'_, Response, reqwest_middleware::Error>) {
        let (Some(hook), Some(original)) = (&self.inner.on_retry, &self.original) else {
            return;
        };
        hook(&RetryNotice {
            host: self.host.authority(),
            method: original.method(),
            url: original.url(),
            attempt: event.attempt,
            delay: event.delay,
            server_delay: match event.decision {
                Decision::RetryAfter(d) => Some(d),
                _ => None,
            },
            status: match event.outcome {
                Outcome::Ok(r) => Some(r.status()),
                _ => None,
            },
            error: match event.outcome {
                Outcome::Err(e) => Some(e),
                _ => None,
            },
            timed_out: matches!(event.outcome, Outcome::Timeout(_)),
        });
    }

    /// Frees a failed response (and its connection) before waiting; keeps
    /// an error for the report.
    fn keep(
        &mut self,
        result: Result<Response, Failure<reqwest_middleware::Error>>,
    ) -> Option<Result<Response, Failure<reqwest_middleware::Error>>> {
        result.err().map(Err)
    }
}

pin_project_lite::pin_project! {
    /// One attempt in flight: the rest of the chain, in the attempt's span
    /// when there is one.
    #[project = HttpAttemptProj]
    pub(super) enum HttpAttempt<'s> {
        Plain {
            #[pin]
            sent: BoxFuture<'s, reqwest_middleware::Result<Response>>,
        },
        Traced {
            #[pin]
            sent: Instrumented<BoxFuture<'s, reqwest_middleware::Result<Response>>>,
        },
    }
}

impl std::future::Future for HttpAttempt<'_> {
    type Output = Result<Response, Failure<reqwest_middleware::Error>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let result = match self.project() {
            HttpAttemptProj::Plain { sent } => std::task::ready!(sent.poll(cx)),
            HttpAttemptProj::Traced { mut sent } => {
                let result = std::task::ready!(sent.as_mut().poll(cx));
                if let Ok(r) = &result {
                    sent.as_ref()
                        .get_ref()
                        .span()
                        .record("http.status", r.status().as_u16());
                }
                result
            }
        };
        std::task::Poll::Ready(result.map_err(Failure::Error))
    }
}

/// A request whose body cannot be copied reached a second attempt: never
/// happens (such requests get one attempt), reported if it did.
#[derive(Debug)]
struct Unreplayable;

impl fmt::Display for Unreplayable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request could not be copied for another attempt")
    }
}

impl std::error::Error for Unreplayable {}

/// The attempt number as a header value; small ones without allocating.
pub(super) fn attempt_number(n: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match SMALL.get(n as usize) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(n),
    }
}
