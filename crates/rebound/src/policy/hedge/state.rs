//! The sans-IO hedging state machine; see [`HedgeState`].

use std::time::{Duration, Instant};

use crate::classify::Decision;
use crate::hedge::HedgePolicy;
use crate::Stop;

/// How one copy's result bears on a hedged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An acceptable value: it wins, the other copies are cancelled.
    Accept,
    /// A permanent failure: it ends the call at once.
    Final,
    /// Not acceptable, and it frees a slot: start the next copy at once.
    Retry,
    /// Not acceptable, and no copy starts at once: the server asked for
    /// this long, or a policy inside refused the copy (`None`).
    Wait(Option<Duration>),
}

impl Verdict {
    /// The verdict on a value (`is_value`) or a failure, from the
    /// classifier's decision.
    #[inline]
    pub fn of(decision: Decision, is_value: bool) -> Verdict {
        match decision {
            Decision::DoNotRetry if is_value => Verdict::Accept,
            Decision::DoNotRetry => Verdict::Final,
            Decision::Retry => Verdict::Retry,
            Decision::RetryAfter(d) => Verdict::Wait(Some(d)),
        }
    }
}

/// A copy of the call the machine started: hand it back to
/// [`HedgeState::on_result`] with what it produced, or drop it when the
/// copy is cancelled.
#[derive(Debug)]
#[must_use = "pass the copy back to HedgeState::on_result"]
pub struct HedgeCopy {
    /// When it started, for the adaptive delay's latencies.
    started_at: Option<Instant>,
    /// Whether it is the call's first copy.
    first: bool,
}

/// What a driver should do next in a hedged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeAction {
    /// Start another copy now (the cap and the budget allowed it; the
    /// budget is spent), then tell the machine with
    /// [`launched`](HedgeState::launched).
    Launch,
    /// Wait for a copy to end, or for the hedge timer at this instant (on
    /// the policy's clock), whichever comes first; tell the machine of a
    /// timer firing with [`on_timer`](HedgeState::on_timer).
    Wait(Option<Instant>),
    /// Every copy ended unacceptable and no more may start: the call ends
    /// with the last copy's result, for this reason.
    Finish(Stop),
}

/// One hedged call's progress through a [`HedgePolicy`]: the hedging
/// decision as a plain state machine (sans-IO).
///
/// It never sleeps, spawns or calls anything. A driver starts the first
/// copy with [`new`](Self::new), tells the machine how each copy ended
/// ([`on_result`](Self::on_result)) and when the hedge timer fired
/// ([`on_timer`](Self::on_timer)), and asks what to do
/// ([`next`](Self::next)): launch another copy, wait, or finish. The
/// closure API, the tower layer, the pipeline's hedge stage and the
/// simulator drive this one type.
///
/// ```
/// use std::time::Duration;
/// use rebound::hedge::{HedgeAction, HedgePolicy, HedgeState, Verdict};
/// use rebound::{Clock, Stop};
///
/// let (clock, time) = Clock::manual();
/// let policy = HedgePolicy::builder()
///     .fixed_delay(Duration::from_millis(50))
///     .clock(clock.clone())
///     .build()?;
/// let (mut state, first) = HedgeState::new(&policy, true);
/// // The first copy is slow: at 50 ms the machine asks for a hedge.
/// let HedgeAction::Wait(Some(at)) = state.next(&policy) else { panic!() };
/// assert_eq!(at - clock.now(), Duration::from_millis(50));
/// time.advance(Duration::from_millis(50));
/// state.on_timer();
/// assert_eq!(state.next(&policy), HedgeAction::Launch);
/// let second = state.launched(&policy);
/// // The hedge answers first and wins; the first copy is then cancelled.
/// assert_eq!(state.on_result(&policy, second, Verdict::Accept), Some(Stop::Succeeded));
/// drop(first);
/// assert_eq!(state.started(), 2);
/// # Ok::<(), rebound::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct HedgeState {
    /// Copies started, the first included.
    started: u32,
    /// Copies in flight.
    running: u32,
    /// When the hedge timer fires, if it is armed.
    timer_at: Option<Instant>,
    /// The timer fired and no copy was launched for it yet.
    timer_due: bool,
    /// An unacceptable result freed a slot: launch at once.
    relaunch: bool,
    /// A launch was granted (budget spent) and not started yet.
    granted: bool,
    /// The budget refused a copy the cap allowed.
    budget_refused: bool,
    /// The verdict on the last unacceptable result.
    last: Option<Verdict>,
    /// When the first copy started, while it runs (adaptive delays only):
    /// if a hedge wins, the first copy is cancelled, and its time so far is
    /// a latency too (at least that long), so slow first copies are not
    /// left out of the percentile.
    first_running: Option<Instant>,
}

