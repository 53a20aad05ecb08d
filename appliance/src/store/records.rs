//! The records kept in redb, as JSON. Adding an optional field is compatible;
//! anything else needs a schema version bump and a migration.

use serde::{Deserialize, Serialize};

/// Schema 1's one role per user; read only by the migration to schema 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyRole {
    Admin,
    User,
}

/// A role held by a user, possibly only until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub role: String,
    pub expires_at_ms: Option<i64>,
    pub granted_by: String,
    pub granted_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// Stable for the account's life: sessions and API tokens belong to the id, so a
    /// new account of a deleted one's name inherits nothing (schema 3).
    #[serde(default)]
    pub id: String,
    pub username: String,
    /// Schema 1 only; the migration turns it into a grant.
    #[serde(default, rename = "role", skip_serializing)]
    pub legacy_role: Option<LegacyRole>,
    #[serde(default)]
    pub grants: Vec<GrantRecord>,
    /// argon2id PHC string.
    pub password_hash: String,
    pub must_change_password: bool,
    pub created_at_ms: i64,
    /// A disabled user cannot sign in; their sessions end at once.
    #[serde(default)]
    pub disabled: bool,
    /// The TOTP secret, sealed with the appliance's secret box (hex), once confirmed.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// A secret offered for enrolment, not yet confirmed with a code.
    #[serde(default)]
    pub totp_pending: Option<String>,
    /// The last TOTP time step accepted (each code works once).
    #[serde(default)]
    pub totp_last_step: Option<u64>,
    /// Where the account comes from: `None` local (password here), `ldap`, `oidc`.
    #[serde(default)]
    pub source: Option<String>,
    /// The identity system's own name for the person (`ldap:<entryUUID>`,
    /// `oidc:<issuer>#<sub>`); see the `identities` table.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Rises whenever the account's credentials or standing change (password set or
    /// reset, second factor reset, disabled): a session opened under an older value
    /// is over.
    #[serde(default)]
    pub auth_epoch: u64,
}

/// An API token: only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    pub owner: String,
    /// The owner's [`UserRecord::id`]: a token works only for that very account.
    #[serde(default)]
    pub owner_id: String,
    pub name: String,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// Permission names; the token never has more than its owner at the time of use.
    pub permissions: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A team: its members see the meetings of rooms that belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRecord {
    pub id: String,
    pub name: String,
    pub members: std::collections::BTreeSet<String>,
    pub created_at_ms: i64,
    /// The rule for recording people in this team's rooms (none set: recording needs
    /// no consent, as before consent policies existed).
    #[serde(default)]
    pub consent: ConsentPolicyRecord,
    /// Keyword trackers: phrases whose every mention in the team's meetings is
    /// counted and shown (settings, not meeting content).
    #[serde(default)]
    pub trackers: Vec<crate::insights::Tracker>,
}

/// A team's consent policy, pushed to the agents of its rooms, which enforce it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentPolicyRecord {
    pub rule: roomscribe_protocol::command::ConsentRule,
    /// What the room announces when a meeting starts.
    #[serde(default)]
    pub notice: String,
    /// What a participant's withdrawal erases when none of the meeting's segments is
    /// attributed to them.
    #[serde(default)]
    pub withdrawal: WithdrawalScope,
    /// Bumped by every change; agents keep the newest.
    #[serde(default)]
    pub version: u64,
}

/// What a withdrawal erases: always the segments attributed to the person (their
/// speaker label, or the name it was given); when none is, `Speaker` erases nothing
/// more and `Meeting` erases the whole meeting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalScope {
    #[default]
    Speaker,
    Meeting,
}

impl WithdrawalScope {
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalScope::Speaker => "speaker",
            WithdrawalScope::Meeting => "meeting",
        }
    }
}

/// A participant's consent state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    Notified,
    Consented,
    Declined,
    Withdrawn,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::Notified => "notified",
            ConsentState::Consented => "consented",
            ConsentState::Declined => "declined",
            ConsentState::Withdrawn => "withdrawn",
        }
    }
}

