//! Writing reports: terminal tables, CSV, JSON, SVG and PNG charts, and one
//! HTML page linking them.
//!
//! ```no_run
//! use rebound_sim::{output, scenarios::{self, Options}};
//!
//! let report = scenarios::find("layers").unwrap().run(&Options::default());
//! print!("{}", output::terminal(&report));
//! let index = output::write_all(std::path::Path::new("rebound-report"), &[report]).unwrap();
//! println!("open {}", index.display());
//! ```
//!
//! Everything written is a function of the reports alone (no timestamps,
//! no absolute paths), so the same seed gives byte-identical CSV, JSON, SVG
//! and HTML.

pub mod chart;
mod html;

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::report::{Cell, ScenarioReport, Table};

/// A table as aligned text.
pub fn table_text(t: &Table) -> String {
    let cells: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(Cell::display).collect())
        .collect();
    let widths: Vec<usize> = (0..t.columns.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .chain([t.columns[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..t.columns.len())
        .map(|c| t.rows.iter().all(|r| !matches!(r[c], Cell::Text(_))))
        .collect();
    let mut s = String::new();
    let line = |s: &mut String, vals: &[String]| {
        s.push_str("  ");
        for (c, v) in vals.iter().enumerate() {
            let pad = widths[c] - v.chars().count();
            if c > 0 {
                s.push_str("  ");
            }
            if numeric[c] {
                s.push_str(&" ".repeat(pad));
                s.push_str(v);
            } else {
                s.push_str(v);
                if c + 1 < vals.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        s.push('\n');
    };
    let _ = writeln!(s, "  {}", t.title);
    line(&mut s, &t.columns);
    let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
    line(&mut s, &rule);
    for r in &cells {
        line(&mut s, r);
    }
    s
}

/// The whole report as text for a terminal: title, tables, checked claims.
pub fn terminal(r: &ScenarioReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "━━ {} — {}", r.scenario, r.title);
    let _ = writeln!(s, "   {}", r.source);
    let _ = writeln!(s, "   seed {}, {} run(s) per point\n", r.seed, r.runs);
    for t in &r.tables {
        s.push_str(&table_text(t));
        s.push('\n');
    }
    for c in &r.checks {
        let _ = writeln!(
            s,
            "  {} {}\n      measured: {}",
            if c.holds { "✔" } else { "✘" },
            c.claim,
            c.measured
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s.push('\n');
    s
}

/// A table as CSV.
pub fn csv(t: &Table) -> io::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(&t.columns).map_err(io::Error::other)?;
    for r in &t.rows {
        w.write_record(r.iter().map(|c| match c {
            Cell::Num { value, .. } => {
                // Six decimals, trailing zeros trimmed: exact enough, stable, readable.
                let s = format!("{value:.6}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            Cell::Empty => String::new(),
            other => other.display(),
        }))
        .map_err(io::Error::other)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    String::from_utf8(bytes).map_err(io::Error::other)
}

/// A report as pretty JSON (tables, chart series, checks, notes).
pub fn json(r: &ScenarioReport) -> io::Result<String> {
    serde_json::to_string_pretty(r).map_err(io::Error::other)
}

/// Writes one scenario's files into `dir/<scenario>/`: a CSV per table, a
/// CSV per chart series (`<chart>.csv`, long format), `report.json`, and
/// each chart as SVG and PNG. Returns the files written.
pub fn write_scenario(dir: &Path, r: &ScenarioReport) -> io::Result<Vec<PathBuf>> {
    let d = dir.join(&r.scenario);
    fs::create_dir_all(&d)?;
    let mut written = Vec::new();
    let mut put = |name: String, text: String| -> io::Result<()> {
        let p = d.join(name);
        fs::write(&p, text)?;
        written.push(p);
        Ok(())
    };
    for t in &r.tables {
        put(format!("{}.csv", t.name), csv(t)?)?;
    }
    for c in &r.charts {
        let mut t = Table::new(&c.name, &c.title, &["series", &c.x_label, &c.y_label]);
        for s in &c.series {
            for p in &s.points {
                t.row(vec![
                    Cell::text(&s.name),
                    Cell::num(p[0], 6),
                    Cell::num(p[1], 6),
                ]);
            }
        }
        put(format!("{}-series.csv", c.name), csv(&t)?)?;
        put(
            format!("{}.svg", c.name),
            chart::svg(c).map_err(io::Error::other)?,
        )?;
    }
    put("report.json".into(), json(r)?)?;
    for c in &r.charts {
        let p = d.join(format!("{}.png", c.name));
        chart::png(c, &p).map_err(io::Error::other)?;
        written.push(p);
    }
    Ok(written)
}

/// Writes every report and an `index.html` linking them into `dir`.
/// Returns the path of the index.
pub fn write_all(dir: &Path, reports: &[ScenarioReport]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    for r in reports {
        write_scenario(dir, r)?;
    }
    let summary: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "scenario": r.scenario,
                "title": r.title,
                "claims_hold": r.all_hold(),
                "checks": r.checks,
            })
        })
        .collect();
    fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).map_err(io::Error::other)?,
    )?;
    let index = dir.join("index.html");
    fs::write(&index, html::page(reports))?;
    Ok(index)
}
