//! The breaker's lock-free core: the packed state word, the window, the
//! transitions.

use std::time::{Duration, Instant};

use super::builder::Config;
use super::outcome_window::Window;
use super::state::{Word, CLOSED, DISABLED, HALF_OPEN, ISOLATED, OPEN};
use super::{BreakerOpen, CallOutcome, State, Transition, TransitionCause};
use crate::infra::sync::{AtomicU64, Mutex, Ordering};
use crate::telemetry;

pub(super) struct Inner {
    pub(super) cfg: Config,
    pub(super) origin: Instant,
    /// The packed [`Word`]: kind, probe counts, generation.
    pub(super) state: AtomicU64,
    /// Nanoseconds after `origin` when the current opening ends. Written
    /// under `lock` before the open state is published.
    pub(super) open_until: AtomicU64,
    /// Failures in a row: `gen16 << 48 | count`.
    pub(super) consecutive: AtomicU64,
    pub(super) window: Window,
    pub(super) lock: Mutex<Guarded>,
    /// `circuit_breaker_rejected_total`, labelled once: rejections are hot
    /// while the breaker is open.
    pub(super) rejected: telemetry::CounterKey,
}

/// What only transitions touch.
pub(super) struct Guarded {
    /// Openings since the breaker last closed (drives break growth).
    pub(super) openings: u32,
    pub(super) rng: Option<fastrand::Rng>,
}

/// What the breaker remembers about an admitted call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    pub(super) gen: u32,
    pub(super) kind: TicketKind,
    pub(super) started: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TicketKind {
    Closed,
    Probe,
    Passthrough,
}

const G16_SHIFT: u32 = 48;
const RUN_MASK: u64 = (1 << G16_SHIFT) - 1;

impl Inner {
    /// A closed breaker with an empty window.
    pub(super) fn new(cfg: Config) -> Self {
        let origin = cfg.clock.now();
        let window = Window::new(cfg.window, &cfg.clock);
        let rejected = telemetry::CounterKey::hosted(
            telemetry::CIRCUIT_BREAKER_REJECTED_TOTAL,
            &cfg.dependency,
            cfg.host.as_ref(),
            None,
        );
        Inner {
            rejected,
            cfg,
            origin,
            state: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            consecutive: AtomicU64::new(0),
            window,
            lock: Mutex::new(Guarded {
                openings: 0,
                rng: None,
            }),
        }
    }

    #[inline]
    pub(super) fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    pub(super) fn started(&self) -> Option<Instant> {
        self.cfg.slow_call_duration.map(|_| self.cfg.clock.now())
    }

