//! Understanding a meeting from its stored transcript, on the appliance: the
//! extractive summary, action items and insights. Pure functions over the
//! transcript's utterances — no I/O, no clock (the meeting's day is given) — so
//! every rule is tested on hand-made transcripts; `domain::understanding` gathers
//! the input in the caller's reach and keeps what people change (an item's status).
//!
//! Rules exist for English and Korean (told apart by script); other languages get
//! the language-free parts (speaking time, overlaps, silence, trackers, questions
//! the engine punctuated).

pub mod actions;
pub mod dates;
pub mod sentiment;
pub mod stats;
pub mod summary;
pub mod text;

pub use actions::ActionItem;
pub use stats::{Insights, Tracker};

use serde::Serialize;

/// One segment as the rules read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub seq: u64,
    /// Seconds from the meeting start.
    pub start: f64,
    pub end: f64,
    /// The name given to the speaker, else their label; `unknown` when not known.
    pub speaker: String,
    pub text: String,
}

/// An `action_item` event: someone marked the moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub seq: u64,
    pub at: f64,
}

/// A moment of the meeting: what was said, when and by whom.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    pub text: String,
    /// Seconds from the meeting start.
    pub at: f64,
    pub speaker: String,
    /// The segment it is in.
    pub seq: u64,
}

impl Moment {
    fn of(u: &Utterance, text: &str) -> Self {
        Self {
            text: text.to_owned(),
            at: u.start,
            speaker: u.speaker.clone(),
            seq: u.seq,
        }
    }
}
