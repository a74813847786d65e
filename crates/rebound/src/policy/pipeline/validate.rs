//! The rules a pipeline's combination of stages must follow.

use std::time::Duration;

use super::{Stage, MAX_STAGES};
use crate::backoff::{Backoff, Jitter};
use crate::breaker::SlidingWindow;
use crate::error::ConfigError;
use crate::hedge::{HedgeDelay, HedgePolicy};

const COMPONENT: &str = "pipeline";

/// The longest delay a backoff can hand out before retry `n`.
fn worst_delay(b: &Backoff, n: u32) -> Duration {
    let cap = b.max_delay();
    match b.jitter() {
        Jitter::None | Jitter::Full | Jitter::Equal => b.capped(n),
        Jitter::Decorrelated => {
            let base = b.schedule().base();
            base.saturating_mul(3u32.saturating_pow(n))
                .min(cap)
                .max(base.min(cap))
        }
        Jitter::Proportional(x) => b.capped(n).mul_f64(1.0 + x.clamp(0.0, 1.0)).min(cap),
    }
}

/// Retries whose worst delays are summed one by one; past them, they are
/// summed in blocks each 1/16 longer than the retries before it, counted
/// at the block's first delay (delays never shrink), so validation takes
/// bounded time — about 250 blocks for four billion retries — whatever
/// `max_attempts` is.
const SUMMED_RETRIES: u32 = 1024;

