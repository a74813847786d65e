//! Driving a call through a pipeline: the core's [`PipelineRun`] decides
//! everything (timeouts, retries, hedged copies, breaker and throttle
//! permits); its operation calls are requests to the server, its timers
//! events, its cancellations abandoned requests.

use rebound::pipeline::{FrameId, Pipeline, PipelineAction, PipelineRun};
use rebound::{RetryErrors, Stop};

use super::call::Driver;
use super::{Ev, Sim};

/// A call's pipeline machine, its operation calls in flight and its armed
/// timers.
pub(super) struct PipelineCall {
    run: PipelineRun<(), ()>,
    /// (frame, request token) of each operation call in flight.
    in_flight: Vec<(FrameId, u32)>,
    /// (frame, timer token) of each armed timer.
    timers: Vec<(FrameId, u32)>,
}

impl PipelineCall {
    /// A call starting now through `pipeline`.
    pub(super) fn new(pipeline: &Pipeline) -> Self {
        PipelineCall {
            run: PipelineRun::new(pipeline, false, &RetryErrors),
            in_flight: Vec::new(),
            timers: Vec::new(),
        }
    }
}

/// The call's pipeline machine, borrowed from `sim`.
macro_rules! pipeline_call {
    ($sim:expr, $id:expr) => {{
        let Some(call) = $sim.calls.get_mut($id) else {
            return;
        };
        let Driver::Pipeline(p) = &mut call.driver else {
            return;
        };
        (call.layer, p)
    }};
}

impl Sim<'_> {
    /// Does what the machine of call `id` asks, until it waits; ends the
    /// call when it has a result. `timed_out`: the actions follow a timer,
    /// so the calls it cancels were cut off by a timeout (after an answer,
    /// they lost a hedge race).
    pub(super) fn pipeline_step(&mut self, t: u64, id: u32, timed_out: bool) {
        loop {
            let (layer, p) = pipeline_call!(self, id);
            let Some(action) = p.run.next_action() else {
                break;
            };
            match action {
                PipelineAction::Call(frame) => {
                    self.tokens = self.tokens.wrapping_add(1);
                    let token = self.tokens;
                    p.in_flight.push((frame, token));
                    self.send(t, id, layer, token);
                }
                PipelineAction::Cancel(frame) => {
                    p.in_flight.retain(|(f, _)| *f != frame);
                    self.stats.abandoned += 1;
                    if timed_out {
                        self.stats.timeouts += 1;
                    }
                }
                PipelineAction::Timer { frame, at, .. } => {
                    self.tokens = self.tokens.wrapping_add(1);
                    let token = self.tokens;
                    match p.timers.iter_mut().find(|(f, _)| *f == frame) {
                        Some(armed) => armed.1 = token,
                        None => p.timers.push((frame, token)),
                    }
                    self.q
                        .schedule(self.time.nanos_at(at), Ev::Timer(id, token));
                }
                PipelineAction::ClearTimer(frame) => p.timers.retain(|(f, _)| *f != frame),
                PipelineAction::Acquire(frame) => {
                    // Waiting for a slot is the async driver's work; the
                    // policies built from files have no bulkhead queue
                    // (see `PolicyObject::Pipeline`). A slot free now is
                    // taken, else the bulkhead refuses.
                    if let Some(slot) = p.run.bulkhead(frame).map(|b| b.try_acquire()) {
                        p.run.on_admitted(frame, slot, &RetryErrors);
                    }
                }
                _ => {}
            }
        }
        let (_, p) = pipeline_call!(self, id);
        if let Some(out) = p.run.take_result() {
            let stop = match out {
                Ok(()) => Stop::Succeeded,
                Err(e) => e.stop(),
            };
            self.finish(t, id, stop);
        }
    }

    pub(super) fn pipeline_reply(&mut self, t: u64, id: u32, token: u32, ok: bool) {
        let (_, p) = pipeline_call!(self, id);
        let Some(i) = p.in_flight.iter().position(|(_, k)| *k == token) else {
            // Cancelled: nobody waits for it.
            self.stats.wasted += 1;
            return;
        };
        let (frame, _) = p.in_flight.swap_remove(i);
        let result = if ok { Ok(()) } else { Err(()) };
        p.run.on_call_done(frame, result, &RetryErrors);
        self.pipeline_step(t, id, false);
    }

    /// Timer `token` of call `id` fired.
    pub(super) fn pipeline_timer(&mut self, t: u64, id: u32, token: u32) {
        let (_, p) = pipeline_call!(self, id);
        let Some(i) = p.timers.iter().position(|(_, k)| *k == token) else {
            return;
        };
        let (frame, _) = p.timers.swap_remove(i);
        p.run.on_timer(frame, &RetryErrors);
        self.pipeline_step(t, id, true);
    }
}
