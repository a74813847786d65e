//! What the demo measures, per interval and per side.

use serde::Serialize;

/// One side's figures over one interval (rates per interval; the counts
/// marked cumulative are totals since the start).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideSample {
    /// Orders the customers placed.
    pub orders: u64,
    /// Requests that reached the inventory's front door (the chaos proxy):
    /// first attempts, retries, and the warehouse's queued reservations.
    pub attempts: u64,
    /// `attempts / orders`: how much load each order put on the inventory.
    pub load: f64,
    /// The breaker: `closed`, `open`, `half_open` (`none` on the naive side).
    pub breaker: &'static str,
    /// Retries the budget would still allow now (`None`: no budget).
    pub budget_left: Option<f64>,
    /// Cumulative: retries the idempotency layer answered without reserving
    /// again.
    pub duplicates_prevented: u64,
    /// Cumulative: units reserved twice for one order.
    pub double_reservations: u64,
    /// Jobs in the dead-letter queue (`None`: no queue).
    pub dead_letters: Option<u64>,
    /// The 99th percentile of the orders' response times that ended in
    /// the interval, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Orders confirmed at once.
    pub confirmed: u64,
    /// Orders queued by the fallback.
    pub queued: u64,
    /// Orders that failed (the customer saw an error).
    pub failed: u64,
    /// Orders refused: sold out.
    pub sold_out: u64,
}

/// Both sides over one interval.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Its number, from 0.
    pub i: usize,
    /// Its end, in seconds from the story's start.
    pub t: f64,
    /// Its length in seconds (1, shorter at a phase change).
    pub dt: f64,
    /// The timeline's phase.
    pub phase: &'static str,
    /// Naive retries.
    pub naive: SideSample,
    /// rebound.
    pub rebound: SideSample,
}

/// The `q` quantile (0..=1) of `values` (sorted in place), or `None`.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * q).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), Some(99.0));
        assert_eq!(quantile(&mut [3.0], 0.99), Some(3.0));
        assert_eq!(quantile(&mut [], 0.99), None);
    }
}
