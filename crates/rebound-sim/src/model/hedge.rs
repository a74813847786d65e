//! Driving a call under a hedge policy: the core's [`HedgeState`]
//! decides when to launch another copy and which answer wins; each copy
//! is a request to the server, the hedge delay a timer.

use rebound::hedge::{HedgeAction, HedgeCopy, HedgePolicy, HedgeState, Verdict};
use rebound::{Classifier, Outcome, RetryErrors};

use super::call::Driver;
use super::{Ev, Sim};
use crate::policy::PolicyObject;

/// A call's hedge machine, its copies in flight and its armed timer.
pub(super) struct HedgeCall {
    state: HedgeState,
    /// (request token, copy) of each copy in flight.
    copies: Vec<(u32, HedgeCopy)>,
    /// The armed hedge timer: its token and when it fires.
    timer: Option<(u32, std::time::Instant)>,
}

impl HedgeCall {
    /// A new hedged call (counted as a request against the policy's
    /// budget) and its first copy.
    pub(super) fn new(policy: &HedgePolicy) -> (Self, HedgeCopy) {
        let (state, first) = HedgeState::new(policy, true);
        let call = HedgeCall {
            state,
            copies: Vec::with_capacity(policy.max_attempts() as usize),
            timer: None,
        };
        (call, first)
    }
}

/// The call's hedge machine and its policy, borrowed from `sim`.
macro_rules! hedge_call {
    ($sim:expr, $id:expr) => {{
        let Some(call) = $sim.calls.get_mut($id) else {
            return;
        };
        let Driver::Hedge(h) = &mut call.driver else {
            return;
        };
        let PolicyObject::Hedge(policy) = &$sim.policies[call.policy as usize] else {
            return;
        };
        (call.layer, h, policy)
    }};
}

impl Sim<'_> {
    /// Sends the first copy of hedged call `id`, then does what the machine
    /// asks.
    pub(super) fn hedge_start(&mut self, t: u64, id: u32, first: HedgeCopy) {
        let token = self.token();
        let (layer, h, _) = hedge_call!(self, id);
        h.copies.push((token, first));
        self.send(t, id, layer, token);
        self.hedge_next(t, id);
    }

    /// Asks the machine of call `id` what to do, and does it, until it
    /// waits or the call ends.
    fn hedge_next(&mut self, t: u64, id: u32) {
        loop {
            let (layer, h, policy) = hedge_call!(self, id);
            match h.state.next(policy) {
                HedgeAction::Launch => {
                    let copy = h.state.launched(policy);
                    self.tokens = self.tokens.wrapping_add(1);
                    let token = self.tokens;
                    h.copies.push((token, copy));
                    self.send(t, id, layer, token);
                }
                HedgeAction::Wait(at) => {
                    if h.timer.map(|(_, armed)| armed) == at {
                        return;
                    }
                    h.timer = at.map(|at| {
                        self.tokens = self.tokens.wrapping_add(1);
                        (self.tokens, at)
                    });
                    if let Some((token, at)) = h.timer {
                        self.q
                            .schedule(self.time.nanos_at(at), Ev::Timer(id, token));
                    }
                    return;
                }
                HedgeAction::Finish(stop) => return self.finish(t, id, stop),
            }
        }
    }

    pub(super) fn hedge_reply(&mut self, t: u64, id: u32, token: u32, ok: bool) {
        let (_, h, policy) = hedge_call!(self, id);
        let Some(i) = h.copies.iter().position(|(k, _)| *k == token) else {
            // A copy that lost the race: nobody waits for it.
            self.stats.wasted += 1;
            return;
        };
        let (_, copy) = h.copies.swap_remove(i);
        let outcome = if ok {
            Outcome::Ok(&())
        } else {
            Outcome::Err(&())
        };
        let verdict = Verdict::of(RetryErrors.classify(outcome), ok);
        match h.state.on_result(policy, copy, verdict) {
            Some(stop) => {
                // The other copies are abandoned; the server still works
                // on them.
                self.stats.abandoned += h.copies.len() as u64;
                self.finish(t, id, stop);
            }
            None => self.hedge_next(t, id),
        }
    }

    /// The hedge timer `token` of call `id` fired.
    pub(super) fn hedge_timer(&mut self, t: u64, id: u32, token: u32) {
        let (_, h, _) = hedge_call!(self, id);
        if h.timer.is_none_or(|(k, _)| k != token) {
            return;
        }
        h.timer = None;
        h.state.on_timer();
        self.hedge_next(t, id);
    }
}
