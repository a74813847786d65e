//! What a run of the [general model](crate::model) measured, and the
//! numbers derived from it: amplification, success rate, latency
//! percentiles, goodput over time, time to recover.

use rebound::Stop;
use serde::{Deserialize, Serialize};

/// Counters of one run. Times are nanoseconds since the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// Calls started by clients (each call's first attempt).
    pub first_tries: u64,
    /// Attempts that reached each layer's server, front first.
    pub attempts: Vec<u64>,
    /// Requests each layer finished serving (including work nobody waited for).
    pub served: Vec<u64>,
    /// Requests each layer turned away with a full queue.
    pub rejected: Vec<u64>,
    /// Client calls that succeeded.
    pub successes: u64,
    /// Client calls that gave up, by reason.
    pub failures: Failures,
    /// Client calls still open when the run stopped.
    pub unfinished: u64,
    /// Answers that arrived after their caller had timed out.
    pub wasted: u64,
    /// Attempts (at any layer) cut off by a timeout.
    pub timeouts: u64,
    /// Requests their caller stopped waiting for: cut off by a timeout, or
    /// a hedged copy that lost the race (the server still serves them).
    pub abandoned: u64,
    /// Latency of each successful client call (first attempt to answer).
    #[serde(skip)]
    pub latencies: Vec<u64>,
    /// Per time bin.
    pub bins: Vec<Bin>,
    /// Width of a bin.
    pub bin_nanos: u64,
    /// Events processed.
    pub events: u64,
}

/// Client calls that gave up, by [`Stop`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// Every attempt failed.
    pub attempts_exhausted: u64,
    /// The retry budget said no.
    pub budget_exhausted: u64,
    /// The circuit breaker refused.
    pub breaker_open: u64,
    /// The total timeout ran out.
    pub deadline: u64,
    /// The adaptive throttle shed the attempt locally.
    pub throttled: u64,
    /// Anything else (permanent, bulkhead).
    pub other: u64,
}

impl Failures {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.attempts_exhausted
            + self.budget_exhausted
            + self.breaker_open
            + self.deadline
            + self.throttled
            + self.other
    }
}

/// Counts in one time bin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bin {
    /// Calls started.
    pub first_tries: u64,
    /// Attempts sent to layer 0.
    pub attempts: u64,
    /// Attempts sent to the bottom layer.
    pub bottom_attempts: u64,
    /// Client calls that succeeded (goodput).
    pub goodput: u64,
    /// Client calls that gave up.
    pub failed: u64,
}

impl RunStats {
    /// Empty counters for `layers` layers and `bins` bins of `bin_nanos`.
    pub fn new(layers: usize, bins: usize, bin_nanos: u64) -> Self {
        RunStats {
            first_tries: 0,
            attempts: vec![0; layers],
            served: vec![0; layers],
            rejected: vec![0; layers],
            successes: 0,
            failures: Failures::default(),
            unfinished: 0,
            wasted: 0,
            timeouts: 0,
            abandoned: 0,
            latencies: Vec::new(),
            bins: vec![Bin::default(); bins.max(1)],
            bin_nanos: bin_nanos.max(1),
            events: 0,
        }
    }

    #[inline]
    fn bin(&mut self, t: u64) -> &mut Bin {
        let i = ((t / self.bin_nanos) as usize).min(self.bins.len() - 1);
        &mut self.bins[i]
    }

    pub(crate) fn record_first_try(&mut self, t: u64) {
        self.first_tries += 1;
        self.bin(t).first_tries += 1;
    }

    pub(crate) fn record_attempt(&mut self, t: u64, layer: usize) {
        self.attempts[layer] += 1;
        let bottom = layer + 1 == self.attempts.len();
        let b = self.bin(t);
        if layer == 0 {
            b.attempts += 1;
        }
        if bottom {
            b.bottom_attempts += 1;
        }
    }

    pub(crate) fn record_end(&mut self, t: u64, latency: u64, stop: Stop) {
        if stop.is_success() {
            self.successes += 1;
            self.latencies.push(latency);
            self.bin(t).goodput += 1;
            return;
        }
        self.bin(t).failed += 1;
        match stop {
            Stop::AttemptsExhausted => self.failures.attempts_exhausted += 1,
            Stop::BudgetExhausted => self.failures.budget_exhausted += 1,
            Stop::BreakerOpen => self.failures.breaker_open += 1,
            Stop::DeadlineExceeded { .. } => self.failures.deadline += 1,
            Stop::Throttled { .. } => self.failures.throttled += 1,
            _ => self.failures.other += 1,
        }
    }

