//! The story's figures per phase, the table `--headless` prints, and the
//! facts the story claims, checked.

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use crate::sample::{quantile, Sample, SideSample};
use crate::story::StoryPhase;

/// One side's totals over a phase (or the whole run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideTotals {
    /// Orders placed.
    pub orders: u64,
    /// Requests that reached the inventory's front door.
    pub attempts: u64,
    /// `attempts / orders`.
    pub load: f64,
    /// Orders confirmed at once.
    pub confirmed: u64,
    /// Orders queued by the fallback.
    pub queued: u64,
    /// Orders that failed.
    pub failed: u64,
    /// Orders refused as sold out.
    pub sold_out: u64,
    /// Units reserved twice for one order.
    pub double_reservations: u64,
    /// Retries answered by the idempotency layer without reserving again.
    pub duplicates_prevented: u64,
    /// The 99th percentile response time, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Samples in which the breaker was not closed.
    pub breaker_open_samples: u32,
}

impl SideTotals {
    fn add(&mut self, s: &SideSample, before: &SideSample) {
        self.orders += s.orders;
        self.attempts += s.attempts;
        self.confirmed += s.confirmed;
        self.queued += s.queued;
        self.failed += s.failed;
        self.sold_out += s.sold_out;
        self.double_reservations += s.double_reservations - before.double_reservations;
        self.duplicates_prevented += s.duplicates_prevented - before.duplicates_prevented;
        if s.breaker == "open" || s.breaker == "half_open" {
            self.breaker_open_samples += 1;
        }
        self.load = if self.orders == 0 {
            0.0
        } else {
            self.attempts as f64 / self.orders as f64
        };
    }
}

/// One phase, both sides.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseRow {
    /// The phase.
    pub phase: StoryPhase,
    /// Naive retries.
    pub naive: SideTotals,
    /// rebound.
    pub rebound: SideTotals,
}

/// A claim of the story and whether this run bore it out.
#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    /// What the story claims.
    pub claim: String,
    /// Whether it held.
    pub holds: bool,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// The story's length in seconds.
    pub duration_s: f64,
    /// Orders per second, per side.
    pub rate: u32,
    /// Per phase.
    pub phases: Vec<PhaseRow>,
    /// Naive, whole run.
    pub naive: SideTotals,
    /// rebound, whole run.
    pub rebound: SideTotals,
    /// Jobs in rebound's dead-letter queue at the end.
    pub dead_letters: u64,
    /// Orders the warehouse shipped (rebound side).
    pub shipped: u64,
    /// Queued orders the warehouse reserved later (rebound side).
    pub reserved_later: u64,
}

/// Per side, per phase: response times in ms.
pub(crate) type PhaseLatencies = HashMap<&'static str, [Vec<f64>; 2]>;

impl Summary {
    pub(crate) fn build(
        seed: u64,
        duration_s: f64,
        rate: u32,
        phases: &[StoryPhase],
        samples: &[Sample],
        mut latencies: PhaseLatencies,
        end: (u64, u64, u64),
    ) -> Summary {
        let mut rows: Vec<PhaseRow> = phases
            .iter()
            .map(|p| PhaseRow {
                phase: p.clone(),
                naive: SideTotals::default(),
                rebound: SideTotals::default(),
            })
            .collect();
        let (mut naive, mut rebound) = (SideTotals::default(), SideTotals::default());
        let zero = SideSample::default();
        for (k, s) in samples.iter().enumerate() {
            let prev = k.checked_sub(1).map(|p| &samples[p]);
            let (bn, br) = prev.map_or((&zero, &zero), |p| (&p.naive, &p.rebound));
            if let Some(row) = rows.iter_mut().find(|r| r.phase.name == s.phase) {
                row.naive.add(&s.naive, bn);
                row.rebound.add(&s.rebound, br);
            }
            naive.add(&s.naive, bn);
            rebound.add(&s.rebound, br);
        }
        let mut all = [Vec::new(), Vec::new()];
        for row in &mut rows {
            if let Some([n, r]) = latencies.get_mut(row.phase.name) {
                all[0].extend_from_slice(n);
                all[1].extend_from_slice(r);
                row.naive.p99_ms = quantile(n, 0.99);
                row.rebound.p99_ms = quantile(r, 0.99);
            }
        }
        naive.p99_ms = quantile(&mut all[0], 0.99);
        rebound.p99_ms = quantile(&mut all[1], 0.99);
        Summary {
            seed,
            duration_s,
            rate,
            phases: rows,
            naive,
            rebound,
            dead_letters: end.0,
            shipped: end.1,
            reserved_later: end.2,
        }
    }

