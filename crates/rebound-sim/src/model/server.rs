//! The servers: requests arrive, wait in the queue, are served (with
//! hiccups, slowdown, outages, failures) and answered.

use std::collections::VecDeque;

use super::call::Caller;
use super::spec::{Outage, OutageMode};
use super::{Ev, Sim};

/// A request at a server: an operation call of a caller's call.
#[derive(Clone, Copy)]
pub(super) struct Request {
    /// The call it belongs to.
    pub(super) call: u32,
    /// The token its answer carries back.
    pub(super) token: u32,
    /// The layer it is sent to.
    pub(super) layer: u16,
}

/// One layer's server.
pub(super) struct Server {
    /// Requests in service.
    pub(super) busy: u32,
    /// Requests waiting for a worker.
    pub(super) queue: VecDeque<u32>,
}

impl Sim<'_> {
    /// Sends an operation call of call `call` to `layer`; its answer will
    /// carry `token`.
    #[inline(always)]
    pub(super) fn send(&mut self, t: u64, call: u32, layer: u16, token: u32) {
        self.stats.record_attempt(t, layer as usize);
        let r = self.reqs.insert(Request { call, token, layer });
        let net = self.spec.layers[layer as usize]
            .network
            .sample_nanos(&mut self.rng);
        self.q.schedule(t + net, Ev::Arrive(r));
    }

    fn outage(&self, layer: usize, t: u64) -> Option<&Outage> {
        self.spec.layers[layer]
            .outages
            .iter()
            .find(|o| t >= crate::dist::nanos(o.start) && t < crate::dist::nanos(o.end))
    }

    pub(super) fn arrive(&mut self, t: u64, r: u32) {
        let req = *self.reqs.get(r).expect("live request");
        let l = req.layer as usize;
        let spec = &self.spec.layers[l];
        if let Some(Outage {
            mode: OutageMode::Fail,
            ..
        }) = self.outage(l, t)
        {
            return self.respond(t, r, false);
        }
        let server = &mut self.servers[l];
        if spec.workers.is_none_or(|w| server.busy < w) {
            self.serve(t, r);
        } else if spec.queue.is_none_or(|q| (server.queue.len() as u32) < q) {
            server.queue.push_back(r);
        } else {
            self.stats.rejected[l] += 1;
            self.respond(t, r, false);
        }
    }

    fn serve(&mut self, t: u64, r: u32) {
        let l = self.reqs.get(r).expect("live request").layer as usize;
        let spec = &self.spec.layers[l];
        self.servers[l].busy += 1;
        let mut d = spec.service.sample_nanos(&mut self.rng);
        if let Some(h) = spec.hiccups {
            if self.rng.f64() < h.probability {
                d = d.saturating_add(h.extra.sample_nanos(&mut self.rng));
            }
        }
        if let Some(s) = spec.slowdown {
            let busy = self.servers[l].busy;
            if busy > s.knee {
                d = (d as f64 * (1.0 + s.factor * (busy - s.knee) as f64 / s.knee as f64)) as u64;
            }
        }
        let start = match self.outage(l, t).map(|o| (o.mode, o.end)) {
            Some((OutageMode::Stall, until)) => crate::dist::nanos(until),
            Some((OutageMode::Slow(f), _)) => {
                d = (d as f64 * f) as u64;
                t
            }
            _ => t,
        };
        self.q.schedule(start + d, Ev::Done(r));
    }

    pub(super) fn done(&mut self, t: u64, r: u32) {
        let req = *self.reqs.get(r).expect("live request");
        let l = req.layer as usize;
        self.servers[l].busy -= 1;
        if let Some(next) = self.servers[l].queue.pop_front() {
            self.serve(t, next);
        }
        self.stats.served[l] += 1;
        let spec = &self.spec.layers[l];
        if spec.failure_rate > 0.0 && self.rng.f64() < spec.failure_rate {
            return self.respond(t, r, false);
        }
        match self.layer_policy[l] {
            Some(p) => self.start_call(t, Caller::Request(r), req.layer + 1, p),
            None => self.respond(t, r, true),
        }
    }

    /// Sends request `r`'s answer back to its caller.
    pub(super) fn respond(&mut self, t: u64, r: u32, ok: bool) {
        let req = self.reqs.remove(r).expect("live request");
        let net = self.spec.layers[req.layer as usize]
            .network
            .sample_nanos(&mut self.rng);
        self.q.schedule(t + net, Ev::Reply(req.call, req.token, ok));
    }
}
