//! The delivery policy, in virtual time: a manual clock and seeded
//! generators, no queue and no sleeping.

use std::time::Duration;

use proptest::prelude::*;
use rebound::{Backoff, Clock, Decision, Jitter, ManualClock};
use rebound_jobs::time::wall;
use rebound_jobs::{
    ClaimAction, DeadLetterReason, DeliveryPolicy, DeliveryState, Disposition, RunEnd, Timestamp,
};

const H: Duration = Duration::from_secs(3600);

/// A job as a queue would keep it, driven through the policy on a manual
/// clock: claims count deliveries, retries wait on the clock.
struct Sim {
    policy: DeliveryPolicy,
    clock: Clock,
    manual: ManualClock,
    state: DeliveryState,
    rng: fastrand::Rng,
}

impl Sim {
    fn new(policy: DeliveryPolicy, seed: u64) -> Sim {
        let (clock, manual) = Clock::manual();
        let state = DeliveryState::new(wall(&clock));
        Sim {
            policy,
            clock,
            manual,
            state,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
    fn now(&self) -> Timestamp {
        wall(&self.clock)
    }
    fn claim(&mut self) -> ClaimAction {
        self.state.deliveries += 1;
        self.policy.on_claim(&self.state, self.now())
    }
    fn end(&mut self, end: RunEnd) -> Disposition {
        let now = self.now();
        // Persist and restore the state, as a queue does between runs.
        let saved = serde_json::to_string(&self.state).unwrap();
        self.state = serde_json::from_str(&saved).unwrap();
        self.policy
            .on_outcome(&mut self.state, end, now, &mut self.rng)
    }
    fn wait_until(&self, at: Timestamp) {
        self.manual.advance(at.saturating_since(self.now()));
    }
}

#[test]
fn defaults_fit_long_running_work() {
    let p = DeliveryPolicy::default();
    assert_eq!(p.max_attempts(), 25);
    assert_eq!(p.poison_after(), 3);
    assert_eq!(p.max_age(), Some(7 * 24 * H));
    let b = p.backoff();
    assert_eq!(b.jitter(), Jitter::Full);
    assert_eq!(b.capped(0), Duration::from_secs(15));
    assert_eq!(b.max_delay(), 4 * H);
}

#[test]
fn a_job_that_always_fails_is_retried_over_hours_then_dead_lettered_exhausted_once() {
    let mut sim = Sim::new(DeliveryPolicy::default(), 42);
    let start = sim.now();
    let mut runs = 0;
    let mut delays = Vec::new();
    let reason = loop {
        let ClaimAction::Run { attempt } = sim.claim() else {
            panic!("dead-lettered at claim")
        };
        runs += 1;
        assert_eq!(attempt, runs);
        match sim.end(RunEnd::Failed(Decision::Retry)) {
            Disposition::Retry { at, delay } => {
                assert_eq!(at, sim.now() + delay);
                // Full jitter: never more than the capped schedule.
                assert!(delay <= sim.policy.backoff().capped(runs - 1));
                delays.push(delay);
                sim.wait_until(at);
            }
            Disposition::DeadLetter(r) => break r,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(reason, DeadLetterReason::Exhausted);
    assert_eq!(runs, 25);
    assert_eq!(delays.len(), 24);
    let spent = sim.now().saturating_since(start);
    // The 24 capped delays sum to ~60 h; full jitter halves that on average.
    assert!(spent > 12 * H, "spent {spent:?}");
    assert!(spent < 61 * H, "spent {spent:?}");
    assert!(spent < sim.policy.max_age().unwrap());
    assert_eq!(sim.state.failures, 25);
}

#[test]
fn a_permanent_error_dead_letters_at_once() {
    let mut sim = Sim::new(DeliveryPolicy::default(), 1);
    assert_eq!(sim.claim(), ClaimAction::Run { attempt: 1 });
    assert_eq!(
        sim.end(RunEnd::Failed(Decision::DoNotRetry)),
        Disposition::DeadLetter(DeadLetterReason::Permanent)
    );
    assert_eq!(sim.state.failures, 1);
    // A permanent timeout (a classifier may say so) too.
    let mut sim = Sim::new(DeliveryPolicy::default(), 1);
    sim.claim();
    assert_eq!(
        sim.end(RunEnd::TimedOut(Decision::DoNotRetry)),
        Disposition::DeadLetter(DeadLetterReason::Permanent)
    );
}

#[test]
fn a_panic_is_a_transient_failure() {
    let mut sim = Sim::new(DeliveryPolicy::default(), 1);
    sim.claim();
    assert!(matches!(
        sim.end(RunEnd::Panicked),
        Disposition::Retry { .. }
    ));
    assert_eq!(sim.state.failures, 1);
}

#[test]
fn a_requested_delay_is_honoured_never_shortened() {
    let mut sim = Sim::new(DeliveryPolicy::default(), 3);
    sim.claim();
    match sim.end(RunEnd::Failed(Decision::RetryAfter(2 * H))) {
        Disposition::Retry { delay, at } => {
            assert_eq!(delay, 2 * H);
            assert_eq!(at, sim.now() + 2 * H);
        }
        other => panic!("{other:?}"),
    }
    // Shorter than the backoff: the backoff wins.
    let policy = DeliveryPolicy::builder()
        .backoff(Backoff::constant(Duration::from_secs(60)).with_max_delay(H))
        .build()
        .unwrap();
    let mut sim = Sim::new(policy, 3);
    sim.claim();
    match sim.end(RunEnd::Failed(Decision::RetryAfter(Duration::from_secs(1)))) {
        Disposition::Retry { delay, .. } => assert_eq!(delay, Duration::from_secs(60)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retry_that_would_start_after_the_maximum_age_expires_now() {
    let policy = DeliveryPolicy::builder()
        .max_age(Some(24 * H))
        .build()
        .unwrap();
    let mut sim = Sim::new(policy, 5);
    sim.claim();
    assert_eq!(
        sim.end(RunEnd::Failed(Decision::RetryAfter(25 * H))),
        Disposition::DeadLetter(DeadLetterReason::Expired)
    );
}

#[test]
fn a_job_claimed_after_its_maximum_age_is_dead_lettered_without_running() {
    let mut sim = Sim::new(DeliveryPolicy::default(), 5);
    sim.manual.advance(7 * 24 * H + Duration::from_millis(1));
    assert_eq!(
        sim.claim(),
        ClaimAction::DeadLetter(DeadLetterReason::Expired)
    );
    // Exactly at the limit it still runs.
    let mut sim = Sim::new(DeliveryPolicy::default(), 5);
    sim.manual.advance(7 * 24 * H);
    assert_eq!(sim.claim(), ClaimAction::Run { attempt: 1 });
}

#[test]
fn deliveries_without_an_outcome_make_a_job_poison() {
    let mut sim = Sim::new(DeliveryPolicy::default(), 9);
    // Three runs that crashed their worker (claimed, never reported).
    for n in 1..=3 {
        assert_eq!(sim.claim(), ClaimAction::Run { attempt: n });
    }
    assert_eq!(sim.state.unreported(), 2);
    assert_eq!(
        sim.claim(),
        ClaimAction::DeadLetter(DeadLetterReason::Poison)
    );
    assert_eq!(sim.state.unreported(), 3);
}

#[test]
fn failures_are_not_crashes() {
    let mut sim = Sim::new(DeliveryPolicy::default(), 9);
    for n in 1..=10 {
        assert_eq!(sim.claim(), ClaimAction::Run { attempt: n });
        let Disposition::Retry { at, .. } = sim.end(RunEnd::Failed(Decision::Retry)) else {
            panic!()
        };
        sim.wait_until(at);
    }
    assert_eq!(sim.state.unreported(), 0);
}

#[test]
fn crashed_runs_use_up_attempts() {
    let policy = DeliveryPolicy::builder().max_attempts(3).build().unwrap();
    let mut sim = Sim::new(policy, 2);
    // Two failures, then a crash on the third attempt.
    for _ in 0..2 {
        sim.claim();
        let Disposition::Retry { at, .. } = sim.end(RunEnd::Failed(Decision::Retry)) else {
            panic!()
        };
        sim.wait_until(at);
    }
    assert_eq!(sim.claim(), ClaimAction::Run { attempt: 3 });
    // Redelivered after the crash: no attempts left.
    assert_eq!(
        sim.claim(),
        ClaimAction::DeadLetter(DeadLetterReason::Exhausted)
    );
}

#[test]
fn a_shutdown_hands_back_without_using_an_attempt_or_the_backoff() {
    let policy = DeliveryPolicy::builder().max_attempts(2).build().unwrap();
    let mut sim = Sim::new(policy, 4);
    for _ in 0..5 {
        assert_eq!(sim.claim(), ClaimAction::Run { attempt: 1 });
        assert_eq!(sim.end(RunEnd::Interrupted), Disposition::HandBack);
    }
    assert_eq!(sim.state.interrupts, 5);
    assert_eq!(sim.state.backoff_retries, 0);
    assert_eq!(sim.state.unreported(), 0);
    assert_eq!(sim.claim(), ClaimAction::Run { attempt: 1 });
    assert!(matches!(
        sim.end(RunEnd::Failed(Decision::Retry)),
        Disposition::Retry { .. }
    ));
    assert_eq!(sim.claim(), ClaimAction::Run { attempt: 2 });
    assert_eq!(
        sim.end(RunEnd::Failed(Decision::Retry)),
        Disposition::DeadLetter(DeadLetterReason::Exhausted)
    );
}

#[test]
fn decorrelated_jitter_continues_across_persistence() {
    let backoff = Backoff::exponential(Duration::from_secs(10))
        .with_max_delay(H)
        .with_jitter(Jitter::Decorrelated);
    let policy = DeliveryPolicy::builder().backoff(backoff).build().unwrap();
    let mut sim = Sim::new(policy, 77);
    let mut got = Vec::new();
    for _ in 0..12 {
        sim.claim();
        let Disposition::Retry { at, delay } = sim.end(RunEnd::Failed(Decision::Retry)) else {
            panic!()
        };
        got.push(delay);
        sim.wait_until(at);
    }
    // The same draws from one uninterrupted backoff state.
    let want: Vec<_> = backoff
        .delays(fastrand::Rng::with_seed(77))
        .take(12)
        .collect();
    assert_eq!(got, want);
    // And it did grow from the previous delay (not restarting at the base).
    assert!(got.iter().any(|d| *d > Duration::from_secs(30)));
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let run = |seed| {
        let mut sim = Sim::new(DeliveryPolicy::default(), seed);
        (0..10)
            .map(|_| {
                sim.claim();
                match sim.end(RunEnd::Failed(Decision::Retry)) {
                    Disposition::Retry { delay, .. } => delay,
                    other => panic!("{other:?}"),
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn bad_settings_name_the_field() {
    let cases = [
        (DeliveryPolicy::builder().max_attempts(0), "max_attempts"),
        (DeliveryPolicy::builder().poison_after(0), "poison_after"),
        (
            DeliveryPolicy::builder().max_age(Some(Duration::ZERO)),
            "max_age",
        ),
        (
            DeliveryPolicy::builder()
                .backoff(Backoff::exponential(Duration::from_secs(1)).with_factor(0.5)),
            "factor",
        ),
    ];
    for (b, field) in cases {
        let e = b.build().unwrap_err();
        assert_eq!(e.field(), field, "{e}");
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Crash,
    Fail,
    Permanent,
    Panic,
    Timeout,
    Interrupt,
    Asked(u64),
    Succeed,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::Crash),
        6 => Just(Event::Fail),
        1 => Just(Event::Permanent),
        1 => Just(Event::Panic),
        1 => Just(Event::Timeout),
        2 => Just(Event::Interrupt),
        1 => (0u64..200_000).prop_map(Event::Asked),
        1 => Just(Event::Succeed),
    ]
}

proptest! {
    /// Whatever happens to a job: it ends at most once (ack or one
    /// dead-letter); it never runs past `max_attempts`; a shutdown never
    /// changes its attempt number; no delay exceeds the cap unless an error
    /// asked for longer; poison is only ever found at claim.
    #[test]
    fn any_history_ends_at_most_once_within_the_limits(
        events in proptest::collection::vec(event(), 1..120),
        max_attempts in 1u32..8,
        poison_after in 1u32..4,
        seed in any::<u64>(),
    ) {
        let policy = DeliveryPolicy::builder()
            .max_attempts(max_attempts)
            .poison_after(poison_after)
            .backoff(Backoff::exponential(Duration::from_secs(1)).with_max_delay(Duration::from_secs(100)))
            .max_age(Some(Duration::from_secs(50_000)))
            .build()
            .unwrap();
        let mut sim = Sim::new(policy, seed);
        let mut ended = false;
        let mut last_attempt = 0;
        for ev in events {
            let attempt = match sim.claim() {
                ClaimAction::Run { attempt } => attempt,
                ClaimAction::DeadLetter(r) => {
                    prop_assert!(matches!(r, DeadLetterReason::Poison | DeadLetterReason::Exhausted | DeadLetterReason::Expired));
                    if r == DeadLetterReason::Poison {
                        prop_assert!(sim.state.unreported() >= poison_after);
                    }
                    ended = true;
                    break;
                }
            };
            prop_assert!(attempt <= max_attempts);
            prop_assert!(attempt >= last_attempt);
            last_attempt = attempt;
            let end = match ev {
                Event::Crash => continue,
                Event::Fail => RunEnd::Failed(Decision::Retry),
                Event::Permanent => RunEnd::Failed(Decision::DoNotRetry),
                Event::Panic => RunEnd::Panicked,
                Event::Timeout => RunEnd::TimedOut(Decision::Retry),
                Event::Interrupt => RunEnd::Interrupted,
                Event::Asked(ms) => RunEnd::Failed(Decision::RetryAfter(Duration::from_millis(ms))),
                Event::Succeed => RunEnd::Succeeded,
            };
            let before = sim.state;
            match sim.end(end) {
                Disposition::Ack => { ended = true; break; }
                Disposition::HandBack => {
                    prop_assert!(matches!(ev, Event::Interrupt));
                    prop_assert_eq!(sim.state.attempt(), before.attempt() - 1);
                }
                Disposition::Retry { at, delay } => {
                    let asked = match ev { Event::Asked(ms) => Duration::from_millis(ms), _ => Duration::ZERO };
                    prop_assert!(delay <= Duration::from_secs(100).max(asked));
                    prop_assert!(delay >= asked);
                    prop_assert!(attempt < max_attempts);
                    sim.wait_until(at);
                }
                Disposition::DeadLetter(r) => {
                    prop_assert!(r != DeadLetterReason::Poison, "poison is found at claim");
                    if r == DeadLetterReason::Exhausted {
                        prop_assert_eq!(attempt, max_attempts);
                    }
                    ended = true;
                    break;
                }
            }
        }
        let _ = ended;
    }
}
