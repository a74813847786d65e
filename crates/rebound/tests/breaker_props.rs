//! Property test: random sequences of calls (successes, failures, slow
//! calls), cancellations and clock advances drive the real breaker and a
//! plain reference model side by side; they must agree after every step.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use rebound::breaker::{BreakGrowth, CallOutcome, Permit, State};
use rebound::{CircuitBreaker, Clock, ManualClock};

const SLOW_MS: u64 = 300;
const BREAK_MS: u64 = 1_000;
const MAX_BREAK_MS: u64 = 2_500;

#[derive(Debug, Clone)]
struct Cfg {
    ratio: f64,
    min_calls: u32,
    /// `Ok(n)`: count window of n calls; `Err((buckets, bucket_ms))`: time window.
    window: Result<u32, (u32, u64)>,
    probes: u32,
    consecutive: Option<u32>,
    slow: Option<f64>,
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Finish {
        idx: usize,
        failure: bool,
        slow: bool,
    },
    Cancel {
        idx: usize,
    },
    Advance {
        ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MState {
    Closed,
    Open { until: u64 },
    HalfOpen { reserved: u32, successes: u32 },
}

#[derive(Debug, Clone, Copy)]
struct MPermit {
    gen: u32,
    probe: bool,
    started: u64,
}

/// The reference model: obvious code, no concurrency, no packing.
struct Model {
    cfg: Cfg,
    state: MState,
    gen: u32,
    /// (time ms, failure, slow), oldest first.
    window: VecDeque<(u64, bool, bool)>,
    openings: u32,
    run: u32,
}

impl Model {
    fn in_window(&self, now: u64) -> Vec<(bool, bool)> {
        match self.cfg.window {
            Ok(_) => self.window.iter().map(|&(_, f, s)| (f, s)).collect(),
            Err((buckets, bucket_ms)) => {
                let e = now / bucket_ms;
                self.window
                    .iter()
                    .filter(|(t, _, _)| t / bucket_ms + u64::from(buckets) > e)
                    .map(|&(_, f, s)| (f, s))
                    .collect()
            }
        }
    }

    fn open(&mut self, now: u64) {
        self.openings += 1;
        let d = (BREAK_MS * u64::from(self.openings)).min(MAX_BREAK_MS);
        self.state = MState::Open { until: now + d };
        self.gen += 1;
    }

    fn close(&mut self) {
        self.state = MState::Closed;
        self.gen += 1;
        self.window.clear();
        self.openings = 0;
        self.run = 0;
    }

    fn acquire(&mut self, now: u64) -> Option<MPermit> {
        match self.state {
            MState::Closed => Some(MPermit {
                gen: self.gen,
                probe: false,
                started: now,
            }),
            MState::Open { until } if now < until => None,
            MState::Open { .. } => {
                self.gen += 1;
                self.state = MState::HalfOpen {
                    reserved: 1,
                    successes: 0,
                };
                Some(MPermit {
                    gen: self.gen,
                    probe: true,
                    started: now,
                })
            }
            MState::HalfOpen {
                reserved,
                successes,
            } => {
                if reserved >= self.cfg.probes {
                    return None;
                }
                self.state = MState::HalfOpen {
                    reserved: reserved + 1,
                    successes,
                };
                Some(MPermit {
                    gen: self.gen,
                    probe: true,
                    started: now,
                })
            }
        }
    }

    fn finish(&mut self, p: MPermit, failure: bool, now: u64) {
        let slow = self.cfg.slow.is_some() && now - p.started >= SLOW_MS;
        if p.gen != self.gen {
            return;
        }
        match self.state {
            MState::Closed if !p.probe => {
                let mut trip = false;
                if let Some(n) = self.cfg.consecutive {
                    if failure {
                        self.run += 1;
                        trip = self.run >= n;
                    } else {
                        self.run = 0;
                    }
                }
                if let Ok(n) = self.cfg.window {
                    if self.window.len() == n as usize {
                        self.window.pop_front();
                    }
                }
                self.window.push_back((now, failure, slow));
                if failure || slow {
                    let w = self.in_window(now);
                    let calls = w.len() as f64;
                    let fails = w.iter().filter(|(f, _)| *f).count();
                    let slows = w.iter().filter(|(_, s)| *s).count();
                    if w.len() as u32 >= self.cfg.min_calls {
                        if fails > 0 && fails as f64 >= self.cfg.ratio * calls {
                            trip = true;
                        }
                        if let Some(sr) = self.cfg.slow {
                            if slows > 0 && slows as f64 >= sr * calls {
                                trip = true;
                            }
                        }
                    }
                }
                if trip {
                    self.open(now);
                }
            }
            MState::HalfOpen {
                reserved,
                successes,
            } if p.probe => {
                if failure || slow {
                    self.open(now);
                } else if successes + 1 >= self.cfg.probes {
                    self.close();
                } else {
                    self.state = MState::HalfOpen {
                        reserved,
                        successes: successes + 1,
                    };
                }
            }
            _ => {}
        }
    }

    fn cancel(&mut self, p: MPermit) {
        if let MState::HalfOpen {
            reserved,
            successes,
        } = self.state
        {
            if p.probe && p.gen == self.gen {
                self.state = MState::HalfOpen {
                    reserved: reserved - 1,
                    successes,
                };
            }
        }
    }
}

fn cfg_strategy() -> impl Strategy<Value = Cfg> {
    (
        prop::sample::select(vec![0.0, 0.25, 0.5, 0.75, 1.0]),
        1u32..=6,
        prop_oneof![
            (1u32..=8).prop_map(Ok),
            ((1u32..=4), (50u64..=500)).prop_map(Err)
        ],
        1u32..=3,
        prop::option::of(1u32..=4),
        prop::option::of(prop::sample::select(vec![0.0, 0.5, 1.0])),
    )
        .prop_map(|(ratio, min_calls, window, probes, consecutive, slow)| {
            let min_calls = match window {
                Ok(n) => min_calls.min(n),
                Err(_) => min_calls,
            };
            Cfg {
                ratio,
                min_calls,
                window,
                probes,
                consecutive,
                slow,
            }
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    ops_failing(0.5)
}

/// Ops whose finished calls fail with probability `p_fail`. A low `p_fail`
/// keeps count windows full of successes for long stretches, where the
/// breaker skips writing the window (`src/breaker/window.rs`).
fn ops_failing(p_fail: f64) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), prop::bool::weighted(p_fail), prop::bool::weighted(0.2))
            .prop_map(|(idx, failure, slow)| Op::Finish { idx, failure, slow }),
        1 => any::<usize>().prop_map(|idx| Op::Cancel { idx }),
        2 => prop_oneof![Just(10u64), Just(100), Just(400), Just(1_000), Just(3_000)]
            .prop_map(|ms| Op::Advance { ms }),
    ]
}

