//! Each stage's part of a call: what it does before the stages inside
//! it, and what it makes of how they ended.

use std::sync::Arc;

use super::frames::{Event, Kind, Queue};
use super::{FrameId, Out, PipelineAction, PipelineRun};
use crate::bulkhead::FullReason;
use crate::classify::{Classifier, Outcome};
use crate::hedge::{HedgeAction, HedgeState, Verdict};
use crate::pipeline::Stage;
use crate::policy::score::{Admission, Score};
use crate::retry::{Failure, Next, Report, RetryError, RetryState, Stop};
use crate::BulkheadPermit;

impl<T, E> PipelineRun<T, E> {
    /// Starts frame `id`: its stage's work before the stages inside.
    pub(super) fn enter(&mut self, id: FrameId, queue: &mut Queue<T, E>) {
        let stages = Arc::clone(&self.pipeline.stages);
        let f = &self.frames[id.index as usize];
        let (stage_index, deadline) = (f.stage, f.deadline);
        let Some(stage) = stages.get(stage_index) else {
            self.calls += 1;
            self.actions.push_back(PipelineAction::Call(id));
            return;
        };
        match stage {
            Stage::Timeout(limit) => {
                let at = self.pipeline.clock.now().checked_add(*limit);
                let inside = match (deadline, at) {
                    (Some(d), Some(a)) => Some(d.min(a)),
                    (d, a) => d.or(a),
                };
                self.frames[id.index as usize].kind = Kind::Timeout {
                    limit: *limit,
                    child: None,
                };
                if let Some(at) = at {
                    self.arm(id, at, false);
                }
                let c = self.spawn(Some(id), stage_index + 1, inside);
                self.frames[id.index as usize].kind.set_child(c);
                queue.push_back(Event::Enter(c));
            }
            Stage::Retry(policy) => self.begin_attempt(id, policy, queue),
            Stage::Hedge(policy) if !self.once => {
                let record = !self.hedge_counted && !self.pipeline.hedge_shares_retry_budget;
                self.hedge_counted = true;
                let (state, copy) = HedgeState::new(policy, record);
                let c = self.spawn(Some(id), stage_index + 1, deadline);
                self.frames[id.index as usize].kind = Kind::Hedge {
                    state,
                    copies: vec![(c, copy)],
                    last: None,
                };
                queue.push_back(Event::Enter(c));
                self.hedge(id, queue);
            }
            Stage::Hedge(_) => self.pass(id, None, queue),
            Stage::CircuitBreaker(cb) => self.admit(id, Admission::ask(None, Some(cb)), queue),
            Stage::Throttle(t) => self.admit(id, Admission::ask(Some(t), None), queue),
            Stage::Bulkhead(b) => match b.grab() {
                Some(slot) => self.pass(id, Some(slot), queue),
                None if b.inner.max_queue > 0 => {
                    self.frames[id.index as usize].kind = Kind::Queued;
                    self.actions.push_back(PipelineAction::Acquire(id));
                }
                None => {
                    b.reject(FullReason::Full);
                    let out = self.refused(Stop::BulkheadFull);
                    self.finish(id, out, queue);
                }
            },
        }
    }

    /// A stage that passes the call through once (holding a bulkhead
    /// `slot`, if any).
    pub(super) fn pass(
        &mut self,
        id: FrameId,
        slot: Option<BulkheadPermit>,
        queue: &mut Queue<T, E>,
    ) {
        self.frames[id.index as usize].kind = Kind::Pass {
            child: None,
            _slot: slot,
        };
        self.enter_inside(id, queue);
    }

    /// A breaker or throttle stage: admitted, or refused.
    pub(super) fn admit(
        &mut self,
        id: FrameId,
        asked: Result<Admission, Stop>,
        queue: &mut Queue<T, E>,
    ) {
        match asked {
            Ok(admission) => {
                self.frames[id.index as usize].kind = Kind::Admitted {
                    admission,
                    child: None,
                };
                self.enter_inside(id, queue);
            }
            Err(stop) => {
                let out = self.refused(stop);
                self.finish(id, out, queue);
            }
        }
    }

    /// Starts the stages inside frame `id`.
    pub(super) fn enter_inside(&mut self, id: FrameId, queue: &mut Queue<T, E>) {
        let f = &self.frames[id.index as usize];
        let (stage, deadline) = (f.stage, f.deadline);
        let c = self.spawn(Some(id), stage + 1, deadline);
        self.frames[id.index as usize].kind.set_child(c);
        queue.push_back(Event::Enter(c));
    }

