//! What a scenario hands back: tables, chart data and checked claims, as
//! plain data that every output (terminal, CSV, JSON, SVG, PNG, HTML) is
//! written from.

use serde::{Deserialize, Serialize};

/// The result of one scenario: its tables, charts and checked claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Short name, e.g. `jitter-occ` (also the folder name of its files).
    pub scenario: String,
    /// One-line title.
    pub title: String,
    /// Where the claim was published.
    pub source: String,
    /// The model and its parameters, in a few sentences.
    pub setup: String,
    /// Seed of the sweep.
    pub seed: u64,
    /// Runs per point.
    pub runs: u32,
    /// Tables of numbers (each also written as CSV).
    pub tables: Vec<Table>,
    /// Charts (each written as SVG and PNG).
    pub charts: Vec<Chart>,
    /// The published claims, each with what this run measured.
    pub checks: Vec<Check>,
    /// Anything a reader should know (deviations, caveats).
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// An empty report.
    pub fn new(scenario: &str, title: &str, source: &str, seed: u64, runs: u32) -> Self {
        ScenarioReport {
            scenario: scenario.into(),
            title: title.into(),
            source: source.into(),
            setup: String::new(),
            seed,
            runs,
            tables: Vec::new(),
            charts: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Whether every check holds.
    pub fn all_hold(&self) -> bool {
        self.checks.iter().all(|c| c.holds)
    }

    /// Adds a check.
    pub fn check(&mut self, claim: impl Into<String>, measured: impl Into<String>, holds: bool) {
        self.checks.push(Check {
            claim: claim.into(),
            measured: measured.into(),
            holds,
        });
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// A published claim and what the simulation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The claim, in words.
    pub claim: String,
    /// The measured numbers.
    pub measured: String,
    /// Whether the measurement agrees.
    pub holds: bool,
}

/// A table: named columns, rows of cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// File stem (`calls` → `calls.csv`).
    pub name: String,
    /// Title shown above it.
    pub title: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows; each has one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table.
    pub fn new(name: &str, title: &str, columns: &[&str]) -> Self {
        Table {
            name: name.into(),
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// The cell at `row`, column named `column`.
    pub fn get(&self, row: usize, column: &str) -> Option<&Cell> {
        let c = self.columns.iter().position(|x| x == column)?;
        self.rows.get(row)?.get(c)
    }
}

/// One value of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number shown with `decimals` decimals (stored in full).
    Num {
        /// The value.
        value: f64,
        /// Decimals when shown.
        decimals: u8,
    },
    /// No value (e.g. "never recovered").
    Empty,
}

impl Cell {
    /// Text.
    pub fn text(s: impl Into<String>) -> Self {
        Cell::Text(s.into())
    }

    /// A whole number.
    pub fn int(v: impl TryInto<i64>) -> Self {
        Cell::Int(v.try_into().unwrap_or(i64::MAX))
    }

    /// A number with `decimals` decimals.
    pub fn num(value: f64, decimals: u8) -> Self {
        Cell::Num { value, decimals }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Cell::Int(v) => Some(v as f64),
            Cell::Num { value, .. } => Some(value),
            _ => None,
        }
    }

    /// As shown in tables and CSV.
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(v) => v.to_string(),
            Cell::Num { value, decimals } => format!("{value:.*}", *decimals as usize),
            Cell::Empty => "-".into(),
        }
    }
}

/// A line chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// File stem (`calls` → `calls.svg`, `calls.png`).
    pub name: String,
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// Shaded x ranges (a trigger window), with a label.
    pub bands: Vec<Band>,
}

impl Chart {
    /// A linear chart with no series yet.
    pub fn new(name: &str, title: &str, x_label: &str, y_label: &str) -> Self {
        Chart {
            name: name.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            series: Vec::new(),
            bands: Vec::new(),
        }
    }

    /// Adds a line.
    pub fn line(&mut self, name: impl Into<String>, points: Vec<[f64; 2]>) {
        self.series.push(Series {
            name: name.into(),
            points,
            dashed: false,
        });
    }

    /// Adds a dashed line (a closed form, an expectation).
    pub fn dashed(&mut self, name: impl Into<String>, points: Vec<[f64; 2]>) {
        self.series.push(Series {
            name: name.into(),
            points,
            dashed: true,
        });
    }
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Legend.
    pub name: String,
    /// `[x, y]` points.
    pub points: Vec<[f64; 2]>,
    /// Drawn dashed, without markers (expected values).
    pub dashed: bool,
}

/// A shaded x range on a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// Start.
    pub from: f64,
    /// End.
    pub to: f64,
    /// Label.
    pub label: String,
}