    #[inline]
    pub(super) fn acquire(&self) -> Result<Ticket, BreakerOpen> {
        loop {
            let raw = self.state.load(Ordering::Acquire);
            let w = Word::unpack(raw);
            match w.kind {
                CLOSED => {
                    return Ok(Ticket {
                        gen: w.gen,
                        kind: TicketKind::Closed,
                        started: self.started(),
                    })
                }
                DISABLED => {
                    return Ok(Ticket {
                        gen: w.gen,
                        kind: TicketKind::Passthrough,
                        started: None,
                    })
                }
                ISOLATED => return Err(self.reject(State::Isolated, None)),
                OPEN => {
                    let now = self.cfg.clock.now();
                    let at = self.nanos(now);
                    let until = self.open_until.load(Ordering::Acquire);
                    if at < until {
                        return Err(
                            self.reject(State::Open, Some(Duration::from_nanos(until - at)))
                        );
                    }
                    if let Some(ticket) = self.half_open(raw, now) {
                        return Ok(ticket);
                    }
                }
                _ => {
                    if w.reserved >= self.cfg.half_open_probes {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    let next = Word {
                        reserved: w.reserved + 1,
                        ..w
                    };
                    if self
                        .state
                        .compare_exchange(raw, next.pack(), Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return Ok(Ticket {
                            gen: w.gen,
                            kind: TicketKind::Probe,
                            started: self.started(),
                        });
                    }
                }
            }
        }
    }

    #[cold]
    pub(super) fn reject(&self, state: State, retry_in: Option<Duration>) -> BreakerOpen {
        self.rejected.incr();
        BreakerOpen { state, retry_in }
    }

    /// Open → HalfOpen, taking the first probe slot for the caller. `None`
    /// when the state moved on meanwhile (the caller looks again).
    #[cold]
    pub(super) fn half_open(&self, raw: u64, now: Instant) -> Option<Ticket> {
        let mut g = self.guard();
        if self.state.load(Ordering::Acquire) != raw {
            return None;
        }
        let t = self.transition(&mut g, raw, HALF_OPEN, TransitionCause::BreakElapsed, now)?;
        drop(g);
        self.notify(&t);
        Some(Ticket {
            gen: t.generation,
            kind: TicketKind::Probe,
            started: self.started(),
        })
    }

    pub(super) fn guard(&self) -> crate::infra::sync::MutexGuard<'_, Guarded> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves from exactly the state word `raw` to a new state `to`, under the
    /// lock. Lock-free writers (probe reserve and release) may change the
    /// probe counts meanwhile; the generation and kind cannot change. Returns
    /// `None` if the generation or kind differ from `raw`'s.
    pub(super) fn transition(
        &self,
        g: &mut Guarded,
        raw: u64,
        to: u64,
        cause: TransitionCause,
        now: Instant,
    ) -> Option<Transition> {
        let from = Word::unpack(raw);
        let mut cur = raw;
        loop {
            let w = Word::unpack(cur);
            if w.kind != from.kind || w.gen != from.gen {
                return None;
            }
            let mut next = w.next(to);
            let mut break_duration = None;
            match to {
                OPEN => {
                    let n = g.openings.saturating_add(1);
                    let rng = g.rng.get_or_insert_with(|| self.cfg.random.rng());
                    let d = self.cfg.jittered(self.cfg.break_for(n), rng);
                    self.open_until.store(
                        self.nanos(now).saturating_add(d.as_nanos() as u64),
                        Ordering::Release,
                    );
                    break_duration = Some(d);
                }
                HALF_OPEN => next.reserved = 1,
                CLOSED => {
                    self.window.reset(next.gen);
                    self.consecutive
                        .store(u64::from(next.gen & 0xFFFF) << G16_SHIFT, Ordering::Release);
                }
                _ => {}
            }
            match self
                .state
                .compare_exchange(cur, next.pack(), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    match to {
                        OPEN => g.openings = g.openings.saturating_add(1),
                        CLOSED => g.openings = 0,
                        _ => {}
                    }
                    let t = Transition {
                        from: w.state(),
                        to: next.state(),
                        at: now,
                        cause,
                        generation: next.gen,
                        break_duration,
                    };
                    self.emit(&t);
                    return Some(t);
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Telemetry of a transition, under the lock so the gauge ends on the
    /// last state.
    pub(super) fn emit(&self, t: &Transition) {
        let dep = &self.cfg.dependency;
        let host = self.cfg.host.as_ref();
        metrics::gauge!(
            telemetry::CIRCUIT_BREAKER_STATE,
            telemetry::labels(dep, host)
        )
        .set(t.to.gauge_value());
        if t.to == State::Open {
            telemetry::incr_hosted(telemetry::CIRCUIT_BREAKER_OPEN_TOTAL, dep, host, None);
            tracing::warn!(
                dependency = &**dep,
                host = host.map(|h| &**h),
                from = t.from.as_str(),
                cause = t.cause.as_str(),
                break_duration = ?t.break_duration,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                dependency = &**dep,
                host = host.map(|h| &**h),
                from = t.from.as_str(),
                to = t.to.as_str(),
                cause = t.cause.as_str(),
                "circuit breaker state changed"
            );
        }
    }

    pub(super) fn notify(&self, t: &Transition) {
        for l in &self.cfg.listeners {
            l(t);
        }
    }

    pub(super) fn force(&self, to: u64) {
        let now = self.cfg.clock.now();
        let mut g = self.guard();
        let raw = self.state.load(Ordering::Acquire);
        let from = Word::unpack(raw).kind;
        if from == to && to != CLOSED {
            return;
        }
        let t = self.transition(&mut g, raw, to, TransitionCause::Manual, now);
        drop(g);
        if let Some(t) = t.filter(|t| t.from != t.to) {
            self.notify(&t);
        }
    }

    #[inline]
    pub(super) fn record(&self, ticket: Ticket, outcome: CallOutcome, elapsed: Option<Duration>) {
        let failure = outcome == CallOutcome::Failure;
        let slow = match self.cfg.slow_call_duration {
            None => false,
            Some(threshold) => {
                let e = elapsed.or_else(|| {
                    ticket
                        .started
                        .map(|s| self.cfg.clock.now().saturating_duration_since(s))
                });
                e.is_some_and(|e| e >= threshold)
            }
        };
        match ticket.kind {
            TicketKind::Passthrough => {}
            TicketKind::Closed => self.record_closed(ticket.gen, failure, slow),
            TicketKind::Probe => self.record_probe(ticket.gen, failure, slow),
        }
    }

    #[inline]
    pub(super) fn record_closed(&self, gen: u32, failure: bool, slow: bool) {
        let w = Word::unpack(self.state.load(Ordering::Acquire));
        if w.kind != CLOSED || w.gen != gen {
            return; // admitted under an older state
        }
        let cfg = &self.cfg;
        let mut cause = None;
        if let Some(n) = cfg.consecutive_failures {
            if failure {
                if self.bump_run(gen) >= u64::from(n) {
                    cause = Some(TransitionCause::ConsecutiveFailures);
                }
            } else {
                self.clear_run(gen);
            }
        }
        let want = failure || slow;
        if let Some(t) = self.window.record(gen, failure, slow, want) {
            if cause.is_none() && t.calls >= u64::from(cfg.min_calls) {
                let calls = t.calls as f64;
                if t.failures > 0 && t.failures as f64 >= cfg.failure_ratio * calls {
                    cause = Some(TransitionCause::FailureRatio);
                } else if cfg.slow_call_duration.is_some()
                    && t.slow > 0
                    && t.slow as f64 >= cfg.slow_call_ratio * calls
                {
                    cause = Some(TransitionCause::SlowCallRatio);
                }
            }
        }
        if let Some(cause) = cause {
            self.trip(gen, CLOSED, cause, cfg.clock.now());
        }
    }

    /// One more failure in a row; returns the run's length.
    #[inline]
    pub(super) fn bump_run(&self, gen: u32) -> u64 {
        let tag = u64::from(gen & 0xFFFF) << G16_SHIFT;
        let prev = self
            .consecutive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(if w & !RUN_MASK == tag { w + 1 } else { tag | 1 })
            })
            .unwrap_or(0);
        if prev & !RUN_MASK == tag {
            (prev & RUN_MASK) + 1
        } else {
            1
        }
    }

    /// A success ends the run. Reads first, so the common case (no run)
    /// writes nothing.
    #[inline]
    pub(super) fn clear_run(&self, gen: u32) {
        let w = self.consecutive.load(Ordering::Relaxed);
        if w & RUN_MASK != 0 {
            let tag = u64::from(gen & 0xFFFF) << G16_SHIFT;
            let _ = self
                .consecutive
                .compare_exchange(w, tag, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    #[cold]
    pub(super) fn trip(&self, gen: u32, kind: u64, cause: TransitionCause, now: Instant) {
        let mut g = self.guard();
        let raw = self.state.load(Ordering::Acquire);
        let w = Word::unpack(raw);
        if w.kind != kind || w.gen != gen {
            return; // another thread got there first
        }
        let t = self.transition(&mut g, raw, OPEN, cause, now);
        drop(g);
        if let Some(t) = t {
            self.notify(&t);
        }
    }

    #[cold]
    pub(super) fn record_probe(&self, gen: u32, failure: bool, slow: bool) {
        let now = self.cfg.clock.now();
        if failure || slow {
            return self.trip(gen, HALF_OPEN, TransitionCause::ProbeFailed, now);
        }
        let mut g = self.guard();
        loop {
            let raw = self.state.load(Ordering::Acquire);
            let w = Word::unpack(raw);
            if w.kind != HALF_OPEN || w.gen != gen {
                return; // stale: the half-open period this probe belonged to ended
            }
            if w.successes + 1 >= self.cfg.half_open_probes {
                let t = self.transition(&mut g, raw, CLOSED, TransitionCause::ProbesSucceeded, now);
                drop(g);
                if let Some(t) = t {
                    self.notify(&t);
                }
                return;
            }
            let next = Word {
                successes: w.successes + 1,
                ..w
            };
            if self
                .state
                .compare_exchange(raw, next.pack(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// A permit dropped without an outcome: a probe gives its slot back.
    #[inline]
    pub(super) fn release(&self, ticket: Ticket) {
        if ticket.kind != TicketKind::Probe {
            return;
        }
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |raw| {
                let w = Word::unpack(raw);
                (w.kind == HALF_OPEN && w.gen == ticket.gen && w.reserved > w.successes).then(
                    || {
                        Word {
                            reserved: w.reserved - 1,
                            ..w
                        }
                        .pack()
                    },
                )
            });
    }
}