    /// A retry stage's next attempt: the stages inside again, or the end.
    pub(super) fn begin_attempt(
        &mut self,
        id: FrameId,
        policy: &crate::RetryPolicy,
        queue: &mut Queue<T, E>,
    ) {
        let frame = &mut self.frames[id.index as usize];
        if !matches!(frame.kind, Kind::Retry { .. }) {
            let mut state = policy.start();
            if self.once {
                state.forbid_retries();
            }
            frame.kind = Kind::Retry {
                state,
                attempt: None,
                child: None,
                last: None,
                sleeping: false,
            };
        }
        let (stage, deadline) = (frame.stage, frame.deadline);
        let Kind::Retry {
            state,
            attempt,
            last,
            ..
        } = &mut frame.kind
        else {
            unreachable!("made above")
        };
        match state.begin_attempt(policy) {
            Ok(a) => {
                let limit = a.timeout();
                *attempt = Some(a);
                if let Some(at) = limit.and_then(|l| self.pipeline.clock.now().checked_add(l)) {
                    self.arm(id, at, false);
                }
                let c = self.spawn(Some(id), stage + 1, deadline);
                self.frames[id.index as usize].kind.set_child(c);
                queue.push_back(Event::Enter(c));
            }
            Err(stop) => {
                let stop = state.abort(policy, stop);
                let out = report(stop, state.attempts().max(self.calls), last.take());
                self.finish(id, out, queue);
            }
        }
    }

    /// A stage's frame hears how the stages inside it ended.
    pub(super) fn child_done<C: Classifier<T, E>>(
        &mut self,
        id: FrameId,
        child: FrameId,
        out: Out<T, E>,
        classifier: &C,
        queue: &mut Queue<T, E>,
    ) {
        let stages = Arc::clone(&self.pipeline.stages);
        let stage = &stages[self.frames[id.index as usize].stage];
        match (&mut self.frames[id.index as usize].kind, stage) {
            (Kind::Admitted { admission, .. }, _) => {
                let admission = std::mem::take(admission);
                let outcome = match &out {
                    Ok(v) => Some(Outcome::Ok(v)),
                    Err(e) => match &e.last {
                        Some(Failure::Error(err)) => Some(Outcome::Err(err)),
                        Some(Failure::Timeout(d)) => Some(Outcome::Timeout(*d)),
                        // Refused inside: says nothing about the dependency.
                        None => None,
                    },
                };
                if let Some(o) = outcome {
                    admission.record(Score::of(&o, classifier.classify(o)).call);
                }
                self.finish(id, out, queue);
            }
            (Kind::Retry { .. }, Stage::Retry(policy)) => {
                self.retry_child_done(id, policy, out, classifier, queue)
            }
            (Kind::Hedge { .. }, Stage::Hedge(_)) => {
                self.hedge_child_done(id, child, out, classifier, queue)
            }
            _ => self.finish(id, out, queue),
        }
    }

    /// A retry stage heard how an attempt went: retry after a delay, or
    /// end.
    pub(super) fn retry_child_done<C: Classifier<T, E>>(
        &mut self,
        id: FrameId,
        policy: &crate::RetryPolicy,
        out: Out<T, E>,
        classifier: &C,
        queue: &mut Queue<T, E>,
    ) {
        let calls = self.calls;
        let now = self.pipeline.clock.now();
        let frame = &mut self.frames[id.index as usize];
        let deadline = frame.deadline;
        let Kind::Retry {
            state,
            attempt,
            child,
            last,
            sleeping,
        } = &mut frame.kind
        else {
            return;
        };
        *child = None;
        let attempt = attempt.take();
        let result = match (out, attempt) {
            (Ok(v), Some(a)) => (Ok(v), a),
            (Err(RetryError { last: Some(f), .. }), Some(a)) => (Err(f), a),
            (Err(RetryError { stop, .. }), _) => {
                // Refused inside (breaker, bulkhead, throttle): stop at once.
                let stop = state.abort(policy, stop);
                let out = report(stop, state.attempts().max(calls), last.take());
                self.finish(id, out, queue);
                return;
            }
            (Ok(v), None) => {
                let out = report(Stop::Succeeded, state.attempts().max(calls), Some(Ok(v)));
                self.finish(id, out, queue);
                return;
            }
        };
        let (result, attempt) = result;
        let (next, _) = state.on_result(policy, attempt, &result, classifier);
        let attempts = state.attempts().max(calls);
        let stop = match next {
            Next::Stop(stop) => stop,
            // A timeout outside would cut the wait short: fail fast instead.
            Next::Retry { delay } if deadline.is_some_and(|d| !RetryState::fits(now, delay, d)) => {
                state.abort(
                    policy,
                    Stop::DeadlineExceeded {
                        requested_delay: None,
                    },
                )
            }
            Next::Retry { delay } => {
                *last = Some(result);
                *sleeping = true;
                match now.checked_add(delay) {
                    Some(at) => self.arm(id, at, true),
                    None => queue.push_back(Event::Enter(id)),
                }
                return;
            }
        };
        self.finish(id, report(stop, attempts, Some(result)), queue);
    }

