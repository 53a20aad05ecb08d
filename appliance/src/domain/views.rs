//! What the API and the live event stream show. Stable JSON shapes (documented in README).

use crate::store::records::{
    EventRecord, MeetingStatus, ParticipantRecord, RevisionRecord, SegmentRecord, WordRecord,
};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    pub id: String,
    pub name: String,
    /// The team the room's meetings belong to (`null`: none; only roles reaching
    /// everything see them).
    pub team_id: Option<String>,
    pub team_name: Option<String>,
    pub created_at_ms: i64,
    pub agent_count: usize,
    pub online: bool,
}

/// An envelope the agent holds in quarantine, and why this appliance refused it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantinedView {
    pub seq: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub id: String,
    pub room_id: String,
    /// The room's team.
    pub team_id: Option<String>,
    pub room_name: String,
    pub hostname: String,
    pub enrolled_at_ms: i64,
    pub revoked: bool,
    pub online: bool,
    pub last_seen_ms: Option<i64>,
    /// Agent clock minus appliance clock, as observed at the last heartbeat.
    pub clock_offset_ms: Option<i64>,
    pub last_envelope_seq: Option<u64>,
    /// Envelopes refused for good that the agent holds in quarantine.
    pub quarantined: Vec<u64>,
    /// The same envelopes, each with why it was refused.
    pub quarantine: Vec<QuarantinedView>,
    /// The room schedule version the agent confirmed it stored (since start-up).
    pub schedule_version: Option<u64>,
    /// The last heartbeat's status (version, model, device, input level, queue,
    /// disk budget, alarms); `null` until the agent has connected since start-up.
    pub status: Option<roomscribe_protocol::hello::AgentStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeetingView {
    pub id: String,
    pub room_id: String,
    /// The team the meeting belongs to.
    pub team_id: Option<String>,
    pub room_name: String,
    pub agent_id: String,
    pub title: String,
    /// Start on the agent's clock.
    pub started_at_ms: i64,
    /// Agent clock minus appliance clock when the meeting's first envelope arrived
    /// (`null` if the agent was not connected live then).
    pub clock_skew_ms: Option<i64>,
    /// `started_at_ms` corrected by the skew: the appliance-clock start.
    pub started_at_corrected_ms: i64,
    pub status: MeetingStatus,
    pub segment_count: u64,
    pub duration_s: f64,
    /// Names given to speaker labels in the console.
    pub speaker_names: std::collections::BTreeMap<String, String>,
    /// One of the administrator's meeting types, if set.
    #[serde(rename = "type")]
    pub meeting_type: Option<String>,
    pub tags: Vec<String>,
    pub participants: Vec<ParticipantRecord>,
    /// Consent: the agent's gate and notice, each participant's state, the evidence.
    pub consent: super::consent::ConsentView,
    /// Changes to the meeting's details and corrections of its segments so far.
    pub revision: u64,
    /// A legal hold covers it (its own, its room's or its team's): nobody can erase it.
    pub held: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentView {
    pub seq: u64,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<WordRecord>,
    pub confidence: f32,
    /// Speaker label (`"channel N"`), or `"unknown"`: never guessed.
    pub speaker: String,
    /// `"vosk"` or `"whisper"`; absent when the agent did not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Corrections so far: 0 as the agent sent it. A correction names it.
    pub version: u64,
    /// Whether a person corrected the text or speaker.
    pub edited: bool,
}

impl From<SegmentRecord> for SegmentView {
    fn from(s: SegmentRecord) -> Self {
        Self {
            seq: s.seq,
            start: s.start,
            end: s.end,
            text: s.text,
            words: s.words,
            confidence: s.confidence,
            speaker: s.speaker.unwrap_or_else(|| UNKNOWN_SPEAKER.to_owned()),
            engine: s.engine,
            model: s.model,
            edited: s.version > 0,
            version: s.version,
        }
    }
}

/// One correction, as `GET …/segments/{n}/history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionView {
    /// The version this revision made.
    pub version: u64,
    pub at_ms: i64,
    pub by: String,
    pub text_before: String,
    pub text_after: String,
    pub speaker_before: String,
    pub speaker_after: String,
}

