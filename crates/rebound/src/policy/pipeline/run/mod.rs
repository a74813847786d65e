//! The sans-IO pipeline machine: one call's progress through the stages;
//! see [`PipelineRun`]. The frames and their events are in `frames`, each
//! stage's decisions in `stages`.

use std::collections::VecDeque;
use std::time::Instant;

use crate::classify::{Classifier, Decision, Outcome};
use crate::pipeline::{Pipeline, Stage};
use crate::retry::{Attempt, Failure, RetryError, Stop};
use crate::{BulkheadFull, BulkheadPermit, Clock};

mod frames;
mod stages;

use frames::{Event, Frame, Kind};

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
/// ([`RetryState`](crate::RetryState), [`HedgeState`](crate::hedge::HedgeState), the breaker's and throttle's permits) —
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
