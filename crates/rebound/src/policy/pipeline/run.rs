//! The sans-IO pipeline machine: one call's progress through the stages;
//! see [`PipelineRun`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bulkhead::FullReason;
use crate::classify::{Classifier, Decision, Outcome};
use crate::hedge::{HedgeAction, HedgeCopy, HedgeState, Verdict};
use crate::pipeline::{Pipeline, Stage};
use crate::policy::score::{Admission, Score};
use crate::retry::{Attempt, Failure, Next, Report, RetryError, RetryState, Stop};
use crate::{BulkheadFull, BulkheadPermit, Clock};

/// A frame of a running call: one stage's part of it, or an operation
/// call (a leaf). Ids are handed to the driver with the
/// [`PipelineAction`]s and handed back with the events; an id whose frame
/// has ended is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameId {
    index: u32,
    generation: u32,
}

/// What a driver of a [`PipelineRun`] should do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineAction {
    /// Call the operation; report its result with
    /// [`PipelineRun::on_call_done`].
    Call(FrameId),
    /// Drop the call in flight for this frame (cancelled: a timeout cut it
    /// off, or another hedged copy won).
    Cancel(FrameId),
    /// Arm (or re-arm) this frame's timer at this instant on the
    /// pipeline's clock; report it firing with
    /// [`PipelineRun::on_timer`]. `idle` marks a backoff delay, with
    /// nothing of this call in flight (see [`Clock::sleep`]).
    Timer {
        /// Whose timer.
        frame: FrameId,
        /// When it fires.
        at: Instant,
        /// An idle wait (a backoff delay) rather than a race.
        idle: bool,
    },
    /// Disarm this frame's timer.
    ClearTimer(FrameId),
    /// Wait for a slot of the bulkhead of this frame's stage (see
    /// [`PipelineRun::bulkhead`]); report it with
    /// [`PipelineRun::on_admitted`].
    Acquire(FrameId),
    /// Stop waiting for that slot.
    CancelAcquire(FrameId),
}

/// One call's progress through a [`Pipeline`]: the stages' decisions
/// composed as a plain state machine (sans-IO).
///
/// Each stage is a frame wrapping the frames of the stages after it; the
/// innermost frames are operation calls. The machine starts frames, hands
/// the driver [`PipelineAction`]s (call the operation, arm a timer, wait
/// for a bulkhead slot, cancel), and is told what happened: a call ended
/// ([`on_call_done`](Self::on_call_done)), a timer fired
/// ([`on_timer`](Self::on_timer)), a slot was granted
/// ([`on_admitted`](Self::on_admitted)). It decides everything — by
/// driving the same machines the single-policy drivers use
/// ([`RetryState`], [`HedgeState`], the breaker's and throttle's permits) —
/// and reads the time from the pipeline's clock. The closure executor, the
/// tower layer and the simulator drive it.
///
/// ```
/// use std::time::Duration;
/// use rebound::pipeline::{Pipeline, PipelineAction, PipelineRun};
/// use rebound::{Backoff, Clock, RetryErrors, RetryPolicy, Stop};
///
/// let (clock, time) = Clock::manual();
/// let retry = RetryPolicy::builder()
///     .backoff(Backoff::constant(Duration::from_millis(10)))
///     .clock(clock.clone())
///     .build()?;
/// let pipeline = Pipeline::builder().clock(clock).retry(retry).build()?;
/// let mut run = PipelineRun::<u32, &str>::new(&pipeline, false, &RetryErrors);
/// let PipelineAction::Call(first) = run.next_action().unwrap() else { panic!() };
/// run.on_call_done(first, Err("reset"), &RetryErrors);
/// // The retry waits its backoff: a timer, then the second call.
/// let Some(PipelineAction::Timer { frame, .. }) = run.next_action() else { panic!() };
/// time.advance(Duration::from_millis(10));
/// run.on_timer(frame, &RetryErrors);
/// let PipelineAction::Call(second) = run.next_action().unwrap() else { panic!() };
/// run.on_call_done(second, Ok(7), &RetryErrors);
/// assert_eq!(run.take_result().unwrap().unwrap(), 7);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
pub struct PipelineRun<T, E> {
    pipeline: Pipeline,
    frames: Vec<Frame<T, E>>,
    /// Slots of ended frames, for reuse.
    free: Vec<u32>,
    /// Operation calls started.
    calls: u32,
    /// The call may be sent once only: retry stages make one attempt and
    /// hedge stages send no copy.
    once: bool,
    /// Whether the hedge stage counted this call as a request yet.
    hedge_counted: bool,
    actions: VecDeque<PipelineAction>,
    result: Option<Out<T, E>>,
}

