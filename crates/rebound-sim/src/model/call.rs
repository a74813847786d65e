//! A caller's call in flight: who made it, the machine driving it, and
//! the events it hears (answers, timers) handed to that machine.

use rebound::Stop;

use super::hedge::HedgeCall;
use super::pipeline::PipelineCall;
use super::retry::RetryCall;
use super::{Ev, Sim, Workload};
use crate::policy::PolicyObject;

/// Who made a call.
#[derive(Debug, Clone, Copy)]
pub(super) enum Caller {
    /// A client.
    Client(u32),
    /// The request (at the layer above) that made this downstream call.
    Request(u32),
}

/// A call in flight.
pub(super) struct Call {
    pub(super) caller: Caller,
    /// The layer its requests go to.
    pub(super) layer: u16,
    /// Its policy object (an index into the run's policies).
    pub(super) policy: u32,
    pub(super) started: u64,
    pub(super) driver: Driver,
}

/// The machine a call is driven by, chosen by its policy object.
pub(super) enum Driver {
    Retry(RetryCall),
    Hedge(Box<HedgeCall>),
    Pipeline(Box<PipelineCall>),
}

impl Sim<'_> {
    /// Starts a call from `caller` to `layer` under policy object `policy`.
    pub(super) fn start_call(&mut self, t: u64, caller: Caller, layer: u16, policy: u32) {
        let call = |driver| Call {
            caller,
            layer,
            policy,
            started: t,
            driver,
        };
        match &self.policies[policy as usize] {
            PolicyObject::Retry(p) => {
                // Built in place: the hot path of most scenarios.
                let id = self.calls.insert(Call {
                    caller,
                    layer,
                    policy,
                    started: t,
                    driver: Driver::Retry(RetryCall::new(p, t)),
                });
                self.attempt(t, id);
            }
            PolicyObject::Hedge(p) => {
                let (h, first) = HedgeCall::new(p);
                let id = self.calls.insert(call(Driver::Hedge(Box::new(h))));
                self.hedge_start(t, id, first);
            }
            PolicyObject::Pipeline(p) => {
                let run = PipelineCall::new(p);
                let id = self.calls.insert(call(Driver::Pipeline(Box::new(run))));
                self.pipeline_step(t, id, false);
            }
        }
    }

    /// An answer to request `token` of call `id` arrived.
    pub(super) fn reply(&mut self, t: u64, id: u32, token: u32, ok: bool) {
        match self.calls.get(id).map(|c| &c.driver) {
            Some(Driver::Retry(_)) => self.retry_reply(t, id, token, ok),
            Some(Driver::Hedge(_)) => self.hedge_reply(t, id, token, ok),
            Some(Driver::Pipeline(_)) => self.pipeline_reply(t, id, token, ok),
            // The call has ended: its caller no longer waits for this.
            None => self.stats.wasted += 1,
        }
    }

    /// Timer `token` of call `id` fired.
    pub(super) fn timer(&mut self, t: u64, id: u32, token: u32) {
        match self.calls.get(id).map(|c| &c.driver) {
            Some(Driver::Retry(_)) => self.retry_timeout(t, id, token),
            Some(Driver::Hedge(_)) => self.hedge_timer(t, id, token),
            Some(Driver::Pipeline(_)) => self.pipeline_timer(t, id, token),
            None => {}
        }
    }

    /// Call `id` ended with `stop`: tell its caller.
    pub(super) fn finish(&mut self, t: u64, id: u32, stop: Stop) {
        let call = self.calls.get(id).expect("live call");
        let (caller, started) = (call.caller, call.started);
        self.calls.free(id);
        match caller {
            Caller::Client(c) => {
                self.stats.record_end(t, t - started, stop);
                if let Workload::Closed { think } = &self.spec.workload {
                    let d = think.sample_nanos(&mut self.rng);
                    self.q.schedule(t + d, Ev::Wake(c));
                }
            }
            Caller::Request(r) => self.respond(t, r, stop.is_success()),
        }
    }
}
