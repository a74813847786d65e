//! Deciding what is worth retrying.
//!
//! Not every failure deserves a retry: a
//! **transient** failure — a timeout, a reset connection, a 503 — may go away
//! on its own; a **permanent** one — a 400, a 404, a validation error — never
//! will, and retrying it only adds load. A [`Classifier`] looks at each
//! attempt's [`Outcome`] and returns a [`Decision`].
//!
//! Classifiers see successful values too, so a response that *arrived* but
//! is bad (an HTTP 503) can be retried, and a server's requested delay
//! (`Retry-After`) can be passed back with [`Decision::RetryAfter`].
//!
//! ```
//! use std::time::Duration;
//! use rebound::{Decision, Outcome};
//!
//! struct Response { status: u16, retry_after: Option<Duration> }
//!
//! let classify = |o: Outcome<'_, Response, std::io::Error>| match o {
//!     Outcome::Ok(r) if r.status == 503 || r.status == 429 => match r.retry_after {
//!         Some(d) => Decision::RetryAfter(d),
//!         None => Decision::Retry,
//!     },
//!     Outcome::Ok(_) => Decision::DoNotRetry,
//!     Outcome::Err(e) => rebound::classify::io_error(e),
//!     Outcome::Timeout(_) => Decision::Retry,
//! };
//! # let _ = classify;
//! ```

use std::error::Error;
use std::io;
use std::time::Duration;

/// What one attempt produced, as shown to a [`Classifier`].
#[derive(Debug)]
pub enum Outcome<'a, T, E> {
    /// The operation returned a value.
    Ok(&'a T),
    /// The operation returned an error.
    Err(&'a E),
    /// The attempt was cut off by the per-attempt timeout after this long.
    Timeout(Duration),
}

impl<T, E> Clone for Outcome<'_, T, E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, E> Copy for Outcome<'_, T, E> {}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Transient: retry after the backoff delay (if attempts, deadline and
    /// budget allow).
    Retry,
    /// Transient, and the server asked for a delay: retry after at least this
    /// long. The executor never waits less than this; if it is longer than
    /// the policy's `max_server_delay` or would cross the deadline, it stops
    /// at once and reports the requested delay.
    RetryAfter(Duration),
    /// Do not retry. On a value, the call succeeded; on an error or a
    /// timeout, the failure is permanent.
    DoNotRetry,
}

/// Maps an attempt's outcome to a [`Decision`].
///
/// Implemented for every `Fn(Outcome<'_, T, E>) -> Decision`.
pub trait Classifier<T, E> {
    /// Decides about one outcome.
    fn classify(&self, outcome: Outcome<'_, T, E>) -> Decision;
}

impl<T, E, F> Classifier<T, E> for F
where
    F: Fn(Outcome<'_, T, E>) -> Decision,
{
    #[inline]
    fn classify(&self, outcome: Outcome<'_, T, E>) -> Decision {
        self(outcome)
    }
}

/// The default classifier: values succeed; every error and every timeout is
/// transient.
///
/// Use it when your operation already turns permanent failures into values
/// or when everything it can fail with is worth retrying; otherwise pass your
/// own with [`RetryPolicy::classify`](crate::RetryPolicy::classify) —
/// for `std::io` errors, [`io_error`] and [`error_chain`] are ready-made.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryErrors;

impl<T, E> Classifier<T, E> for RetryErrors {
    #[inline]
    fn classify(&self, outcome: Outcome<'_, T, E>) -> Decision {
        match outcome {
            Outcome::Ok(_) => Decision::DoNotRetry,
            Outcome::Err(_) | Outcome::Timeout(_) => Decision::Retry,
        }
    }
}

/// Whether an `io::ErrorKind` is transient: timeouts, resets, refused,
/// aborted and broken connections, interruptions.
pub fn is_transient_io(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        TimedOut
            | ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | Interrupted
            | WouldBlock
            | UnexpectedEof
            | NotConnected
    )
}

/// Classifies an `io::Error`: [`Decision::Retry`] when
/// [`is_transient_io`], else [`Decision::DoNotRetry`].
///
/// ```
/// use std::io;
/// use rebound::{classify, Decision};
/// let reset = io::Error::from(io::ErrorKind::ConnectionReset);
/// assert_eq!(classify::io_error(&reset), Decision::Retry);
/// let denied = io::Error::from(io::ErrorKind::PermissionDenied);
/// assert_eq!(classify::io_error(&denied), Decision::DoNotRetry);
/// ```
pub fn io_error(e: &io::Error) -> Decision {
    if is_transient_io(e.kind()) {
        Decision::Retry
    } else {
        Decision::DoNotRetry
    }
}

/// Walks an error's `source()` chain and classifies the first `io::Error`
/// found with [`io_error`]; an error with no `io::Error` inside is permanent.
///
/// Useful for client errors that wrap the socket error (hyper, reqwest,
/// tonic transport errors).
pub fn error_chain(e: &(dyn Error + 'static)) -> Decision {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return io_error(io);
        }
        cur = err.source();
    }
    Decision::DoNotRetry
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Wrapper(io::Error);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("request failed")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chain_finds_wrapped_io_errors() {
        let w = Wrapper(io::ErrorKind::ConnectionReset.into());
        assert_eq!(error_chain(&w), Decision::Retry);
        let w = Wrapper(io::ErrorKind::InvalidData.into());
        assert_eq!(error_chain(&w), Decision::DoNotRetry);
        let fmt_err = fmt::Error;
        assert_eq!(error_chain(&fmt_err), Decision::DoNotRetry);
    }

    #[test]
    fn default_retries_errors_and_timeouts_only() {
        let c = RetryErrors;
        assert_eq!(
            Classifier::<u8, ()>::classify(&c, Outcome::Ok(&1)),
            Decision::DoNotRetry
        );
        assert_eq!(
            Classifier::<u8, ()>::classify(&c, Outcome::Err(&())),
            Decision::Retry
        );
        assert_eq!(
            Classifier::<u8, ()>::classify(&c, Outcome::Timeout(Duration::ZERO)),
            Decision::Retry
        );
    }
}