impl HedgeState {
    /// A new hedged call whose first copy starts now; `record_request`
    /// counts the call as a request against the policy's budget (a driver
    /// whose call was already counted against the same budget, e.g. by a
    /// retry around the hedge, passes `false`).
    pub fn new(policy: &HedgePolicy, record_request: bool) -> (Self, HedgeCopy) {
        if record_request {
            policy.record_request();
        }
        let mut state = HedgeState {
            started: 0,
            running: 0,
            timer_at: None,
            timer_due: false,
            relaunch: false,
            granted: false,
            budget_refused: false,
            last: None,
            first_running: None,
        };
        let first = state.start(policy);
        (state, first)
    }

    /// Copies started, the first included.
    pub fn started(&self) -> u32 {
        self.started
    }

    /// Copies in flight.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// Counts a copy as started and arms the timer for the next one.
    fn start(&mut self, policy: &HedgePolicy) -> HedgeCopy {
        self.started += 1;
        self.running += 1;
        let adaptive = policy.is_adaptive();
        let needs_now = adaptive || self.started < policy.max_attempts;
        let now = needs_now.then(|| policy.clock.now());
        self.timer_at = match now {
            Some(now) if self.started < policy.max_attempts => {
                now.checked_add(policy.current_delay())
            }
            _ => None,
        };
        let started_at = now.filter(|_| adaptive);
        let first = self.started == 1;
        if first {
            self.first_running = started_at;
        }
        HedgeCopy { started_at, first }
    }

    /// Tells the machine that a copy ended with `verdict`; answers
    /// `Some(Stop::Succeeded)` when it won (its result is the call's),
    /// `Some(Stop::Permanent)` when it ends the call as a permanent failure,
    /// `None` when the call goes on (the driver keeps the result as the
    /// last one).
    pub fn on_result(
        &mut self,
        policy: &HedgePolicy,
        copy: HedgeCopy,
        verdict: Verdict,
    ) -> Option<Stop> {
        self.running = self.running.saturating_sub(1);
        if copy.first {
            self.first_running = None;
        }
        // Every answer feeds the adaptive delay (a refusal from inside is
        // not an answer).
        if let (Some(at), false) = (copy.started_at, verdict == Verdict::Wait(None)) {
            let now = policy.clock.now();
            policy.record_latency(now.saturating_duration_since(at));
            if verdict == Verdict::Accept {
                if let Some(first) = self.first_running.take() {
                    policy.record_latency(now.saturating_duration_since(first));
                }
            }
        }
        match verdict {
            Verdict::Accept => Some(Stop::Succeeded),
            Verdict::Final => Some(Stop::Permanent),
            v => {
                self.relaunch |= v == Verdict::Retry;
                self.last = Some(v);
                None
            }
        }
    }

    /// Tells the machine that the hedge timer fired.
    pub fn on_timer(&mut self) {
        if self.timer_at.take().is_some() {
            self.timer_due = true;
        }
    }

    /// Asks what to do next; see [`HedgeAction`].
    pub fn next(&mut self, policy: &HedgePolicy) -> HedgeAction {
        if self.granted {
            return HedgeAction::Launch;
        }
        let due = (self.relaunch && self.started < policy.max_attempts) || self.timer_due;
        self.relaunch = false;
        self.timer_due = false;
        if due {
            if policy.try_hedge(self.started) {
                self.granted = true;
                return HedgeAction::Launch;
            }
            self.budget_refused |= self.started < policy.max_attempts;
            self.timer_at = None;
        }
        if self.running == 0 {
            return HedgeAction::Finish(self.finish_reason(policy));
        }
        HedgeAction::Wait(self.timer_at)
    }

    /// Tells the machine that the copy [`next`](Self::next) granted has
    /// started.
    pub fn launched(&mut self, policy: &HedgePolicy) -> HedgeCopy {
        self.granted = false;
        self.start(policy)
    }

    /// Tells the machine that the copy [`next`](Self::next) granted could
    /// not start (the driver's transport refused it): the driver keeps that
    /// refusal as the last result.
    pub fn launch_failed(&mut self) {
        self.granted = false;
        self.last = Some(Verdict::Wait(None));
    }