type Out<T, E> = Result<T, RetryError<E>>;

struct Frame<T, E> {
    generation: u32,
    live: bool,
    /// The stage this frame runs; `stages.len()` for an operation call.
    stage: usize,
    parent: Option<FrameId>,
    /// The earliest deadline of the timeouts outside.
    deadline: Option<Instant>,
    /// Whether a timer of this frame is armed.
    timer: bool,
    kind: Kind<T, E>,
}

enum Kind<T, E> {
    /// An operation call.
    Call,
    Timeout {
        limit: Duration,
        child: Option<FrameId>,
    },
    Retry {
        state: RetryState,
        attempt: Option<Attempt>,
        child: Option<FrameId>,
        last: Option<Result<T, Failure<E>>>,
        /// Waiting the backoff delay.
        sleeping: bool,
    },
    Hedge {
        state: HedgeState,
        copies: Vec<(FrameId, HedgeCopy)>,
        last: Option<Out<T, E>>,
    },
    /// A hedge stage of a call sent once, or a stage holding a bulkhead
    /// slot: the stages inside, once.
    Pass {
        child: Option<FrameId>,
        _slot: Option<BulkheadPermit>,
    },
    /// A breaker or throttle stage: its permit is told how the stages
    /// inside went.
    Admitted {
        admission: Admission,
        child: Option<FrameId>,
    },
    /// Waiting for a bulkhead slot.
    Queued,
    /// An ended frame's slot.
    Ended,
}

impl<T, E> Kind<T, E> {
    fn children(&self) -> Vec<FrameId> {
        match self {
            Kind::Timeout { child, .. }
            | Kind::Retry { child, .. }
            | Kind::Pass { child, .. }
            | Kind::Admitted { child, .. } => child.iter().copied().collect(),
            Kind::Hedge { copies, .. } => copies.iter().map(|(c, _)| *c).collect(),
            Kind::Call | Kind::Queued | Kind::Ended => Vec::new(),
        }
    }

    fn set_child(&mut self, c: FrameId) {
        match self {
            Kind::Timeout { child, .. }
            | Kind::Retry { child, .. }
            | Kind::Pass { child, .. }
            | Kind::Admitted { child, .. } => *child = Some(c),
            _ => {}
        }
    }
}

/// What happens next inside the machine.
enum Event<T, E> {
    Enter(FrameId),
    ChildDone {
        parent: FrameId,
        child: FrameId,
        out: Out<T, E>,
    },
}

type Queue<T, E> = VecDeque<Event<T, E>>;

impl<T, E> PipelineRun<T, E> {
    /// Starts a call through `pipeline`: `once` sends it once (no retries,
    /// no hedge copies), as
    /// [`ClassifiedPipeline::forbid_retries`](crate::pipeline::ClassifiedPipeline::forbid_retries)
    /// does. `classifier` judges anything that ends at once (a refusal).
    pub fn new<C: Classifier<T, E>>(pipeline: &Pipeline, once: bool, classifier: &C) -> Self {
        let mut run = PipelineRun {
            pipeline: pipeline.clone(),
            frames: Vec::with_capacity(pipeline.stages.len() + 1),
            free: Vec::new(),
            calls: 0,
            once,
            hedge_counted: false,
            actions: VecDeque::new(),
            result: None,
        };
        let root = run.spawn(None, 0, None);
        run.run(VecDeque::from([Event::Enter(root)]), classifier);
        run
    }

    /// The next thing the driver should do, if any.
    pub fn next_action(&mut self) -> Option<PipelineAction> {
        self.actions.pop_front()
    }

    /// Whether the call has ended: its result is ready.
    pub fn is_done(&self) -> bool {
        self.result.is_some()
    }

    /// The call's result, once it has ended.
    pub fn take_result(&mut self) -> Option<Out<T, E>> {
        self.result.take()
    }

    /// Operation calls started so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// The bulkhead of the stage `frame` waits on (after a
    /// [`PipelineAction::Acquire`]).
    pub fn bulkhead(&self, frame: FrameId) -> Option<&crate::Bulkhead> {
        let f = self.frame(frame)?;
        match &self.pipeline.stages[f.stage] {
            Stage::Bulkhead(b) => Some(b),
            _ => None,
        }
    }

