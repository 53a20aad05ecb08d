//! Analytics across meetings, on the appliance: how much was recorded per week, room
//! and team; who spoke how much; keyword trackers' hits; action items opened and
//! closed; the engines' confidence per room (a room whose microphone is bad shows
//! up). Pure functions — no I/O, no clock (today and the time zone's days are
//! given):
//!
//! - [`facts`]: one meeting's numbers from its transcript (no text kept),
//! - [`report`]: the numbers of many meetings as tables over a date range,
//! - [`chart`]: a table as a server-drawn SVG chart; [`csv`] as CSV.
//!
//! `domain::analytics` gathers the meetings in the caller's reach (and caches each
//! one's facts by its revision).

pub mod chart;
pub mod facts;
pub mod report;

pub use facts::{ItemFact, MeetingFacts};
pub use report::{report, Range, Report, Table};

use serde::Serialize;

/// One cell of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Count(u64),
    Number(f64),
}

impl Cell {
    pub fn number(&self) -> f64 {
        match self {
            Cell::Number(n) => *n,
            Cell::Count(n) => *n as f64,
            Cell::Text(_) => 0.0,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{n:.0}"),
            Cell::Number(n) => format!("{n:.3}"),
        }
    }
}

/// What a value means on a chart's axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Hours,
    Count,
    /// A fraction, shown as a percentage.
    Share,
}

/// Where a chart's series come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// Each of these columns is a series (a wide table).
    Columns(Vec<usize>),
    /// One series per distinct value of the `by` columns, the value in `value` (a
    /// long table).
    Pivot { by: Vec<usize>, value: usize },
}

/// How to draw a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartSpec {
    /// Series side by side, or stacked.
    pub stacked: bool,
    /// The columns whose values, joined, label a category (a bar group).
    pub category: Vec<usize>,
    pub series: Series,
    pub unit: Unit,
    /// Every category in order, those without a row too (the weeks of the range);
    /// empty: the categories the rows name.
    pub categories: Vec<String>,
}

/// A table as CSV (RFC 4180, CRLF; cells a spreadsheet would run as formulas
/// defused): the header, then the rows.
pub fn csv(t: &Table) -> String {
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let fields: Vec<String> = cells.iter().map(|c| crate::export::csv_field(c)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    };
    line(
        t.columns.iter().map(|c| (*c).to_owned()).collect(),
        &mut out,
    );
    for row in &t.rows {
        line(row.iter().map(Cell::text).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_the_header_then_each_row_quoted_and_defused() {
        let t = Table {
            id: "t",
            title: "T",
            columns: vec!["Room", "Hours"],
            rows: vec![
                vec![Cell::Text("Ward, east".into()), Cell::Number(1.5)],
                vec![Cell::Text("=cmd()".into()), Cell::Number(2.0)],
            ],
            chart: ChartSpec {
                stacked: false,
                category: vec![0],
                series: Series::Columns(vec![1]),
                unit: Unit::Hours,
                categories: vec![],
            },
            svg: String::new(),
        };
        assert_eq!(
            csv(&t),
            "Room,Hours\r\n\"Ward, east\",1.500\r\n'=cmd(),2\r\n"
        );
    }
}