impl ConsentHow {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentHow::Announced => "announced",
            ConsentHow::Console => "console",
            ConsentHow::Form => "form",
            ConsentHow::Spoken => "spoken",
            ConsentHow::Policy => "policy",
        }
    }
}

/// How consent (or its refusal) was given or recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentHow {
    /// The room announced its notice.
    Announced,
    /// Someone recorded it in the console.
    Console,
    /// A signed form.
    Form,
    /// Said aloud, at a time in the recording.
    Spoken,
    /// A standing agreement (employment contract, policy) covers it.
    Policy,
}

/// One piece of consent evidence about one participant; never changed, only added to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentEvidence {
    /// The participant's name, as in the meeting's participants when recorded.
    pub participant: String,
    pub state: ConsentState,
    pub how: ConsentHow,
    /// Who recorded it (a username).
    pub by: String,
    /// When it was recorded (appliance clock).
    pub at_ms: i64,
    /// For spoken consent: seconds from the meeting's start.
    #[serde(default)]
    pub at_s: Option<f64>,
    /// A reference (a form's number) or a remark.
    #[serde(default)]
    pub note: String,
}

/// What a meeting knows about consent: what the room's agent did (from its events)
/// and the evidence recorded for each participant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeetingConsentRecord {
    /// The agent held the meeting for everyone's consent at some point (`require_all`).
    #[serde(default)]
    pub required: bool,
    /// It holds it now: nothing is transcribed until consent is given.
    #[serde(default)]
    pub awaiting: bool,
    /// The event that last opened or closed the gate (events may arrive late).
    #[serde(default)]
    pub gate_event_seq: Option<u64>,
    /// When the room announced its notice (seconds from the start).
    #[serde(default)]
    pub notice_at_s: Option<f64>,
    #[serde(default)]
    pub evidence: Vec<ConsentEvidence>,
}

