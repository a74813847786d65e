//! Driving a call under a retry policy: the core's [`RetryState`], one
//! attempt at a time. The fast path: most scenarios' calls take it.

use std::time::Duration;

use rebound::{Attempt, Decision, Next, Outcome, RetryPolicy, RetryState};

use super::call::Driver;
use super::{Ev, Sim};
use crate::dist::nanos;
use crate::policy::PolicyObject;

/// A call's retry machine and its attempt in flight.
pub(super) struct RetryCall {
    state: RetryState,
    attempt: Option<Attempt>,
    /// The token of the attempt in flight (its request and its timeout).
    token: u32,
    /// When the attempt in flight was sent.
    sent: u64,
}

impl RetryCall {
    #[inline]
    pub(super) fn new(policy: &RetryPolicy, t: u64) -> Self {
        RetryCall {
            state: RetryState::new(policy),
            attempt: None,
            token: 0,
            sent: t,
        }
    }
}

/// The call's retry machine and its policy, borrowed from `sim`.
macro_rules! retry_call {
    ($sim:expr, $id:expr) => {{
        let Some(call) = $sim.calls.get_mut($id) else {
            return;
        };
        let Driver::Retry(rc) = &mut call.driver else {
            return;
        };
        let PolicyObject::Retry(policy) = &$sim.policies[call.policy as usize] else {
            return;
        };
        (call.layer, rc, policy)
    }};
}

impl Sim<'_> {
    /// Starts call `id`'s next attempt, or ends the call.
    pub(super) fn attempt(&mut self, t: u64, id: u32) {
        let (layer, rc, policy) = retry_call!(self, id);
        match rc.state.begin_attempt(policy) {
            Ok(a) => {
                let timeout = a.timeout();
                self.tokens = self.tokens.wrapping_add(1);
                let token = self.tokens;
                // No attempt is in flight here (each is taken when it ends),
                // so nothing is dropped.
                rc.attempt.get_or_insert(a);
                rc.token = token;
                rc.sent = t;
                self.send(t, id, layer, token);
                if let Some(d) = timeout {
                    self.q.schedule(t + nanos(d), Ev::Timer(id, token));
                }
            }
            Err(stop) => self.finish(t, id, stop),
        }
    }

    pub(super) fn retry_reply(&mut self, t: u64, id: u32, token: u32, ok: bool) {
        let (_, rc, policy) = retry_call!(self, id);
        if rc.token != token || rc.attempt.is_none() {
            // The caller timed out on this attempt and moved on.
            self.stats.wasted += 1;
            return;
        }
        let attempt = rc.attempt.take().expect("checked");
        let next = if ok {
            rc.state
                .on_outcome::<(), ()>(policy, attempt, Outcome::Ok(&()), Decision::DoNotRetry)
        } else {
            rc.state
                .on_outcome::<(), ()>(policy, attempt, Outcome::Err(&()), Decision::Retry)
        };
        self.next(t, id, next);
    }

    /// The attempt timeout `token` of call `id` fired.
    pub(super) fn retry_timeout(&mut self, t: u64, id: u32, token: u32) {
        let (_, rc, policy) = retry_call!(self, id);
        if rc.token != token || rc.attempt.is_none() {
            return;
        }
        let attempt = rc.attempt.take().expect("checked");
        let after = Duration::from_nanos(t - rc.sent);
        let next = rc.state.on_outcome::<(), ()>(
            policy,
            attempt,
            Outcome::Timeout(after),
            Decision::Retry,
        );
        self.stats.timeouts += 1;
        self.stats.abandoned += 1;
        self.next(t, id, next);
    }

    fn next(&mut self, t: u64, id: u32, next: Next) {
        match next {
            Next::Retry { delay } if delay.is_zero() => self.attempt(t, id),
            Next::Retry { delay } => self.q.schedule(t + nanos(delay), Ev::Retry(id)),
            Next::Stop(stop) => self.finish(t, id, stop),
        }
    }
}