/// The sum of the largest delays before each of `retries` retries: exact
/// up to [`SUMMED_RETRIES`] retries, beyond that a lower bound within
/// 1/16 of it (so the worst case is at least this long).
fn worst_delays(b: &Backoff, retries: u32) -> Duration {
    let summed = retries.min(SUMMED_RETRIES);
    let mut total = (0..summed)
        .map(|i| worst_delay(b, i))
        .fold(Duration::ZERO, Duration::saturating_add);
    let mut start = summed;
    while start < retries {
        let end = start.saturating_add((start / 16).max(1)).min(retries);
        total = total.saturating_add(worst_delay(b, start).saturating_mul(end - start));
        start = end;
    }
    total
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(super) fn validate(stages: &[Stage]) -> Result<(), ConfigError> {
    if stages.is_empty() || stages.len() > MAX_STAGES {
        return Err(ConfigError::new(
            COMPONENT,
            "stages",
            format!(
                "must hold between 1 and {MAX_STAGES} strategies (got {})",
                stages.len()
            ),
        ));
    }
    let retries: Vec<usize> = (0..stages.len())
        .filter(|&i| matches!(stages[i], Stage::Retry(_)))
        .collect();
    if retries.len() > 1 {
        return Err(ConfigError::new(
            COMPONENT,
            "retry",
            "is declared twice: nested retries multiply (3 attempts × 3 attempts = 9 calls per request); keep one retry stage",
        )
        .at_stage(retries[1]));
    }
    let retry = retries.first().map(|&i| {
        let Stage::Retry(p) = &stages[i] else {
            unreachable!()
        };
        (i, p)
    });
    let timeout_in = |range: std::ops::Range<usize>| {
        stages[range]
            .iter()
            .filter_map(|s| match s {
                Stage::Timeout(t) => Some(*t),
                _ => None,
            })
            .min()
    };
    if let Some((r, _)) = retry {
        if let Some(cb) = stages[..r]
            .iter()
            .position(|s| matches!(s, Stage::CircuitBreaker(..)))
        {
            return Err(ConfigError::new(
                COMPONENT,
                "circuit_breaker",
                "is declared outside (before) the retry: it would see one outcome per call, not per attempt, and could not stop the retries; declare it after the retry",
            )
            .at_stage(cb));
        }
    }
    let (total, attempt) = match retry {
        Some((r, p)) => (
            min_opt(timeout_in(0..r), p.total_timeout()),
            min_opt(timeout_in(r + 1..stages.len()), p.attempt_timeout()),
        ),
        None => (None, None),
    };
    // The window rule: each breaker against the attempt timeout inside it.
    for (i, s) in stages.iter().enumerate() {
        let window = match s {
            Stage::CircuitBreaker(cb) => cb.window(),
            _ => continue,
        };
        if let SlidingWindow::Time { duration, .. } = window {
            let duration = &duration;
            let from_retry =
                retry.and_then(|(r, p)| (r < i).then(|| p.attempt_timeout()).flatten());
            if let Some(a) = min_opt(timeout_in(i + 1..stages.len()), from_retry) {
                if *duration < a.saturating_mul(2) {
                    return Err(ConfigError::new(
                        COMPONENT,
                        "sampling_window",
                        format!(
                            "of the circuit breaker ({duration:?}) must be at least twice the attempt timeout ({a:?}): a shorter window judges the dependency on a handful of calls, and slow calls end after the window that counts them"
                        ),
                    )
                    .at_stage(i));
                }
            }
        }
    }
    if let (Some(total), Some(attempt), Some((_, p))) = (total, attempt, retry) {
        if attempt >= total {
            return Err(ConfigError::new(
                COMPONENT,
                "attempt_timeout",
                format!(
                    "({attempt:?}) must be shorter than the total timeout ({total:?}): a slow first attempt would leave no time to retry"
                ),
            ));
        }
        let n = p.max_attempts();
        let delays = worst_delays(p.backoff(), n.saturating_sub(1));
        let worst = attempt.saturating_mul(n).saturating_add(delays);
        if worst > total {
            return Err(ConfigError::new(
                COMPONENT,
                "total_timeout",
                format!(
                    "({total:?}) is shorter than the worst case of the retry: {n} attempts × {attempt:?} attempt timeout + {delays:?} of backoff = {worst:?}; raise the total timeout, or lower max_attempts, the attempt timeout or the backoff"
                ),
            ));
        }
    }
    Ok(())
}

/// The hedge rules: one hedge stage, only for idempotent operations,
/// inside the retry, with a delay that can fire before any timeout cuts the
/// first attempt off.
pub(super) fn validate_hedge(stages: &[Stage], idempotent: bool) -> Result<(), ConfigError> {
    let hedges: Vec<(usize, &HedgePolicy)> = stages
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Stage::Hedge(p) => Some((i, p)),
            _ => None,
        })
        .collect();
    let Some(&(h, policy)) = hedges.first() else {
        return Ok(());
    };
    if hedges.len() > 1 {
        return Err(ConfigError::new(
            COMPONENT,
            "hedge",
            "is declared twice: nested hedges multiply (2 copies × 2 copies = 4 calls in flight per request); keep one hedge stage",
        )
        .at_stage(hedges[1].0));
    }
    if !idempotent {
        return Err(ConfigError::new(
            COMPONENT,
            "idempotent",
            "is not declared, but a hedge stage runs the operation several times at the same time, which is only safe when doing it twice is the same as doing it once; declare the pipeline idempotent (`.idempotent()`, in a file `idempotent = true` on the hedge stage) or remove the hedge",
        )
        .at_stage(h));
    }
    let retry = stages.iter().position(|s| matches!(s, Stage::Retry(_)));
    if retry.is_some_and(|r| r > h) {
        return Err(ConfigError::new(
            COMPONENT,
            "hedge",
            "is declared outside (before) the retry: every hedged copy would run its own retries, multiplying the calls; declare it after the retry, so each attempt is hedged",
        )
        .at_stage(h));
    }
    let (delay, what) = match policy.delay() {
        HedgeDelay::Fixed(d) => (d, "the hedge delay"),
        HedgeDelay::Percentile { initial, .. } => (initial, "the initial hedge delay"),
    };
    // Every timeout cuts off the first attempt: those declared before the
    // hedge wrap the whole hedged call, those after it each copy.
    let mut limits: Vec<(Duration, &str)> = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        match s {
            Stage::Timeout(t) if i > h => limits.push((*t, "timeout of each hedged attempt")),
            Stage::Timeout(t) if retry.is_some_and(|r| r < i) => {
                limits.push((*t, "attempt timeout"))
            }
            Stage::Timeout(t) => limits.push((*t, "total timeout")),
            Stage::Retry(p) => {
                if let Some(t) = p.attempt_timeout() {
                    limits.push((t, "retry's attempt timeout"));
                }
                if let Some(t) = p.total_timeout() {
                    limits.push((t, "retry's total timeout"));
                }
            }
            _ => {}
        }
    }
    if let Some((limit, name)) = limits.into_iter().min_by_key(|(t, _)| *t) {
        if delay >= limit {
            return Err(ConfigError::new(
                COMPONENT,
                "hedge_delay",
                format!(
                    "({what}, {delay:?}) must be shorter than the {name} ({limit:?}): the attempt is cut off before the hedge could start, so it never fires; lower the hedge delay or raise the timeout"
                ),
            )
                .at_stage(h));
        }
    }
    Ok(())
}
