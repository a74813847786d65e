//! Permits: one admitted call each, told how it went.

use std::fmt;
use std::time::Duration;

use super::core::{Inner, Ticket, TicketKind};
use super::{CallOutcome, CircuitBreaker};

/// Leave to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report how the call went with [`success`](Self::success),
/// [`failure`](Self::failure) or [`record`](Self::record). Dropping the
/// permit without reporting (the call was cancelled, or its outcome says
/// nothing about the dependency's health) records nothing; a half-open probe
/// gives its slot back.
///
/// ```
/// use rebound::{CircuitBreaker, breaker::CallOutcome};
///
/// let cb = CircuitBreaker::builder().build().unwrap();
/// let permit = cb.try_acquire().expect("closed");
/// let status = 503; // make the call here
/// permit.record(if status >= 500 { CallOutcome::Failure } else { CallOutcome::Success });
/// assert_eq!(cb.snapshot().failures, 1);
/// ```
#[must_use = "report the call's outcome on the permit, or drop it to record nothing"]
pub struct Permit<'a> {
    pub(super) inner: &'a Inner,
    pub(super) ticket: Option<Ticket>,
}

/// Like [`Permit`] but owning a handle to its breaker, from
/// [`CircuitBreaker::try_acquire_owned`].
///
/// ```
/// use rebound::CircuitBreaker;
///
/// let cb = CircuitBreaker::builder().build().unwrap();
/// let permit = cb.try_acquire_owned().unwrap();
/// std::thread::spawn(move || permit.success()).join().unwrap();
/// assert_eq!(cb.snapshot().calls, 1);
/// ```
#[must_use = "report the call's outcome on the permit, or drop it to record nothing"]
pub struct OwnedPermit {
    pub(super) breaker: CircuitBreaker,
    pub(super) ticket: Option<Ticket>,
}

macro_rules! permit_methods {
    ($inner:ident) => {
        /// The call succeeded. With slow-call detection on, its duration is
        /// measured from when the permit was granted.
        #[inline]
        pub fn success(self) {
            self.record(CallOutcome::Success)
        }

        /// The call failed.
        #[inline]
        pub fn failure(self) {
            self.record(CallOutcome::Failure)
        }

        /// Records `outcome`, measuring the call's duration (for slow-call
        /// detection) from when the permit was granted.
        #[inline]
        pub fn record(mut self, outcome: CallOutcome) {
            if let Some(t) = self.ticket.take() {
                self.$inner().record(t, outcome, None);
            }
        }

        /// Records `outcome` for a call that took `elapsed` (measured by
        /// the caller).
        #[inline]
        pub fn record_elapsed(mut self, outcome: CallOutcome, elapsed: Duration) {
            if let Some(t) = self.ticket.take() {
                self.$inner().record(t, outcome, Some(elapsed));
            }
        }

        /// Whether this call is a half-open probe.
        pub fn is_probe(&self) -> bool {
            self.ticket.is_some_and(|t| t.kind == TicketKind::Probe)
        }

        /// The breaker generation this permit was admitted in (see
        /// [`Transition::generation`](crate::breaker::Transition::generation)); its outcome counts only while the
        /// breaker is still in that generation.
        pub fn generation(&self) -> u32 {
            self.ticket.map_or(0, |t| t.gen)
        }
    };
}

impl Permit<'_> {
    #[inline]
    fn inner(&self) -> &Inner {
        self.inner
    }
    permit_methods!(inner);
}

impl OwnedPermit {
    #[inline]
    fn inner(&self) -> &Inner {
        &self.breaker.inner
    }
    permit_methods!(inner);

    /// The breaker this permit belongs to.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.inner.release(t);
        }
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.breaker.inner.release(t);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("dependency", &self.breaker.inner.cfg.dependency)
            .field("ticket", &self.ticket)
            .finish()
    }
}
