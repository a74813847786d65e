//! The optimistic-concurrency model of Brooker's "Exponential Backoff and
//! Jitter" (AWS Architecture Blog, 2015), driving real [`RetryPolicy`]s.
//!
//! One row with an integer version. Each of `clients` clients must perform
//! one successful write. An attempt reads the version (two network hops),
//! then writes if the version still matches (two more hops). A client whose
//! write lost the race asks its own [`RetryState`] for the delay, waits it,
//! and reads again. Only writes count as calls; the completion time is the
//! time of the last event.
//!
//! ```
//! use rebound_sim::occ::{self, Strategy};
//!
//! let run = occ::run(Strategy::Full, 20, 7);
//! assert!(run.calls >= 20); // at least one write per client
//! assert_eq!(run, occ::run(Strategy::Full, 20, 7)); // same seed, same run
//! ```

use std::time::Duration;

use rebound::{
    Backoff, Decision, Jitter, Next, Outcome, RandomSource, RetryPolicy, RetryState, Stop,
};
use serde::{Deserialize, Serialize};

use crate::dist::Dist;
use crate::engine::{EventQueue, VirtualTime};

/// Base delay of the published simulator.
pub const BASE: Duration = Duration::from_millis(5);
/// Cap of the published simulator.
pub const CAP: Duration = Duration::from_secs(2);
/// One network hop: `|N(10 ms, 2 ms)|`.
pub const HOP: Dist = Dist::normal(Duration::from_millis(10), Duration::from_millis(2));

/// The five strategies compared in the post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Retry at once.
    NoBackoff,
    /// `min(cap, base * 2^attempt)`, no jitter.
    Exponential,
    /// Half the exponential delay plus a random half.
    Equal,
    /// A random delay up to the exponential delay.
    Full,
    /// `U(base, min(cap, 3 * previous))`, per client.
    Decorrelated,
}

impl Strategy {
    /// All five, in the post's order.
    pub const ALL: [Strategy; 5] = [
        Strategy::NoBackoff,
        Strategy::Exponential,
        Strategy::Equal,
        Strategy::Full,
        Strategy::Decorrelated,
    ];

    /// The name used in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::NoBackoff => "no backoff",
            Strategy::Exponential => "exponential",
            Strategy::Equal => "equal jitter",
            Strategy::Full => "full jitter",
            Strategy::Decorrelated => "decorrelated",
        }
    }

    /// The strategy as a rebound backoff.
    ///
    /// The post counts attempts from 1, so its first delay is
    /// `base * 2^1`: with rebound's `base * 2^n` from retry 0 that is an
    /// exponential schedule from `2 * base`. Decorrelated jitter keeps its
    /// own state starting at `base` itself.
    pub fn backoff(self) -> Backoff {
        let exponential = |base, jitter| {
            Backoff::exponential(base)
                .with_max_delay(CAP)
                .with_jitter(jitter)
        };
        match self {
            Strategy::NoBackoff => Backoff::constant(Duration::ZERO),
            Strategy::Exponential => exponential(BASE * 2, Jitter::None),
            Strategy::Equal => exponential(BASE * 2, Jitter::Equal),
            Strategy::Full => exponential(BASE * 2, Jitter::Full),
            Strategy::Decorrelated => exponential(BASE, Jitter::Decorrelated),
        }
    }

    /// The real policy: unlimited attempts, this backoff, on `time`.
    pub fn policy(self, time: &VirtualTime, seed: u64) -> RetryPolicy {
        RetryPolicy::builder()
            .dependency("occ-row")
            .max_attempts(u32::MAX)
            .backoff(self.backoff())
            .clock(time.clock())
            .random(RandomSource::seeded(seed))
            .build()
            .expect("the published strategies are valid policies")
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccRun {
    /// Writes sent (the post's "calls").
    pub calls: u64,
    /// Time of the last event, in nanoseconds.
    pub completion_nanos: u64,
    /// Events processed.
    pub events: u64,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// The client starts an attempt: sends the read.
    Start(u32),
    /// The read reaches the row.
    ReadArrive(u32),
    /// The version comes back; the client sends the write.
    ReadReply(u32),
    /// The write reaches the row.
    WriteArrive(u32),
    /// The write's answer comes back.
    WriteReply(u32, bool),
}

struct Client {
    state: RetryState,
    attempt: Option<rebound::Attempt>,
    version: u64,
}

/// Runs the model once: `clients` clients, all starting at time 0, with one
/// policy object per client (so decorrelated jitter keeps per-client state).
pub fn run(strategy: Strategy, clients: u32, seed: u64) -> OccRun {
    let time = VirtualTime::new();
    let mut rng = crate::rng::SimRng::new(seed);
    // One policy for all: the per-client state lives in each RetryState,
    // and each RetryState takes its own generator from the seeded source.
    let policy = strategy.policy(&time, crate::seed::splitmix64(seed));
    time.set(0);
    let mut cs: Vec<Client> = (0..clients)
        .map(|_| Client {
            state: RetryState::new(&policy),
            attempt: None,
            version: 0,
        })
        .collect();
    let mut q = EventQueue::with_capacity(clients as usize * 2);
    for c in 0..clients {
        q.schedule(0, Ev::Start(c));
    }
    let mut version = 0u64;
    let mut calls = 0u64;
    let mut last = 0u64;
    while let Some((t, ev)) = q.pop() {
        last = t;
        match ev {
            Ev::Start(c) => {
                time.set(t);
                let cl = &mut cs[c as usize];
                match cl.state.begin_attempt(&policy) {
                    Ok(a) => {
                        cl.attempt = Some(a);
                        q.schedule(t + HOP.sample_nanos(&mut rng), Ev::ReadArrive(c));
                    }
                    Err(_) => continue,
                }
            }
            Ev::ReadArrive(c) => {
                cs[c as usize].version = version;
                q.schedule(t + HOP.sample_nanos(&mut rng), Ev::ReadReply(c));
            }
            Ev::ReadReply(c) => {
                q.schedule(t + HOP.sample_nanos(&mut rng), Ev::WriteArrive(c));
            }
            Ev::WriteArrive(c) => {
                calls += 1;
                let ok = cs[c as usize].version == version;
                if ok {
                    version += 1;
                }
                q.schedule(t + HOP.sample_nanos(&mut rng), Ev::WriteReply(c, ok));
            }
            Ev::WriteReply(c, ok) => {
                time.set(t);
                let cl = &mut cs[c as usize];
                let Some(attempt) = cl.attempt.take() else {
                    continue;
                };
                let next = if ok {
                    cl.state.on_outcome::<(), ()>(
                        &policy,
                        attempt,
                        Outcome::Ok(&()),
                        Decision::DoNotRetry,
                    )
                } else {
                    cl.state.on_outcome::<(), ()>(
                        &policy,
                        attempt,
                        Outcome::Err(&()),
                        Decision::Retry,
                    )
                };
                match next {
                    Next::Retry { delay } => {
                        q.schedule(t + crate::dist::nanos(delay), Ev::Start(c));
                    }
                    Next::Stop(Stop::Succeeded) => {}
                    Next::Stop(_) => {}
                }
            }
        }
    }
    OccRun {
        calls,
        completion_nanos: last,
        events: q.processed(),
    }
}
