//! Running a scenario file's variants and reporting them.

use crate::model::SystemSpec;
use crate::report::{Band, Cell, Chart, ScenarioReport, Table};
use crate::scenarios::Options;

use super::{with_policy, ScenarioFile, Variant};

impl ScenarioFile {
    /// The variants to run: the `[[variants]]`, or the top-level policy
    /// alone.
    pub fn variants(&self) -> Vec<Variant> {
        if self.variants.is_empty() {
            vec![Variant {
                name: self.system.policy.source.to_string(),
                policy: self.system.policy.clone(),
            }]
        } else {
            self.variants.clone()
        }
    }

    /// Runs every variant and reports load, success, latency and goodput.
    pub fn run(&self, opts: &Options<'_>) -> ScenarioReport {
        let runs = opts.runs.unwrap_or(self.runs).max(1);
        let variants = self.variants();
        let specs: Vec<SystemSpec> = variants
            .iter()
            .map(|v| with_policy(&self.system, &v.policy))
            .collect();
        let results = crate::scenarios::run_specs(opts, &self.name, &specs, runs);
        let mut rep = ScenarioReport::new(
            &self.name,
            self.title.as_deref().unwrap_or(&self.name),
            "custom scenario (--config)",
            opts.seed,
            runs,
        );
        let compared: Vec<String> = variants
            .iter()
            .map(|v| format!("{} ({})", v.name, v.policy.source))
            .collect();
        rep.setup = format!(
            "{} client(s), {} layer(s), {:?} simulated; {} variant(s): {}.",
            self.system.clients,
            self.system.layers.len(),
            self.system.duration,
            variants.len(),
            compared.join("; ")
        );
        let mut t = Table::new(
            "summary",
            "Per variant (mean over runs)",
            &[
                "variant",
                "first tries",
                "load (attempts/call)",
                "bottom load",
                "success",
                "p50 latency (ms)",
                "p99 latency (ms)",
                "p99.9 latency (ms)",
                "timeouts",
                "abandoned",
                "wasted answers",
                "unfinished",
                "time to recover (s)",
            ],
        );
        let mut chart = Chart::new(
            "goodput",
            "Goodput over time (first run)",
            "time (s)",
            "goodput (calls/s)",
        );
        if let Some(te) = self.system.trigger_end {
            chart.bands.push(Band {
                from: 0.0,
                to: te.as_secs_f64(),
                label: "until trigger end".into(),
            });
        }
        for (v, mut rs) in variants.iter().zip(results) {
            let mut pct = |p: f64| {
                let xs: Vec<f64> = rs
                    .iter_mut()
                    .filter_map(|r| r.latency_percentile(p))
                    .map(|x| x as f64 / 1e6)
                    .collect();
                if xs.is_empty() {
                    Cell::Empty
                } else {
                    Cell::num(crate::stats::mean(&xs), 1)
                }
            };
            let (p50, p99, p999) = (pct(50.0), pct(99.0), pct(99.9));
            let n = rs.len() as f64;
            let avg =
                |f: &dyn Fn(&crate::stats::RunStats) -> f64| rs.iter().map(f).sum::<f64>() / n;
            let rec: Vec<Option<f64>> = match self.system.trigger_end {
                Some(te) => rs
                    .iter()
                    .map(|r| r.recovery_after(crate::dist::nanos(te), 5, 0.9))
                    .collect(),
                None => Vec::new(),
            };
            let rec_cell = if rec.is_empty() {
                Cell::Empty
            } else if rec.iter().all(Option::is_some) {
                Cell::num(rec.iter().flatten().sum::<f64>() / rec.len() as f64, 1)
            } else {
                Cell::text("did not recover")
            };
            t.row(vec![
                Cell::text(&v.name),
                Cell::num(avg(&|r| r.first_tries as f64), 0),
                Cell::num(avg(&|r| r.amplification()), 3),
                Cell::num(avg(&|r| r.bottom_amplification()), 3),
                Cell::num(avg(&|r| r.success_rate()), 4),
                p50,
                p99,
                p999,
                Cell::num(avg(&|r| r.timeouts as f64), 0),
                Cell::num(avg(&|r| r.abandoned as f64), 0),
                Cell::num(avg(&|r| r.wasted as f64), 0),
                Cell::num(avg(&|r| r.unfinished as f64), 0),
                rec_cell,
            ]);
            let secs = rs[0].bin_nanos as f64 / 1e9;
            chart.line(
                v.name.clone(),
                rs[0]
                    .goodput_per_second()
                    .iter()
                    .enumerate()
                    .map(|(i, &g)| [(i as f64 + 0.5) * secs, g])
                    .collect(),
            );
        }
        rep.tables.push(t);
        rep.charts.push(chart);
        rep
    }
}