    /// Why no more copies were made, when every copy ended unacceptable.
    fn finish_reason(&self, policy: &HedgePolicy) -> Stop {
        if self.started >= policy.max_attempts {
            Stop::AttemptsExhausted
        } else if self.budget_refused {
            Stop::BudgetExhausted
        } else if let Some(Verdict::Wait(retry_after)) = self.last {
            Stop::Throttled { retry_after }
        } else {
            Stop::AttemptsExhausted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, RetryBudget};

    fn policy(max: u32, clock: &Clock) -> HedgePolicy {
        HedgePolicy::builder()
            .fixed_delay(Duration::from_millis(50))
            .max_attempts(max)
            .clock(clock.clone())
            .build()
            .unwrap()
    }

    #[test]
    fn an_unacceptable_result_launches_the_next_copy_at_once() {
        let (clock, _) = Clock::manual();
        let p = policy(3, &clock);
        let (mut s, first) = HedgeState::new(&p, true);
        assert_eq!(s.on_result(&p, first, Verdict::Retry), None);
        assert_eq!(s.next(&p), HedgeAction::Launch);
        let second = s.launched(&p);
        assert_eq!(s.on_result(&p, second, Verdict::Retry), None);
        assert_eq!(s.next(&p), HedgeAction::Launch);
        let third = s.launched(&p);
        assert_eq!(s.on_result(&p, third, Verdict::Retry), None);
        assert_eq!(s.next(&p), HedgeAction::Finish(Stop::AttemptsExhausted));
        assert_eq!(s.started(), 3);
    }

    #[test]
    fn a_server_delay_waits_and_ends_throttled_when_nothing_runs() {
        let (clock, _) = Clock::manual();
        let p = policy(2, &clock);
        let (mut s, first) = HedgeState::new(&p, true);
        let asked = Some(Duration::from_secs(1));
        assert_eq!(s.on_result(&p, first, Verdict::Wait(asked)), None);
        assert_eq!(
            s.next(&p),
            HedgeAction::Finish(Stop::Throttled { retry_after: asked })
        );
    }

    #[test]
    fn an_exhausted_budget_ends_the_hedging() {
        let (clock, time) = Clock::manual();
        let budget = RetryBudget::ratio(0.0)
            .min_retries_per_second(0.0)
            .clock(clock.clone())
            .build()
            .unwrap();
        let p = HedgePolicy::builder()
            .fixed_delay(Duration::from_millis(50))
            .budget(budget)
            .clock(clock.clone())
            .build()
            .unwrap();
        let (mut s, first) = HedgeState::new(&p, true);
        time.advance(Duration::from_millis(50));
        s.on_timer();
        assert_eq!(s.next(&p), HedgeAction::Wait(None), "refused: timer off");
        assert_eq!(s.on_result(&p, first, Verdict::Retry), None);
        assert_eq!(s.next(&p), HedgeAction::Finish(Stop::BudgetExhausted));
    }

    #[test]
    fn a_permanent_failure_ends_the_call() {
        let (clock, _) = Clock::manual();
        let p = policy(2, &clock);
        let (mut s, first) = HedgeState::new(&p, true);
        assert_eq!(
            s.on_result(&p, first, Verdict::Final),
            Some(Stop::Permanent)
        );
    }

    /// With the default adaptive delay (the 95th percentile), about one
    /// call in twenty is hedged — also when the slow calls are the ones a
    /// hedge cancels (they count at least the time they ran).
    #[test]
    fn the_adaptive_delay_hedges_about_one_call_in_twenty() {
        let (clock, time) = Clock::manual();
        let p = HedgePolicy::builder().clock(clock.clone()).build().unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        // Exponential latencies, mean 10 ms.
        let mut latency = || Duration::from_secs_f64(-rng.f64().max(1e-12).ln() * 0.010);
        let (mut hedged, calls) = (0, 4_000);
        for _ in 0..calls {
            let (mut s, first) = HedgeState::new(&p, true);
            let l1 = latency();
            let HedgeAction::Wait(Some(at)) = s.next(&p) else {
                panic!("a timer is armed")
            };
            let delay = at - clock.now();
            if l1 <= delay {
                time.advance(l1);
                assert_eq!(
                    s.on_result(&p, first, Verdict::Accept),
                    Some(Stop::Succeeded)
                );
                continue;
            }
            hedged += 1;
            time.advance(delay);
            s.on_timer();
            assert_eq!(s.next(&p), HedgeAction::Launch);
            let second = s.launched(&p);
            let l2 = latency();
            if l1 <= delay + l2 {
                time.advance(l1 - delay);
                s.on_result(&p, first, Verdict::Accept);
            } else {
                time.advance(l2);
                s.on_result(&p, second, Verdict::Accept);
            }
        }
        let share = f64::from(hedged) / f64::from(calls);
        assert!((0.035..=0.065).contains(&share), "{share}");
    }
}
