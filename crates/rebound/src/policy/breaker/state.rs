//! The breaker's state, packed into one atomic word.
//!
//! ```text
//!  63            35 34        19 18         3 2    0
//! +----------------+------------+------------+------+
//! |   generation   | successes  |  reserved  | kind |
//! +----------------+------------+------------+------+
//! ```
//!
//! `reserved` counts half-open probe slots taken (in flight or succeeded),
//! `successes` the probes that succeeded. Reserving a probe is one CAS on
//! this word, so the probe limit can never be exceeded, and a cancelled
//! probe gives its slot back with one CAS that checks the generation, so it
//! cannot free a slot of a later half-open period.

use std::fmt;

/// The state of a [`CircuitBreaker`](crate::CircuitBreaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls flow; outcomes are counted in the sliding window.
    Closed,
    /// Calls are refused until the break duration has passed.
    Open,
    /// A limited number of probe calls are let through to test recovery.
    HalfOpen,
    /// Held open by hand ([`isolate`](crate::CircuitBreaker::isolate)) until
    /// [`reset`](crate::CircuitBreaker::reset).
    Isolated,
    /// Every call is admitted and nothing is recorded
    /// ([`disable`](crate::CircuitBreaker::disable)) until `reset`.
    Disabled,
}

impl State {
    /// A short, stable name: `closed`, `open`, `half_open`, `isolated`,
    /// `disabled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Isolated => "isolated",
            State::Disabled => "disabled",
        }
    }

    /// The value of the `circuit_breaker_state` gauge: 0 closed, 1 open,
    /// 2 half-open, 3 isolated, 4 disabled.
    pub fn gauge_value(&self) -> f64 {
        f64::from(self.code() as u32)
    }

    /// Whether calls are refused (open or isolated; a half-open breaker
    /// refuses only beyond its probes).
    pub fn is_refusing(&self) -> bool {
        matches!(self, State::Open | State::Isolated)
    }

    pub(crate) fn code(&self) -> u64 {
        match self {
            State::Closed => CLOSED,
            State::Open => OPEN,
            State::HalfOpen => HALF_OPEN,
            State::Isolated => ISOLATED,
            State::Disabled => DISABLED,
        }
    }

    pub(crate) fn from_code(code: u64) -> State {
        match code {
            CLOSED => State::Closed,
            OPEN => State::Open,
            HALF_OPEN => State::HalfOpen,
            ISOLATED => State::Isolated,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) const CLOSED: u64 = 0;
pub(crate) const OPEN: u64 = 1;
pub(crate) const HALF_OPEN: u64 = 2;
pub(crate) const ISOLATED: u64 = 3;
pub(crate) const DISABLED: u64 = 4;

const KIND_BITS: u32 = 3;
const PROBE_BITS: u32 = 16;
const RESERVED_SHIFT: u32 = KIND_BITS;
const SUCC_SHIFT: u32 = KIND_BITS + PROBE_BITS;
const GEN_SHIFT: u32 = KIND_BITS + 2 * PROBE_BITS;
const PROBE_MASK: u64 = (1 << PROBE_BITS) - 1;
/// Generations wrap at 2^29.
pub(crate) const GEN_MASK: u32 = (1 << (64 - GEN_SHIFT)) - 1;

/// One decoded state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) kind: u64,
    pub(crate) reserved: u32,
    pub(crate) successes: u32,
    pub(crate) gen: u32,
}

impl Word {
    #[inline]
    pub(crate) fn unpack(w: u64) -> Word {
        Word {
            kind: w & ((1 << KIND_BITS) - 1),
            reserved: ((w >> RESERVED_SHIFT) & PROBE_MASK) as u32,
            successes: ((w >> SUCC_SHIFT) & PROBE_MASK) as u32,
            gen: (w >> GEN_SHIFT) as u32,
        }
    }

    #[inline]
    pub(crate) fn pack(self) -> u64 {
        self.kind
            | (u64::from(self.reserved) << RESERVED_SHIFT)
            | (u64::from(self.successes) << SUCC_SHIFT)
            | (u64::from(self.gen & GEN_MASK) << GEN_SHIFT)
    }

    /// The first word of a new state `kind`, one generation on.
    #[inline]
    pub(crate) fn next(self, kind: u64) -> Word {
        Word {
            kind,
            reserved: 0,
            successes: 0,
            gen: self.gen.wrapping_add(1) & GEN_MASK,
        }
    }

    #[inline]
    pub(crate) fn state(self) -> State {
        State::from_code(self.kind)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let w = Word {
            kind: HALF_OPEN,
            reserved: 1000,
            successes: 999,
            gen: GEN_MASK,
        };
        assert_eq!(Word::unpack(w.pack()), w);
        assert_eq!(w.next(CLOSED).gen, 0, "generations wrap");
    }
}