impl From<RevisionRecord> for RevisionView {
    fn from(r: RevisionRecord) -> Self {
        let label = |s: Option<String>| s.unwrap_or_else(|| UNKNOWN_SPEAKER.to_owned());
        Self {
            version: r.version,
            at_ms: r.at_ms,
            by: r.by,
            text_before: r.text_before,
            text_after: r.text_after,
            speaker_before: label(r.speaker_before),
            speaker_after: label(r.speaker_after),
        }
    }
}

/// Whether the original a segment's history shows is what the agent signed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureCheck {
    /// The agent's signature over its sealed envelope verifies, and the envelope
    /// holds exactly this text and speaker.
    Verified { agent_id: String, envelope_seq: u64 },
    /// The envelope holds other words than the original kept here: storage was altered.
    Mismatch { signed_text: String },
    /// The kept envelope does not verify or open.
    Invalid { reason: String },
    /// Nothing to check against (segments stored before envelopes were kept).
    NotKept { reason: String },
}

/// The original of a segment, as the agent sent it.
#[derive(Debug, Clone, Serialize)]
pub struct OriginalView {
    pub text: String,
    pub speaker: String,
    pub signature: SignatureCheck,
}

/// A segment now, every correction of it, and its verified original.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentHistoryView {
    pub meeting_id: String,
    pub segment: SegmentView,
    pub revisions: Vec<RevisionView>,
    pub original: OriginalView,
}

pub const UNKNOWN_SPEAKER: &str = "unknown";

/// Something that happened in a meeting: a voice command, a pause, a mark.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: u64,
    /// Seconds from the meeting start.
    pub at: f64,
    /// `start`, `stop`, `pause`, `resume`, `action_item` or `highlight`.
    pub kind: roomscribe_protocol::EventKind,
    /// `voice`, `local`, `appliance`, `schedule`, `autostart` or `shutdown`.
    pub source: roomscribe_protocol::EventSource,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            source: e.source,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TranscriptView {
    pub meeting: MeetingView,
    pub segments: Vec<SegmentView>,
    /// Voice commands, pauses and marks, in order.
    pub events: Vec<EventView>,
    /// The live caption after the last segment, while the meeting is live.
    pub caption: Option<CaptionView>,
    /// The statuses people set on its action items (for
    /// `GET /meetings/{id}/summary`; not sent with the transcript).
    #[serde(skip)]
    pub action_items: std::collections::BTreeMap<String, crate::store::records::ActionItemState>,
    /// Its team's keyword trackers (not sent with the transcript).
    #[serde(skip)]
    pub trackers: Vec<crate::insights::Tracker>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnrollTokenView {
    /// The token text; shown once.
    pub token: String,
    pub room_id: String,
    pub room_name: String,
    pub expires_at_ms: i64,
    /// UDP port of the QUIC ingest agents enroll with.
    pub ingest_port: u16,
}

/// The words of the utterance in progress (a live caption), until its final segment
/// arrives.
#[derive(Debug, Clone, Serialize)]
pub struct CaptionView {
    /// The number its final segment will have.
    pub segment_seq: u64,
    pub text: String,
    /// Seconds into the meeting the agent had heard when it sent this.
    pub heard_until: f64,
    pub received_at_ms: i64,
    /// As in [`SegmentView::speaker`].
    pub speaker: String,
}

/// A live event for the console.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Segment {
        meeting_id: String,
        segment: SegmentView,
    },
    Meeting {
        meeting: MeetingView,
    },
    /// A meeting was erased: consoles drop it.
    MeetingErased {
        meeting_id: String,
    },
    Caption {
        meeting_id: String,
        caption: CaptionView,
    },
    Agent {
        agent: Box<AgentView>,
    },
    MeetingEvent {
        meeting_id: String,
        event: EventView,
    },
}

