//! Commands from the appliance to one agent: meeting control (start, stop, pause,
//! resume, marks) and the room's schedule. Sent on the ingest connection (frame
//! [`Frame::Command`](crate::Frame::Command)) and answered with a
//! [`CommandAck`]. Each command is signed by the appliance's Ed25519 key, which the
//! agent pinned at enrollment, over its exact body bytes, names the agent it is for and
//! expires: a command cannot be redirected to another agent, replayed later, or forged
//! by anything that is not the appliance, even one that got onto the connection.

use crate::context;
use crate::ids::{AgentId, MeetingId};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Largest command body accepted (a schedule of a few hundred entries fits).
pub const MAX_COMMAND_BODY: usize = 256 * 1024;
/// How far the agent's and appliance's clocks may disagree before an unexpired
/// command is judged expired (the agent corrects by its measured offset first).
pub const CLOCK_TOLERANCE_MS: i64 = 30_000;
/// Most entries in a schedule.
pub const MAX_SCHEDULE_ENTRIES: usize = 500;
/// Longest consent notice, in characters.
pub const MAX_NOTICE_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("command body is malformed: {0}")]
    Malformed(String),
    #[error("command signature does not verify with the appliance key")]
    BadSignature,
    #[error("command is for agent {0}, not this one")]
    OtherAgent(AgentId),
    #[error("command expired {0} ms ago")]
    Expired(i64),
    #[error("command is too large ({0} bytes)")]
    TooLarge(usize),
}

/// What a meeting command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingAction {
    Start,
    Stop,
    Pause,
    Resume,
    MarkActionItem,
    MarkHighlight,
    /// Everyone present has consented (the team's policy `require_all`): recording
    /// may go on.
    ConsentGiven,
    /// Someone declined or withdrew: recording stops being transcribed until consent
    /// is given again.
    ConsentWithdrawn,
}

/// A team's rule for recording people, which the agents of its rooms enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsentRule {
    /// Recording needs no consent; a notice is enough (and may be given elsewhere).
    #[default]
    RecordWithoutConsent,
    /// Nothing is transcribed until everyone present has consented.
    RequireAll,
    /// The room announces the notice when a meeting starts; the meeting records who
    /// was told.
    RequireAnnouncement,
}

impl ConsentRule {
    pub const ALL: [ConsentRule; 3] = [
        ConsentRule::RecordWithoutConsent,
        ConsentRule::RequireAll,
        ConsentRule::RequireAnnouncement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentRule::RecordWithoutConsent => "record_without_consent",
            ConsentRule::RequireAll => "require_all",
            ConsentRule::RequireAnnouncement => "require_announcement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One calendar entry of a room: the agent records a meeting from `starts_at_ms` to
/// `ends_at_ms` (appliance clock), titled `title`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub id: String,
    pub title: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandAction {
    Meeting {
        action: MeetingAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// The meeting the command is about, when it is about one (consent): the agent
        /// refuses it unless that meeting is the one it is recording.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting: Option<MeetingId>,
    },
    /// The room's whole upcoming schedule; replaces any older `version`.
    Schedule {
        version: u64,
        entries: Vec<ScheduleEntry>,
    },
    /// The room's consent rule (its team's); replaces any older `version`. The agent
    /// keeps it and enforces it offline too.
    Consent {
        version: u64,
        rule: ConsentRule,
        /// What the room announces at the start of a meeting.
        #[serde(default)]
        notice: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// Unique per command (a UUID); the acknowledgement names it.
    pub id: String,
    pub agent_id: AgentId,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub action: CommandAction,
}

/// A command as sent: the body's exact JSON bytes (as a string) and the signature
/// over them, so nothing depends on re-serialising JSON the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub body: String,
    /// Hex Ed25519 signature over `COMMAND_SIGNATURE || body`.
    pub signature: String,
}

/// The agent's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandAck {
    pub id: String,
    pub ok: bool,
    pub message: String,
}

fn message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context::COMMAND_SIGNATURE.len() + body.len());
    m.extend_from_slice(context::COMMAND_SIGNATURE);
    m.extend_from_slice(body);
    m
}

impl SignedCommand {
    pub fn sign(body: &CommandBody, key: &SigningKey) -> Self {
        // A struct of strings, numbers and enums: serialising cannot fail.
        let body = serde_json::to_string(body).unwrap_or_default();
        let signature = hex::encode(key.sign(&message(body.as_bytes())).to_bytes());
        Self { body, signature }
    }