/// A custom role (the built-in ones are defined in code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    pub name: String,
    pub description: String,
    /// `all` or `teams`.
    pub scope: String,
    /// Permission names (`meetings.read`, ...).
    pub permissions: Vec<String>,
    pub created_by: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRecord {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    /// The team new meetings of this room belong to; none: only `all`-scope roles see them.
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollTokenRecord {
    pub id: String,
    /// HKDF-derived MAC key of the token (the secret itself is never stored).
    pub mac_key: [u8; 32],
    pub room_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub created_by: String,
    pub used_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub room_id: String,
    pub hostname: String,
    /// Hex Ed25519 public key.
    pub public_key: String,
    pub enrolled_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub last_envelope_seq: Option<u64>,
    pub last_seen_ms: Option<i64>,
    /// Numbers of envelopes this appliance refused for good and the agent set aside
    /// in its quarantine (until an operator requeues or discards them there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<u64>,
    /// Why each of them was refused (the reason the agent's notice carries).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub quarantine_reasons: std::collections::BTreeMap<u64, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatus {
    Live,
    Ended,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeetingRecord {
    pub id: String,
    pub room_id: String,
    pub agent_id: String,
    pub title: String,
    /// On the agent's clock.
    pub started_at_ms: i64,
    /// Agent clock minus appliance clock observed when the meeting was created.
    #[serde(default)]
    pub clock_skew_ms: Option<i64>,
    pub status: MeetingStatus,
    pub segment_count: u64,
    pub duration_s: f64,
    pub updated_at_ms: i64,
    /// Names given in the console to speaker labels ("channel 2" → "Dr. Kim").
    #[serde(default)]
    pub speaker_names: std::collections::BTreeMap<String, String>,
    /// The team the meeting belongs to (its room's team when it was created).
    #[serde(default)]
    pub team_id: Option<String>,
    /// One of the administrator's meeting types ("ward round", "board meeting").
    #[serde(default)]
    pub meeting_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Who took part: names, optionally linked to console users.
    #[serde(default)]
    pub participants: Vec<ParticipantRecord>,
    /// Consent: the agent's gate and notice, and the evidence per participant.
    #[serde(default)]
    pub consent: MeetingConsentRecord,
    /// Segment numbers erased (a participant withdrew, a data subject asked): ingest
    /// never stores them again.
    #[serde(default)]
    pub erased_segments: std::collections::BTreeSet<u64>,
    /// Bumped by every change to what search holds of the meeting other than new
    /// segments (its details, speaker names, team, a corrected segment). The index
    /// notes the revision of each document, so a start after a crash between the
    /// store's commit and the index's indexes such a meeting again.
    #[serde(default)]
    pub revision: u64,
    /// What people decided about the action items found in it, by item id (the
    /// items themselves are found again from the transcript each time).
    #[serde(default)]
    pub action_items: std::collections::BTreeMap<String, ActionItemState>,
}

/// An action item's status as someone set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionItemState {
    /// `open`, `done` or `dismissed`.
    pub status: String,
    pub by: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRecord {
    pub name: String,
    /// The console user this participant is, when linked.
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordRecord {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub conf: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub seq: u64,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<WordRecord>,
    pub confidence: f32,
    pub received_at_ms: i64,
    /// Speaker label from the agent (`"channel N"`); `None` is unknown.
    #[serde(default)]
    pub speaker: Option<String>,
    /// Engine and model that produced the text (`None` from older agents).
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// How many corrections the segment has had: 0 as the agent sent it. A correction
    /// must name the version it read (optimistic concurrency).
    #[serde(default)]
    pub version: u64,
    /// The number (as acknowledged) of the agent's envelope that brought it, kept
    /// whole so the original text can be verified against the agent's signature.
    /// `None` for segments stored before schema 4.
    #[serde(default)]
    pub envelope_seq: Option<u64>,
}

/// A legal hold on a meeting, a room or a team: while it stands, nothing deletes what
/// it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub reason: String,
    /// The account that placed it (username).
    pub by: String,
    pub at_ms: i64,
}

/// What is kept of an erased meeting: that it existed and who erased it, when and why;
/// never its content. Ingest refuses the meeting's envelopes for ever after (an agent
/// refilling a restored appliance would otherwise bring it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub meeting_id: String,
    pub room_id: String,
    pub team_id: Option<String>,
    pub by: String,
    pub at_ms: i64,
    pub reason: String,
}

/// The erasure of some of a meeting's segments (a participant withdrew, a data subject
/// asked): which, by whom, when and why — never their content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentErasureRecord {
    pub meeting_id: String,
    /// Segment numbers.
    pub segments: Vec<u64>,
    pub by: String,
    pub at_ms: i64,
    pub reason: String,
}

/// One correction of a segment: who, when, and the text and speaker before and after.
/// Revision `n` turned version `n - 1` into version `n`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub version: u64,
    pub at_ms: i64,
    /// The account that made it (username).
    pub by: String,
    pub text_before: String,
    pub text_after: String,
    pub speaker_before: Option<String>,
    pub speaker_after: Option<String>,
    /// The words (with times and confidences) before: revision 1 keeps the agent's.
    pub words_before: Vec<WordRecord>,
}

/// A meeting event from the agent: a voice command, a pause, a mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    /// Seconds from the meeting start.
    pub at: f64,
    pub kind: roomscribe_protocol::EventKind,
    pub source: roomscribe_protocol::EventSource,
    pub received_at_ms: i64,
}

/// One calendar entry of a room (appliance clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEntryRecord {
    pub id: String,
    pub title: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_by: String,
    pub created_at_ms: i64,
}

/// A room's calendar; `version` rises with every change (agents keep the newest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub version: u64,
    pub entries: Vec<ScheduleEntryRecord>,
}
