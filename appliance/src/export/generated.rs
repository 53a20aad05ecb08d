//! What Roomscribe worked out from a transcript — the summary and the action items —
//! as exports carry it: never as if someone said it, always headed as generated, by
//! what, with the advice to check it against the transcript.

use super::{clock, one_line};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generated {
    /// Always true: a reader of the JSON cannot take it for the transcript.
    pub generated: bool,
    /// What made it, e.g. "extractive summary (Roomscribe, on this appliance)".
    pub generated_by: String,
    pub summary: Vec<SummaryLine>,
    pub action_items: Vec<Item>,
}

/// A sentence of the summary, with when and by whom it was said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryLine {
    /// Seconds from the meeting's start.
    pub at: f64,
    pub speaker: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub text: String,
    pub owner: Option<String>,
    /// An ISO date.
    pub due: Option<String>,
    /// Seconds from the meeting's start.
    pub at: f64,
    /// `open`, `done` or `dismissed`.
    pub status: String,
}

/// A line of the generated block as people read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Heading(String),
    Text(String),
}

impl Generated {
    /// The block as headings and lines (each on one line), for the formats people
    /// read; nothing when there is nothing to show.
    pub fn lines(&self) -> Vec<Line> {
        let mut out = vec![];
        if self.summary.is_empty() && self.action_items.is_empty() {
            return out;
        }
        out.push(Line::Heading(format!(
            "Summary — generated ({}); check it against the transcript",
            one_line(&self.generated_by)
        )));
        for s in &self.summary {
            out.push(Line::Text(format!(
                "[{}] {}: {}",
                clock(s.at),
                one_line(&s.speaker),
                one_line(&s.text)
            )));
        }
        if !self.action_items.is_empty() {
            out.push(Line::Heading("Action items — generated".into()));
            for i in &self.action_items {
                let mut line = format!("[{}] {}", clock(i.at), one_line(&i.text));
                if let Some(o) = &i.owner {
                    line.push_str(&format!(" · owner {}", one_line(o)));
                }
                if let Some(d) = &i.due {
                    line.push_str(&format!(" · due {d}"));
                }
                line.push_str(&format!(" · {}", i.status));
                out.push(Line::Text(line));
            }
        }
        out
    }
}