    /// Verifies the signature only, returning the body (for a stored schedule, whose
    /// delivery deadline has long passed).
    pub fn open(&self, key: &VerifyingKey, me: &AgentId) -> Result<CommandBody, CommandError> {
        if self.body.len() > MAX_COMMAND_BODY {
            return Err(CommandError::TooLarge(self.body.len()));
        }
        let raw = hex::decode(&self.signature).map_err(|_| CommandError::BadSignature)?;
        let sig = <[u8; 64]>::try_from(raw.as_slice()).map_err(|_| CommandError::BadSignature)?;
        key.verify_strict(&message(self.body.as_bytes()), &Signature::from_bytes(&sig))
            .map_err(|_| CommandError::BadSignature)?;
        let body: CommandBody =
            serde_json::from_str(&self.body).map_err(|e| CommandError::Malformed(e.to_string()))?;
        if body.agent_id != *me {
            return Err(CommandError::OtherAgent(body.agent_id));
        }
        Ok(body)
    }

    /// Verifies signature, addressee and expiry; `now_ms` is the appliance's time as
    /// the agent estimates it.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        me: &AgentId,
        now_ms: i64,
    ) -> Result<CommandBody, CommandError> {
        let body = self.open(key, me)?;
        let late = now_ms - CLOCK_TOLERANCE_MS - body.expires_at_ms;
        if late > 0 {
            return Err(CommandError::Expired(late));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn body(agent: AgentId) -> CommandBody {
        CommandBody {
            id: "c1".into(),
            agent_id: agent,
            issued_at_ms: 1_000,
            expires_at_ms: 61_000,
            action: CommandAction::Meeting {
                action: MeetingAction::Start,
                title: Some("Ward round".into()),
                meeting: None,
            },
        }
    }

    #[test]
    fn signed_addressed_and_expiring() {
        let key = SigningKey::generate(&mut OsRng);
        let agent = AgentId::random();
        let c = SignedCommand::sign(&body(agent), &key);
        let pk = key.verifying_key();
        assert_eq!(c.verify(&pk, &agent, 2_000), Ok(body(agent)));
        assert_eq!(
            c.verify(&pk, &agent, 61_000 + CLOCK_TOLERANCE_MS + 5),
            Err(CommandError::Expired(5))
        );
        let other = AgentId::random();
        assert_eq!(
            c.verify(&pk, &other, 2_000),
            Err(CommandError::OtherAgent(agent))
        );
        let stranger = SigningKey::generate(&mut OsRng);
        assert_eq!(
            c.verify(&stranger.verifying_key(), &agent, 2_000),
            Err(CommandError::BadSignature)
        );
        // The signature covers the exact body: any change fails.
        let tampered = SignedCommand {
            body: c.body.replace("Ward", "Ward "),
            ..c.clone()
        };
        assert_eq!(
            tampered.verify(&pk, &agent, 2_000),
            Err(CommandError::BadSignature)
        );
        let garbage = SignedCommand {
            signature: "zz".into(),
            ..c
        };
        assert_eq!(
            garbage.verify(&pk, &agent, 2_000),
            Err(CommandError::BadSignature)
        );
    }

    #[test]
    fn schedule_round_trips_and_unknown_fields_are_refused() {
        let key = SigningKey::generate(&mut OsRng);
        let agent = AgentId::random();
        let b = CommandBody {
            action: CommandAction::Schedule {
                version: 3,
                entries: vec![ScheduleEntry {
                    id: "e".into(),
                    title: "Board".into(),
                    starts_at_ms: 10,
                    ends_at_ms: 20,
                }],
            },
            ..body(agent)
        };
        let c = SignedCommand::sign(&b, &key);
        assert_eq!(c.open(&key.verifying_key(), &agent), Ok(b));
        let mut v: serde_json::Value = serde_json::from_str(&c.body).expect("json");
        v["extra"] = serde_json::json!(1);
        let c = SignedCommand::sign_raw_for_test(&v.to_string(), &key);
        assert!(matches!(
            c.open(&key.verifying_key(), &agent),
            Err(CommandError::Malformed(_))
        ));
    }

    #[test]
    fn consent_rules_round_trip_by_name() {
        let key = SigningKey::generate(&mut OsRng);
        let agent = AgentId::random();
        for rule in ConsentRule::ALL {
            assert_eq!(ConsentRule::parse(rule.as_str()), Some(rule));
            let b = CommandBody {
                action: CommandAction::Consent {
                    version: 2,
                    rule,
                    notice: "This meeting is transcribed.".into(),
                },
                ..body(agent)
            };
            let c = SignedCommand::sign(&b, &key);
            assert!(c.body.contains(rule.as_str()), "{}", c.body);
            assert_eq!(c.open(&key.verifying_key(), &agent), Ok(b));
        }
        assert_eq!(ConsentRule::parse("require_some"), None);
    }

    impl SignedCommand {
        fn sign_raw_for_test(body: &str, key: &SigningKey) -> Self {
            Self {
                body: body.to_owned(),
                signature: hex::encode(key.sign(&message(body.as_bytes())).to_bytes()),
            }
        }
    }
}