    /// The pipeline's clock, on which every timer is armed.
    pub fn clock(&self) -> &Clock {
        &self.pipeline.clock
    }

    /// Tells the machine that the operation call of `frame` ended with
    /// `result`.
    pub fn on_call_done<C: Classifier<T, E>>(
        &mut self,
        frame: FrameId,
        result: Result<T, E>,
        classifier: &C,
    ) {
        if self.frame(frame).is_none() {
            return;
        }
        let out = match result {
            Ok(v) => Ok(v),
            Err(e) => {
                let stop = match classifier.classify(Outcome::Err(&e)) {
                    Decision::DoNotRetry => Stop::Permanent,
                    _ => Stop::AttemptsExhausted,
                };
                Err(RetryError {
                    stop,
                    attempts: self.calls,
                    last: Some(Failure::Error(e)),
                })
            }
        };
        let mut queue = VecDeque::new();
        self.finish(frame, out, &mut queue);
        self.run(queue, classifier);
    }

    /// Tells the machine that the timer of `frame` fired.
    pub fn on_timer<C: Classifier<T, E>>(&mut self, frame: FrameId, classifier: &C) {
        if self.frame(frame).is_none() {
            return;
        }
        let mut queue = VecDeque::new();
        let f = &mut self.frames[frame.index as usize];
        f.timer = false;
        match &mut f.kind {
            Kind::Timeout { limit, child } => {
                let (limit, child) = (*limit, child.take());
                if let Some(c) = child {
                    self.cancel(c);
                }
                crate::telemetry::incr(
                    crate::telemetry::DEPENDENCY_TIMEOUT_TOTAL,
                    &self.pipeline.dependency,
                );
                let out = self.timed_out(limit);
                self.finish(frame, out, &mut queue);
            }
            Kind::Retry {
                sleeping: sleeping @ true,
                ..
            } => {
                *sleeping = false;
                queue.push_back(Event::Enter(frame));
            }
            Kind::Retry { attempt, child, .. } => {
                // The attempt's timeout: cut the stages inside off.
                let limit = attempt
                    .as_ref()
                    .and_then(Attempt::timeout)
                    .unwrap_or_default();
                if let Some(c) = child.take() {
                    self.cancel(c);
                    let out = self.timed_out(limit);
                    queue.push_back(Event::ChildDone {
                        parent: frame,
                        child: c,
                        out,
                    });
                }
            }
            Kind::Hedge { state, .. } => {
                state.on_timer();
                self.hedge(frame, &mut queue);
            }
            _ => {}
        }
        self.run(queue, classifier);
    }

    /// Tells the machine that the bulkhead `frame` waited on granted a
    /// slot, or refused.
    pub fn on_admitted<C: Classifier<T, E>>(
        &mut self,
        frame: FrameId,
        slot: Result<BulkheadPermit, BulkheadFull>,
        classifier: &C,
    ) {
        if self.frame(frame).is_none() {
            return;
        }
        let mut queue = VecDeque::new();
        match slot {
            Ok(p) => {
                self.frames[frame.index as usize].kind = Kind::Pass {
                    child: None,
                    _slot: Some(p),
                };
                self.enter_inside(frame, &mut queue);
            }
            Err(_) => {
                let out = self.refused(Stop::BulkheadFull);
                self.finish(frame, out, &mut queue);
            }
        }
        self.run(queue, classifier);
    }

    fn frame(&self, id: FrameId) -> Option<&Frame<T, E>> {
        self.frames
            .get(id.index as usize)
            .filter(|f| f.live && f.generation == id.generation)
    }

    fn timed_out(&self, limit: Duration) -> Out<T, E> {
        Err(RetryError {
            stop: Stop::DeadlineExceeded {
                requested_delay: None,
            },
            attempts: self.calls,
            last: Some(Failure::Timeout(limit)),
        })
    }

    fn refused(&self, stop: Stop) -> Out<T, E> {
        Err(RetryError {
            stop,
            attempts: self.calls,
            last: None,
        })
    }

