//! The pipeline driver: does what [`PipelineRun`] says.
//!
//! [`Runner`] is the one loop of "take the machine's actions, call, arm
//! timers, wait for bulkhead slots, tell the machine what happened" — driven
//! by the closure API here and by the tower
//! [`PipelineLayer`](crate::tower::pipeline::PipelineLayer), each starting
//! calls through a [`Launch`]. Nothing is spawned: dropping the runner drops
//! (cancels) every call, timer and wait in flight.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::classify::{Classifier, RetryErrors};
use crate::clock::Timer;
use crate::driver::launch::{Calls, Launch};
use crate::pipeline::{FrameId, Pipeline, PipelineAction, PipelineRun};
use crate::retry::RetryError;
use crate::{BulkheadFull, BulkheadPermit};

type SlotWait = Pin<Box<dyn Future<Output = Result<BulkheadPermit, BulkheadFull>> + Send>>;

/// One call through a pipeline, and the I/O in flight for it.
pub(crate) struct Runner<T, E, F> {
    run: PipelineRun<T, E>,
    /// Calls to start once the launcher is ready.
    to_call: VecDeque<FrameId>,
    calls: Vec<(FrameId, Pin<Box<F>>)>,
    timers: Vec<(FrameId, Pin<Box<Timer>>)>,
    waits: Vec<(FrameId, SlotWait)>,
}

impl<T, E, F> Runner<T, E, F>
where
    F: Future<Output = Result<T, E>>,
{
    /// Starts a call through `pipeline` (once only, when `once`).
    pub(crate) fn new<C: Classifier<T, E>>(
        pipeline: &Pipeline,
        once: bool,
        classifier: &C,
    ) -> Self {
        Runner {
            run: PipelineRun::new(pipeline, once, classifier),
            to_call: VecDeque::new(),
            calls: Vec::new(),
            timers: Vec::new(),
            waits: Vec::new(),
        }
    }

    /// Drives the call: ready with its result.
    pub(crate) fn poll_run<L, C>(
        &mut self,
        cx: &mut Context<'_>,
        launch: &mut L,
        classifier: &C,
    ) -> Poll<Result<T, RetryError<E>>>
    where
        L: Launch<Copy = F>,
        C: Classifier<T, E>,
    {
        loop {
            self.apply();
            if let Some(out) = self.run.take_result() {
                return Poll::Ready(out);
            }
            if !self.poll_io(cx, launch, classifier) {
                return Poll::Pending;
            }
        }
    }

    /// Does what the machine asked.
    fn apply(&mut self) {
        while let Some(action) = self.run.next_action() {
            match action {
                PipelineAction::Call(id) => self.to_call.push_back(id),
                PipelineAction::Cancel(id) => {
                    self.to_call.retain(|c| *c != id);
                    self.calls.retain(|(c, _)| *c != id);
                }
                PipelineAction::Timer { frame, at, idle } => {
                    match self.timers.iter_mut().find(|(f, _)| *f == frame) {
                        Some((_, t)) if idle => t.as_mut().reset_idle_at(at),
                        Some((_, t)) => t.as_mut().reset(at),
                        None => {
                            let clock = self.run.clock();
                            let mut t = Box::pin(clock.timer(at));
                            if idle {
                                t.as_mut().reset_idle_at(at);
                            }
                            self.timers.push((frame, t));
                        }
                    }
                }
                PipelineAction::ClearTimer(frame) => self.timers.retain(|(f, _)| *f != frame),
                PipelineAction::Acquire(frame) => {
                    if let Some(b) = self.run.bulkhead(frame) {
                        let b = b.clone();
                        self.waits
                            .push((frame, Box::pin(async move { b.acquire().await })));
                    }
                }
                PipelineAction::CancelAcquire(frame) => self.waits.retain(|(f, _)| *f != frame),
            }
        }
    }

    /// Starts the calls the launcher is ready for and polls everything in
    /// flight, telling the machine of the first event; `false` when nothing
    /// happened.
    fn poll_io<L, C>(&mut self, cx: &mut Context<'_>, launch: &mut L, classifier: &C) -> bool
    where
        L: Launch<Copy = F>,
        C: Classifier<T, E>,
    {
        while let Some(&id) = self.to_call.front() {
            match launch.poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(())) => {
                    self.to_call.pop_front();
                    self.calls.push((id, Box::pin(launch.launch())));
                }
                Poll::Ready(Err(refused)) => {
                    self.to_call.pop_front();
                    self.run.on_call_done(id, refused, classifier);
                    return true;
                }
            }
        }
        // In launch order: of two calls ending in the same pass, the
        // later-started one is told last.
        for i in 0..self.calls.len() {
            if let Poll::Ready(r) = self.calls[i].1.as_mut().poll(cx) {
                let (id, _) = self.calls.remove(i);
                self.run.on_call_done(id, r, classifier);
                return true;
            }
        }
        for i in 0..self.timers.len() {
            if self.timers[i].1.as_mut().poll(cx).is_ready() {
                let (id, _) = self.timers.remove(i);
                self.run.on_timer(id, classifier);
                return true;
            }
        }
        for i in 0..self.waits.len() {
            if let Poll::Ready(slot) = self.waits[i].1.as_mut().poll(cx) {
                let (id, _) = self.waits.remove(i);
                self.run.on_admitted(id, slot, classifier);
                return true;
            }
        }
        false
    }
}

impl Pipeline {
    /// Runs `op` through the pipeline, every error and timeout counting as
    /// transient. The error says why the pipeline stopped, how many times
    /// `op` ran, and carries the last failure.
    pub async fn execute<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.classify(RetryErrors).execute(op).await
    }
}

/// A [`Pipeline`] bound to a classifier; from [`Pipeline::classify`].
#[derive(Debug, Clone)]
pub struct ClassifiedPipeline<'p, C> {
    pub(crate) pipeline: &'p Pipeline,
    pub(crate) classifier: C,
    /// Run the call once: no retries, no hedge copies.
    pub(crate) once: bool,
}

impl<C> ClassifiedPipeline<'_, C> {
    /// Runs the call once, for an operation that must not be sent twice (a
    /// write without an idempotency key): each retry stage makes one
    /// attempt — a transient failure stops it with
    /// [`Stop::NotRetryable`](crate::Stop::NotRetryable) — and each hedge
    /// stage sends no extra copy. Timeouts, the circuit breaker, the
    /// bulkhead and the throttle apply as to any call.
    pub fn forbid_retries(mut self) -> Self {
        self.once = true;
        self
    }

    /// Runs `op` through the pipeline; see [`Pipeline::execute`].
    pub async fn execute<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        C: Classifier<T, E>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut calls = Calls(op);
        let mut runner = Runner::new(self.pipeline, self.once, &self.classifier);
        std::future::poll_fn(|cx| runner.poll_run(cx, &mut calls, &self.classifier)).await
    }
}