fn build(cfg: &Cfg) -> (CircuitBreaker, ManualClock) {
    let (clock, time) = Clock::manual();
    let mut b = CircuitBreaker::builder()
        .failure_ratio(cfg.ratio)
        .min_calls(cfg.min_calls)
        .half_open_probes(cfg.probes)
        .break_duration(Duration::from_millis(BREAK_MS))
        .break_growth(BreakGrowth::Linear)
        .max_break_duration(Duration::from_millis(MAX_BREAK_MS))
        .clock(clock);
    b = match cfg.window {
        Ok(n) => b.count_window(n),
        Err((buckets, bucket_ms)) => b.time_window(
            Duration::from_millis(bucket_ms * u64::from(buckets)),
            buckets,
        ),
    };
    if let Some(n) = cfg.consecutive {
        b = b.consecutive_failures(n);
    }
    if let Some(r) = cfg.slow {
        b = b
            .slow_call_duration(Duration::from_millis(SLOW_MS))
            .slow_call_ratio(r);
    }
    (b.build().unwrap(), time)
}

fn check(cb: &CircuitBreaker, m: &Model, now: u64) -> Result<(), TestCaseError> {
    let s = cb.snapshot();
    match m.state {
        MState::Closed => {
            prop_assert_eq!(s.state, State::Closed);
            let w = m.in_window(now);
            prop_assert_eq!(s.calls, w.len() as u64);
            prop_assert_eq!(s.failures, w.iter().filter(|(f, _)| *f).count() as u64);
            prop_assert_eq!(s.slow_calls, w.iter().filter(|(_, x)| *x).count() as u64);
        }
        MState::Open { until } => {
            prop_assert_eq!(s.state, State::Open);
            prop_assert_eq!(
                s.open_for,
                Some(Duration::from_millis(until.saturating_sub(now)))
            );
        }
        MState::HalfOpen {
            reserved,
            successes,
        } => {
            prop_assert_eq!(s.state, State::HalfOpen);
            prop_assert_eq!(s.probes_reserved, reserved);
            prop_assert_eq!(s.probes_succeeded, successes);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 400 } else { 2_000 }))]

    #[test]
    fn breaker_matches_the_reference_model(
        cfg in cfg_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..120),
    ) {
        run(cfg, ops)?;
    }

    #[test]
    fn mostly_healthy_traffic_matches_the_reference_model(
        cfg in cfg_strategy(),
        ops in prop::collection::vec(ops_failing(0.05), 1..200),
    ) {
        run(cfg, ops)?;
    }
}

fn run(cfg: Cfg, ops: Vec<Op>) -> Result<(), TestCaseError> {
    {
        let (cb, time) = build(&cfg);
        let mut model = Model {
            cfg: cfg.clone(),
            state: MState::Closed,
            gen: 0,
            window: VecDeque::new(),
            openings: 0,
            run: 0,
        };
        let mut live: Vec<(Permit<'_>, MPermit)> = Vec::new();
        let now = |t: &ManualClock| t.elapsed().as_millis() as u64;
        for op in ops {
            match op {
                Op::Acquire => {
                    let real = cb.try_acquire();
                    let expect = model.acquire(now(&time));
                    match (real, expect) {
                        (Ok(p), Some(mp)) => {
                            prop_assert_eq!(p.is_probe(), mp.probe);
                            live.push((p, mp));
                        }
                        (Err(_), None) => {}
                        (r, e) => prop_assert!(
                            false,
                            "acquire: real {:?} model {:?}",
                            r.map(|p| p.is_probe()),
                            e
                        ),
                    }
                }
                Op::Finish { idx, failure, slow } => {
                    if live.is_empty() {
                        continue;
                    }
                    let (p, mp) = live.remove(idx % live.len());
                    if slow {
                        time.advance(Duration::from_millis(SLOW_MS));
                    }
                    p.record(if failure {
                        CallOutcome::Failure
                    } else {
                        CallOutcome::Success
                    });
                    model.finish(mp, failure, now(&time));
                }
                Op::Cancel { idx } => {
                    if live.is_empty() {
                        continue;
                    }
                    let (p, mp) = live.remove(idx % live.len());
                    drop(p);
                    model.cancel(mp);
                }
                Op::Advance { ms } => time.advance(Duration::from_millis(ms)),
            }
            check(&cb, &model, now(&time))?;
        }
    }
    Ok(())
}
