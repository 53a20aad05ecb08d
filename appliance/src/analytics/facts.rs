//! One meeting's numbers for analytics, from its transcript: when and where, how
//! long, who spoke how long, trackers' hits, its action items' states, and the
//! engines' confidence. Only numbers and names are kept — no text — so they can be
//! cached beside the sealed transcript without holding what was said.

use crate::insights::{stats, Tracker, Utterance};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::BTreeMap;

/// Speech whose speaker nobody named: labels ("Speaker 1", "channel 2", "unknown")
/// mean nothing from one meeting to the next, so they are counted together.
pub const UNNAMED: &str = "Unnamed speakers";

/// The confidence bands, best first: at least 0.9, 0.7, 0.5, and below.
pub const BANDS: [f32; 3] = [0.9, 0.7, 0.5];

/// A meeting: which, when (its day in the appliance's time zone), where, how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub meeting_id: String,
    pub day: NaiveDate,
    pub room: String,
    pub team_id: Option<String>,
    pub duration_s: f64,
}

/// An action item's state: its status and the day someone last set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemFact {
    pub status: String,
    pub changed: Option<NaiveDate>,
}

/// The segments one engine produced and how sure it was of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Quality {
    pub segments: usize,
    pub confidence_sum: f64,
    /// Segments per band of [`BANDS`] (the last: below the lowest).
    pub bands: [usize; 4],
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeetingFacts {
    pub meta: Meta,
    /// Seconds spoken per named person ([`UNNAMED`] for the rest).
    pub speaking: BTreeMap<String, f64>,
    /// Hits per tracker of the meeting's team.
    pub tracker_hits: BTreeMap<String, usize>,
    pub items: Vec<ItemFact>,
    /// Per engine.
    pub quality: BTreeMap<String, Quality>,
}

/// A segment's engine and confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub engine: String,
    pub confidence: f32,
}

/// The facts of a meeting: `said` in time order (each speaker the name given, else
/// [`UNNAMED`]), each segment's engine and confidence, its team's trackers and its
/// action items' states.
pub fn facts(
    meta: Meta,
    said: &[Utterance],
    scored: &[Scored],
    trackers: &[Tracker],
    items: Vec<ItemFact>,
) -> MeetingFacts {
    let mut speaking: BTreeMap<String, f64> = BTreeMap::new();
    for u in said {
        *speaking.entry(u.speaker.clone()).or_default() += (u.end - u.start).max(0.0);
    }
    let mut quality: BTreeMap<String, Quality> = BTreeMap::new();
    for s in scored {
        let q = quality.entry(s.engine.clone()).or_default();
        q.segments += 1;
        q.confidence_sum += f64::from(s.confidence);
        let band = BANDS
            .iter()
            .position(|b| s.confidence >= *b)
            .unwrap_or(BANDS.len());
        q.bands[band] += 1;
    }
    MeetingFacts {
        meta,
        speaking,
        tracker_hits: trackers
            .iter()
            .map(|t| (t.name.clone(), stats::hits(said, t).count))
            .collect(),
        items,
        quality,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(speaker: &str, start: f64, end: f64, text: &str) -> Utterance {
        Utterance {
            seq: 0,
            start,
            end,
            speaker: speaker.into(),
            text: text.into(),
        }
    }

    #[test]
    fn speaking_time_tracker_hits_and_confidence_bands() {
        let meta = Meta {
            meeting_id: "m".into(),
            day: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            room: "Ward".into(),
            team_id: None,
            duration_s: 60.0,
        };
        let said = [
            u(
                "Ana",
                0.0,
                10.0,
                "We had a complaint about the adverse event.",
            ),
            u(UNNAMED, 10.0, 14.0, "Another complaint, off the record."),
            u("Ana", 15.0, 20.0, "Noted."),
        ];
        let scored = [0.95, 0.8, 0.3]
            .into_iter()
            .map(|c| Scored {
                engine: "vosk".into(),
                confidence: c,
            })
            .chain([Scored {
                engine: "whisper".into(),
                confidence: 0.7,
            }])
            .collect::<Vec<_>>();
        let trackers = [
            Tracker {
                name: "Complaints".into(),
                phrases: vec!["complaint".into(), "adverse event".into()],
            },
            Tracker {
                name: "Competitor".into(),
                phrases: vec!["Acme".into()],
            },
        ];
        let f = facts(meta, &said, &scored, &trackers, vec![]);
        assert_eq!(f.speaking["Ana"], 15.0);
        assert_eq!(f.speaking[UNNAMED], 4.0);
        assert_eq!(f.tracker_hits["Complaints"], 3);
        assert_eq!(f.tracker_hits["Competitor"], 0);
        assert_eq!(f.quality["vosk"].segments, 3);
        assert_eq!(f.quality["vosk"].bands, [1, 1, 0, 1]);
        assert_eq!(
            f.quality["whisper"].bands,
            [0, 1, 0, 0],
            "0.7 is in its band"
        );
        assert!((f.quality["vosk"].confidence_sum - 2.05).abs() < 1e-6);
    }
}