    /// The row of a phase.
    pub fn phase(&self, name: &str) -> Option<&PhaseRow> {
        self.phases.iter().find(|r| r.phase.name == name)
    }

    /// The story's claims, checked against this run.
    pub fn facts(&self) -> Vec<Fact> {
        let outage = self.phase("outage");
        let (nl, rl) = outage.map_or((0.0, f64::INFINITY), |o| (o.naive.load, o.rebound.load));
        let breaker = outage.is_some_and(|o| o.rebound.breaker_open_samples > 0);
        vec![
            Fact {
                claim: format!(
                    "naive retries reserved stock twice for one order ({} times)",
                    self.naive.double_reservations
                ),
                holds: self.naive.double_reservations > 0,
            },
            Fact {
                claim: format!(
                    "rebound reserved each order exactly once ({} double reservations, {} duplicates prevented)",
                    self.rebound.double_reservations, self.rebound.duplicates_prevented
                ),
                holds: self.rebound.double_reservations == 0,
            },
            Fact {
                claim: format!("in the outage, naive retries multiplied the load on the inventory near 4x ({nl:.2}x)"),
                holds: nl >= 3.5,
            },
            Fact {
                claim: format!("in the outage, rebound held the load at or under 1.2x ({rl:.2}x)"),
                holds: rl <= 1.2,
            },
            Fact {
                claim: "in the outage, rebound's circuit breaker opened".to_owned(),
                holds: breaker,
            },
            Fact {
                claim: format!(
                    "rebound's fallback queued {} orders instead of failing them ({} failed)",
                    self.rebound.queued, self.rebound.failed
                ),
                holds: self.rebound.queued > 0,
            },
            Fact {
                claim: format!(
                    "poison tasks ended in the dead-letter queue ({} jobs)",
                    self.dead_letters
                ),
                holds: self.dead_letters > 0,
            },
        ]
    }

    /// The table `--headless` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rebound demo: {:.0} s, {} orders/s per side, seed {}\n",
            self.duration_s, self.rate, self.seed
        );
        let _ = writeln!(
            out,
            "{:<9} {:<8} {:>6} {:>8} {:>6} {:>9} {:>6} {:>6} {:>8} {:>6} {:>9} {:>8} {:>7}",
            "phase",
            "side",
            "orders",
            "attempts",
            "load",
            "confirmed",
            "queued",
            "failed",
            "sold out",
            "double",
            "prevented",
            "p99 ms",
            "breaker"
        );
        let line = |out: &mut String, phase: &str, side: &str, t: &SideTotals, breaker: String| {
            let _ = writeln!(
                out,
                "{:<9} {:<8} {:>6} {:>8} {:>5.2}x {:>9} {:>6} {:>6} {:>8} {:>6} {:>9} {:>8} {:>7}",
                phase,
                side,
                t.orders,
                t.attempts,
                t.load,
                t.confirmed,
                t.queued,
                t.failed,
                t.sold_out,
                t.double_reservations,
                t.duplicates_prevented,
                t.p99_ms.map_or("-".to_owned(), |v| format!("{v:.0}")),
                breaker
            );
        };
        for row in &self.phases {
            line(&mut out, row.phase.name, "naive", &row.naive, "none".into());
            let b = if row.rebound.breaker_open_samples > 0 {
                "opened"
            } else {
                "closed"
            };
            line(&mut out, "", "rebound", &row.rebound, b.into());
        }
        line(&mut out, "total", "naive", &self.naive, "none".into());
        line(&mut out, "", "rebound", &self.rebound, String::new());
        let _ = writeln!(
            out,
            "\nwarehouse (rebound): {} shipped, {} queued orders reserved later, {} poison jobs in the dead-letter queue",
            self.shipped, self.reserved_later, self.dead_letters
        );
        let _ = writeln!(out, "\nThe story:");
        for f in self.facts() {
            let _ = writeln!(out, "  [{}] {}", if f.holds { "ok" } else { "NO" }, f.claim);
        }
        out
    }
}
