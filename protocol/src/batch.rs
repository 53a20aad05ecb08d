//! The plaintext inside an envelope: a batch of finished transcript segments, or a
//! live caption (a partial result). Serialized as UTF-8 JSON before sealing (see
//! docs/PROTOCOL.md, "Batch" and "Caption").

use serde::{Deserialize, Serialize};

/// What the agent knows about the meeting; repeated in every batch so the appliance
/// can create the meeting from whichever envelope arrives first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingInfo {
    /// Wall-clock start of the meeting on the agent, Unix milliseconds.
    pub started_at_ms: i64,
    /// Human title, e.g. the input file name or "Live capture".
    pub title: String,
}

/// One recognised word. Times are seconds from the meeting start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    /// Recogniser confidence in [0, 1].
    pub conf: f32,
}

/// One final transcript segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Position of the segment in its meeting, from 0, contiguous.
    pub seq: u64,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<Word>,
    /// Mean word confidence, 0 when the segment has no words.
    pub confidence: f32,
    /// Who spoke, when the agent can tell reliably: `"channel N"` (1-based) for a
    /// room with one microphone per seat. Absent means unknown; never guessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// The engine that produced the text: `"vosk"` or `"whisper"` (absent from agents
    /// older than the Whisper engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The model that produced the text (its directory name, e.g. `"whisper-tiny.en"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// What happened at a moment of a meeting that is not words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Recording started.
    Start,
    /// Recording stopped: the meeting ended.
    Stop,
    /// Recording paused: what follows until `Resume` is not transcribed.
    Pause,
    Resume,
    /// Someone marked an action item here.
    ActionItem,
    /// Someone marked this moment as important.
    Highlight,
    /// The team requires everyone's consent and not everyone has given it: from here
    /// nothing is transcribed until `ConsentGiven`.
    ConsentPending,
    /// Consent was given: transcription goes on from here.
    ConsentGiven,
    /// The room announced its recording notice.
    Notice,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Start,
        EventKind::Stop,
        EventKind::Pause,
        EventKind::Resume,
        EventKind::ActionItem,
        EventKind::Highlight,
        EventKind::ConsentPending,
        EventKind::ConsentGiven,
        EventKind::Notice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Stop => "stop",
            EventKind::Pause => "pause",
            EventKind::Resume => "resume",
            EventKind::ActionItem => "action_item",
            EventKind::Highlight => "highlight",
            EventKind::ConsentPending => "consent_pending",
            EventKind::ConsentGiven => "consent_given",
            EventKind::Notice => "notice",
        }
    }
}

/// Who or what caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// A voice command heard in the room.
    Voice,
    /// `roomscribe-agent meeting ...` on the room computer (a button, a kiosk).
    Local,
    /// A command signed by the appliance (someone in the console).
    Appliance,
    /// The room's calendar, pushed by the appliance.
    Schedule,
    /// `capture.autostart` when the agent started.
    Autostart,
    /// The agent was shut down (SIGTERM, Ctrl-C) during the meeting.
    Shutdown,
    /// The disk stayed full (`queue.disk_full_end_after_secs`): the agent ended the
    /// meeting with what it held, in space it had kept in reserve.
    DiskFull,
    /// An error the agent could not get past (logged on the room computer) ended the
    /// meeting with what it had sealed.
    Fault,
    /// The agent stopped without ending the meeting (killed, crashed, power lost) and
    /// ended it, with what it had sealed, when it started again.
    Recovered,
    /// The team's consent rule, kept by the agent (a notice, or consent pending).
    Policy,
}

/// One event of a meeting. Numbered per meeting from 0 like segments, so an event
/// sealed twice (a file job resumed after a crash) is stored once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingEvent {
    pub seq: u64,
    /// Seconds from the meeting start.
    pub at: f64,
    pub kind: EventKind,
    pub source: EventSource,
}

/// The sealed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub meeting: MeetingInfo,
    pub segments: Vec<Segment>,
    /// True on the last envelope of a meeting.
    pub ended: bool,
    /// Events since the last batch (voice commands, pause/resume, marks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<MeetingEvent>,
}

impl Batch {
    /// The first number in the batch that is not finite (NaN or infinite), named: JSON
    /// cannot carry it, so such a batch would be refused by the appliance for ever.
    pub fn non_finite(&self) -> Option<String> {
        for s in &self.segments {
            let fields = [
                ("start", s.start),
                ("end", s.end),
                ("confidence", f64::from(s.confidence)),
            ];
            if let Some((f, _)) = fields.iter().find(|(_, v)| !v.is_finite()) {
                return Some(format!("segment {}: {f} is not a finite number", s.seq));
            }
            for (i, w) in s.words.iter().enumerate() {
                let fields = [
                    ("start", w.start),
                    ("end", w.end),
                    ("conf", f64::from(w.conf)),
                ];
                if let Some((f, _)) = fields.iter().find(|(_, v)| !v.is_finite()) {
                    return Some(format!(
                        "segment {}, word {i}: {f} is not a finite number",
                        s.seq
                    ));
                }
            }
        }
        self.events
            .iter()
            .find(|e| !e.at.is_finite())
            .map(|e| format!("event {}: at is not a finite number", e.seq))
    }
}

impl Segment {
    /// Replaces numbers that are not finite (a recognizer's NaN) so the segment can be
    /// sealed: a time takes the nearest finite time before it (else 0), a confidence
    /// becomes 0. Returns how many were replaced; the words themselves are kept.
    pub fn repair_non_finite(&mut self) -> usize {
        let mut fixed = 0;
        let mut last = if self.start.is_finite() {
            self.start
        } else {
            0.0
        };
        let mut time = |t: &mut f64, fixed: &mut usize| {
            if t.is_finite() {
                last = *t;
            } else {
                *t = last;
                *fixed += 1;
            }
        };
        time(&mut self.start, &mut fixed);
        for w in &mut self.words {
            time(&mut w.start, &mut fixed);
            time(&mut w.end, &mut fixed);
            if !w.conf.is_finite() {
                w.conf = 0.0;
                fixed += 1;
            }
        }
        time(&mut self.end, &mut fixed);
        if !self.confidence.is_finite() {
            self.confidence = 0.0;
            fixed += 1;
        }
        fixed
    }

    /// Builds a segment from words, deriving text, times and mean confidence.
    pub fn from_words(seq: u64, words: Vec<Word>) -> Self {
        let text = words
            .iter()
            .map(|w| w.word.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let start = words.first().map_or(0.0, |w| w.start);
        let end = words.last().map_or(0.0, |w| w.end);
        let confidence = if words.is_empty() {
            0.0
        } else {
            words.iter().map(|w| w.conf).sum::<f32>() / words.len() as f32
        };
        Self {
            seq,
            start,
            end,
            text,
            words,
            confidence,
            speaker: None,
            engine: None,
            model: None,
        }
    }
}

/// A live caption: the words of the utterance in progress as the recogniser currently
/// hears them. Sealed and signed like a batch (envelope kind 2) but never queued on
/// disk: it is sent only while connected and replaced by the final segment
/// `segment_seq` when that arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caption {
    pub meeting: MeetingInfo,
    /// The number the final segment for these words will get.
    pub segment_seq: u64,
    pub text: String,
    /// Seconds from the meeting start to the end of the audio heard so far.
    pub heard_until: f64,
    /// As in [`Segment::speaker`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}
