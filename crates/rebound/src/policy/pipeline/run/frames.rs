//! The frames of a running call: made, ended, cancelled; and the loop
//! that carries events between them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{FrameId, Out, PipelineAction, PipelineRun};
use crate::classify::Classifier;
use crate::hedge::{HedgeCopy, HedgeState};
use crate::policy::score::Admission;
use crate::retry::{Attempt, Failure, RetryError, RetryState, Stop};
use crate::BulkheadPermit;

pub(super) struct Frame<T, E> {
    pub(super) generation: u32,
    pub(super) live: bool,
    /// The stage this frame runs; `stages.len()` for an operation call.
    pub(super) stage: usize,
    pub(super) parent: Option<FrameId>,
    /// The earliest deadline of the timeouts outside.
    pub(super) deadline: Option<Instant>,
    /// Whether a timer of this frame is armed.
    pub(super) timer: bool,
    pub(super) kind: Kind<T, E>,
}

pub(super) enum Kind<T, E> {
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
    pub(super) fn children(&self) -> Vec<FrameId> {
        match self {
            Kind::Timeout { child, .. }
            | Kind::Retry { child, .. }
            | Kind::Pass { child, .. }
            | Kind::Admitted { child, .. } => child.iter().copied().collect(),
            Kind::Hedge { copies, .. } => copies.iter().map(|(c, _)| *c).collect(),
            Kind::Call | Kind::Queued | Kind::Ended => Vec::new(),
        }
    }

    pub(super) fn set_child(&mut self, c: FrameId) {
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
pub(super) enum Event<T, E> {
    Enter(FrameId),
    ChildDone {
        parent: FrameId,
        child: FrameId,
        out: Out<T, E>,
    },
}

pub(super) type Queue<T, E> = VecDeque<Event<T, E>>;

impl<T, E> PipelineRun<T, E> {
    pub(super) fn frame(&self, id: FrameId) -> Option<&Frame<T, E>> {
        self.frames
            .get(id.index as usize)
            .filter(|f| f.live && f.generation == id.generation)
    }

    pub(super) fn timed_out(&self, limit: Duration) -> Out<T, E> {
        Err(RetryError {
            stop: Stop::DeadlineExceeded {
                requested_delay: None,
            },
            attempts: self.calls,
            last: Some(Failure::Timeout(limit)),
        })
    }

    pub(super) fn refused(&self, stop: Stop) -> Out<T, E> {
        Err(RetryError {
            stop,
            attempts: self.calls,
            last: None,
        })
    }

    /// A new frame for `stage` under `parent`.
    pub(super) fn spawn(
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

    pub(super) fn arm(&mut self, frame: FrameId, at: Instant, idle: bool) {
        self.frames[frame.index as usize].timer = true;
        self.actions
            .push_back(PipelineAction::Timer { frame, at, idle });
    }

    pub(super) fn disarm(&mut self, frame: FrameId) {
        if std::mem::take(&mut self.frames[frame.index as usize].timer) {
            self.actions.push_back(PipelineAction::ClearTimer(frame));
        }
    }

    /// Runs the queued events and everything they lead to.
    pub(super) fn run<C: Classifier<T, E>>(&mut self, mut queue: Queue<T, E>, classifier: &C) {
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

    /// Frame `id` ended with `out`: release it and tell its parent (or end
    /// the call).
    pub(super) fn finish(&mut self, id: FrameId, out: Out<T, E>, queue: &mut Queue<T, E>) {
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
    pub(super) fn cancel(&mut self, id: FrameId) {
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
}