    /// Attempts at layer 0 per first try: the load the clients put on the
    /// front server, as a multiple of what they were asked to do.
    pub fn amplification(&self) -> f64 {
        ratio(self.attempts[0], self.first_tries)
    }

    /// Attempts at the bottom layer per first try.
    pub fn bottom_amplification(&self) -> f64 {
        ratio(*self.attempts.last().unwrap_or(&0), self.first_tries)
    }

    /// Successful calls per finished call.
    pub fn success_rate(&self) -> f64 {
        ratio(self.successes, self.successes + self.failures.total())
    }

    /// The `p`-th percentile (0–100) of successful calls' latency, in
    /// nanoseconds (nearest rank); `None` without successes.
    pub fn latency_percentile(&mut self, p: f64) -> Option<u64> {
        if self.latencies.is_empty() {
            return None;
        }
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.latencies[rank.clamp(1, n) - 1])
    }

    /// Goodput per second in each bin.
    pub fn goodput_per_second(&self) -> Vec<f64> {
        let scale = 1e9 / self.bin_nanos as f64;
        self.bins.iter().map(|b| b.goodput as f64 * scale).collect()
    }

    /// Whether the `window` bins from bin `i` had goodput of at least
    /// `threshold` × their first tries.
    pub fn healthy_window(&self, i: usize, window: usize, threshold: f64) -> bool {
        let end = (i + window.max(1)).min(self.bins.len());
        let (g, f) = self.bins[i.min(end)..end]
            .iter()
            .fold((0u64, 0u64), |(g, f), b| (g + b.goodput, f + b.first_tries));
        g as f64 >= threshold * f as f64
    }

    /// Seconds from `trigger_end` until the end of the first window of
    /// `window` bins, starting at or after it, whose goodput is at least
    /// `threshold` × its first tries: the first return to health. `None`
    /// if no such window ends before the end of the run.
    ///
    /// Unlike [`recovery_after`](Self::recovery_after) this ignores later
    /// dips, which in a system run close to its capacity happen with or
    /// without a trigger (compare [`unhealthy_share`](Self::unhealthy_share)
    /// with a run without the trigger).
    pub fn first_recovery_after(
        &self,
        trigger_end: u64,
        window: usize,
        threshold: f64,
    ) -> Option<f64> {
        let start = (trigger_end / self.bin_nanos) as usize;
        let window = window.max(1);
        let last = self.bins.len().checked_sub(window)?;
        (start..=last)
            .find(|&i| self.healthy_window(i, window, threshold))
            .map(|i| {
                ((i + window) as u64 * self.bin_nanos).saturating_sub(trigger_end) as f64 / 1e9
            })
    }

    /// The share of the windows of `window` bins starting at bin `from`
    /// or later whose goodput is below `threshold` × their first tries.
    pub fn unhealthy_share(&self, from: usize, window: usize, threshold: f64) -> f64 {
        let window = window.max(1);
        let Some(last) = self.bins.len().checked_sub(window) else {
            return 0.0;
        };
        if from > last {
            return 0.0;
        }
        let bad = (from..=last)
            .filter(|&i| !self.healthy_window(i, window, threshold))
            .count();
        bad as f64 / (last + 1 - from) as f64
    }

    /// Seconds from `trigger_end` until the system is healthy for good:
    /// every window of `window` bins after that point has goodput of at
    /// least `threshold` × its first tries. `None` if it is still unhealthy
    /// at the end of the run (it did not recover).
    pub fn recovery_after(&self, trigger_end: u64, window: usize, threshold: f64) -> Option<f64> {
        let start = (trigger_end / self.bin_nanos) as usize;
        let n = self.bins.len();
        let window = window.max(1);
        if start + window > n {
            return None;
        }
        let healthy = |i: usize| {
            let (g, f) = self.bins[i..i + window]
                .iter()
                .fold((0u64, 0u64), |(g, f), b| (g + b.goodput, f + b.first_tries));
            g as f64 >= threshold * f as f64
        };
        // Scan back from the end: the last unhealthy window decides.
        if !healthy(n - window) {
            return None;
        }
        let mut first_good = start;
        for i in (start..=n - window).rev() {
            if !healthy(i) {
                first_good = i + window;
                break;
            }
        }
        let secs = (first_good as u64 * self.bin_nanos).saturating_sub(trigger_end) as f64 / 1e9;
        Some(secs)
    }
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Mean of a slice, 0 when empty.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}