/// An agent's answer to a command from the console.
#[derive(Debug, Clone, Serialize)]
pub struct CommandResultView {
    pub id: String,
    /// Whether the agent carried it out.
    pub ok: bool,
    /// The agent's answer, e.g. "starting a meeting" or "no meeting is being recorded".
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleEntryView {
    pub id: String,
    pub title: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_by: String,
}

/// A room's calendar: the meetings its agent records on its own.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    pub room_id: String,
    pub version: u64,
    pub entries: Vec<ScheduleEntryView>,
}

/// The signed-in user as the console needs it.
#[derive(Debug, Clone, Serialize)]
pub struct MeView {
    pub username: String,
    /// Roles with an unexpired grant.
    pub roles: Vec<String>,
    /// Effective permissions and how far each reaches (`all` or `teams`).
    pub permissions: std::collections::BTreeMap<String, super::access::Scope>,
    /// Names of the user's teams.
    pub teams: Vec<String>,
    pub must_change_password: bool,
    /// A role requires a second factor that is not set up yet.
    pub must_enroll_totp: bool,
    pub totp_enabled: bool,
    /// How this session signed in: `password`, `ldap`, `oidc`, `token`.
    pub via: super::access::Via,
    /// The session's CSRF token (console sessions only), for `X-CSRF-Token`.
    pub csrf_token: Option<String>,
}

/// An API token (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub permissions: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked: bool,
    /// Last use since the appliance started.
    pub last_used_ms: Option<i64>,
}

/// A token just created: the only time its text is shown.
#[derive(Debug, Clone, Serialize)]
pub struct NewTokenView {
    /// `rst_<id>_<secret>`, for `Authorization: Bearer`.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

/// A new TOTP secret to enter in an authenticator app.
#[derive(Debug, Clone, Serialize)]
pub struct TotpSetupView {
    /// Base32, for typing in.
    pub secret: String,
    /// `otpauth://` URI, for pasting or a QR code.
    pub otpauth_uri: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    pub role: String,
    pub expires_at_ms: Option<i64>,
    pub granted_by: String,
    pub granted_at_ms: i64,
    /// Not expired.
    pub active: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub username: String,
    pub grants: Vec<GrantView>,
    /// Team names.
    pub teams: Vec<String>,
    pub disabled: bool,
    pub must_change_password: bool,
    pub created_at_ms: i64,
    /// Where the account signs in: `null` here (a local password), `ldap`, `oidc`.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
    pub consent: ConsentPolicyView,
    pub trackers: Vec<crate::insights::Tracker>,
}

/// A team's consent rule as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentPolicyView {
    /// `record_without_consent`, `require_all` or `require_announcement`.
    pub rule: &'static str,
    pub notice: String,
    /// `speaker` or `meeting`: what a withdrawal erases when nothing is attributed.
    pub withdrawal: &'static str,
    pub version: u64,
}

impl From<crate::store::records::TeamRecord> for TeamView {
    fn from(t: crate::store::records::TeamRecord) -> Self {
        Self {
            id: t.id,
            name: t.name,
            members: t.members.into_iter().collect(),
            consent: ConsentPolicyView {
                rule: t.consent.rule.as_str(),
                notice: t.consent.notice,
                withdrawal: t.consent.withdrawal.as_str(),
                version: t.consent.version,
            },
            trackers: t.trackers,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    pub scope: super::access::Scope,
    pub permissions: Vec<&'static str>,
    pub builtin: bool,
}

impl From<super::access::RoleDef> for RoleView {
    fn from(r: super::access::RoleDef) -> Self {
        Self {
            name: r.name,
            description: r.description,
            scope: r.scope,
            permissions: r.permissions.iter().map(|p| p.name()).collect(),
            builtin: r.builtin,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PermissionView {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether anything checks it yet; one that is not can be granted now and takes
    /// effect when its feature lands.
    pub enforced: bool,
    /// For one not enforced yet: the feature it waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub takes_effect_with: Option<&'static str>,
}