    /// A hedge stage heard how a copy went.
    pub(super) fn hedge_child_done<C: Classifier<T, E>>(
        &mut self,
        id: FrameId,
        child: FrameId,
        out: Out<T, E>,
        classifier: &C,
        queue: &mut Queue<T, E>,
    ) {
        let stages = Arc::clone(&self.pipeline.stages);
        let Stage::Hedge(policy) = &stages[self.frames[id.index as usize].stage] else {
            return;
        };
        let calls = self.calls;
        let Kind::Hedge {
            state,
            copies,
            last,
        } = &mut self.frames[id.index as usize].kind
        else {
            return;
        };
        let Some(pos) = copies.iter().position(|(c, _)| *c == child) else {
            return;
        };
        let (_, copy) = copies.remove(pos);
        let verdict = match &out {
            Ok(v) => Verdict::of(classifier.classify(Outcome::Ok(v)), true),
            Err(e) => match &e.last {
                Some(Failure::Error(err)) => {
                    Verdict::of(classifier.classify(Outcome::Err(err)), false)
                }
                Some(Failure::Timeout(d)) => {
                    Verdict::of(classifier.classify(Outcome::Timeout(*d)), false)
                }
                // Refused inside (breaker, bulkhead, throttle): a copy sent
                // now would be refused too.
                None => Verdict::Wait(None),
            },
        };
        if state.on_result(policy, copy, verdict).is_some() {
            let others: Vec<FrameId> = copies.drain(..).map(|(c, _)| c).collect();
            for c in others {
                self.cancel(c);
            }
            self.finish(id, with_attempts(out, calls), queue);
        } else {
            *last = Some(out);
            self.hedge(id, queue);
        }
    }

    /// Asks the hedge machine of frame `id` what to do, and does it.
    pub(super) fn hedge(&mut self, id: FrameId, queue: &mut Queue<T, E>) {
        let stages = Arc::clone(&self.pipeline.stages);
        let f = &self.frames[id.index as usize];
        let (stage, deadline) = (f.stage, f.deadline);
        let Stage::Hedge(policy) = &stages[stage] else {
            return;
        };
        loop {
            let Kind::Hedge { state, last, .. } = &mut self.frames[id.index as usize].kind else {
                return;
            };
            match state.next(policy) {
                HedgeAction::Launch => {
                    let copy = state.launched(policy);
                    let c = self.spawn(Some(id), stage + 1, deadline);
                    if let Kind::Hedge { copies, .. } = &mut self.frames[id.index as usize].kind {
                        copies.push((c, copy));
                    }
                    queue.push_back(Event::Enter(c));
                }
                HedgeAction::Wait(at) => {
                    self.disarm(id);
                    if let Some(at) = at {
                        self.arm(id, at, false);
                    }
                    return;
                }
                HedgeAction::Finish(stop) => {
                    let calls = self.calls;
                    let mut out = last.take().unwrap_or(Err(RetryError {
                        stop,
                        attempts: calls,
                        last: None,
                    }));
                    if let Err(e) = &mut out {
                        // Every copy failed: say why no more were sent. A
                        // refusal keeps its own reason, so a retry outside
                        // stops at once.
                        if e.last.is_some()
                            && matches!(stop, Stop::AttemptsExhausted | Stop::BudgetExhausted)
                        {
                            e.stop = stop;
                        }
                    }
                    self.finish(id, with_attempts(out, calls), queue);
                    return;
                }
            }
        }
    }
}

/// An error result reports every operation call made.
fn with_attempts<T, E>(mut out: Out<T, E>, calls: u32) -> Out<T, E> {
    if let Err(e) = &mut out {
        e.attempts = calls;
    }
    out
}

fn report<T, E>(stop: Stop, attempts: u32, last: Option<Result<T, Failure<E>>>) -> Out<T, E> {
    Report {
        last,
        stop,
        attempts,
    }
    .into_result()
}