    /// A new frame for `stage` under `parent`.
    fn spawn(
        &mut self,
        parent: Option<FrameId>,
        stage: usize,
        deadline: Option<Instant>,
    ) -> FrameId {
        let mut frame = Frame {
            generation: 0,
            live: true,
            stage,
            parent,
            deadline,
            timer: false,
            kind: Kind::Call,
        };
        let index = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.frames[i as usize];
                frame.generation = slot.generation.wrapping_add(1);
                *slot = frame;
                i
            }
            None => {
                self.frames.push(frame);
                (self.frames.len() - 1) as u32
            }
        };
        FrameId {
            index,
            generation: self.frames[index as usize].generation,
        }
    }

    fn arm(&mut self, frame: FrameId, at: Instant, idle: bool) {
        self.frames[frame.index as usize].timer = true;
        self.actions
            .push_back(PipelineAction::Timer { frame, at, idle });
    }

    fn disarm(&mut self, frame: FrameId) {
        if std::mem::take(&mut self.frames[frame.index as usize].timer) {
            self.actions.push_back(PipelineAction::ClearTimer(frame));
        }
    }

    /// Runs the queued events and everything they lead to.
    fn run<C: Classifier<T, E>>(&mut self, mut queue: Queue<T, E>, classifier: &C) {
        while let Some(event) = queue.pop_front() {
            match event {
                Event::Enter(frame) => {
                    if self.frame(frame).is_some() {
                        self.enter(frame, &mut queue);
                    }
                }
                Event::ChildDone { parent, child, out } => {
                    if self.frame(parent).is_some() {
                        self.child_done(parent, child, out, classifier, &mut queue);
                    }
                }
            }
        }
    }

    /// Starts frame `id`: its stage's work before the stages inside.
    fn enter(&mut self, id: FrameId, queue: &mut Queue<T, E>) {
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
    fn pass(&mut self, id: FrameId, slot: Option<BulkheadPermit>, queue: &mut Queue<T, E>) {
        self.frames[id.index as usize].kind = Kind::Pass {
            child: None,
            _slot: slot,
        };
        self.enter_inside(id, queue);
    }

    /// A breaker or throttle stage: admitted, or refused.
    fn admit(&mut self, id: FrameId, asked: Result<Admission, Stop>, queue: &mut Queue<T, E>) {
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
    fn enter_inside(&mut self, id: FrameId, queue: &mut Queue<T, E>) {
        let f = &self.frames[id.index as usize];
        let (stage, deadline) = (f.stage, f.deadline);
        let c = self.spawn(Some(id), stage + 1, deadline);
        self.frames[id.index as usize].kind.set_child(c);
        queue.push_back(Event::Enter(c));
    }

    /// A retry stage's next attempt: the stages inside again, or the end.
    fn begin_attempt(&mut self, id: FrameId, policy: &crate::RetryPolicy, queue: &mut Queue<T, E>) {
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

    /// Frame `id` ended with `out`: release it and tell its parent (or end
    /// the call).
    fn finish(&mut self, id: FrameId, out: Out<T, E>, queue: &mut Queue<T, E>) {
        self.disarm(id);
        let f = &mut self.frames[id.index as usize];
        f.live = false;
        // Permits the frame holds are given back unscored.
        f.kind = Kind::Ended;
        let parent = f.parent;
        self.free.push(id.index);
        match parent {
            Some(parent) => queue.push_back(Event::ChildDone {
                parent,
                child: id,
                out,
            }),
            None => self.result = Some(out),
        }
    }

    /// Cancels frame `id` and everything inside it.
    fn cancel(&mut self, id: FrameId) {
        if self.frame(id).is_none() {
            return;
        }
        let kind = &self.frames[id.index as usize].kind;
        let children = kind.children();
        let cancel = match kind {
            Kind::Call => Some(PipelineAction::Cancel(id)),
            Kind::Queued => Some(PipelineAction::CancelAcquire(id)),
            _ => None,
        };
        for c in children {
            self.cancel(c);
        }
        self.actions.extend(cancel);
        self.disarm(id);
        let f = &mut self.frames[id.index as usize];
        f.live = false;
        f.kind = Kind::Ended;
        self.free.push(id.index);
    }

    /// A stage's frame hears how the stages inside it ended.
    fn child_done<C: Classifier<T, E>>(
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
    fn retry_child_done<C: Classifier<T, E>>(
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
    fn hedge_child_done<C: Classifier<T, E>>(
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
    fn hedge(&mut self, id: FrameId, queue: &mut Queue<T, E>) {
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

impl<T, E> std::fmt::Debug for PipelineRun<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineRun")
            .field("calls", &self.calls)
            .field("frames", &self.frames.iter().filter(|f| f.live).count())
            .field("done", &self.result.is_some())
            .finish_non_exhaustive()
    }
}
