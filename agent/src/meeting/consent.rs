//! The room's consent rule: its team's policy, pushed by the appliance (signed, see
//! `protocol::command`) and kept in `<state_dir>/consent.json`, so it is enforced
//! when the appliance is unreachable too. [`Control`](crate::meeting::control::Control)
//! applies it when a meeting starts:
//!
//! - `record_without_consent`: nothing to do;
//! - `require_announcement`: a `notice` event is sealed at the start (the room's
//!   notice is on the agent's status for a screen or a speaker to show or say);
//! - `require_all`: a `consent_pending` event, and nothing is transcribed (audio is
//!   read and dropped, never buffered) until consent is given, from the console or
//!   the room (`roomscribe-agent meeting consent given`).

use crate::meeting::stored;
use roomscribe_protocol::command::{CommandAction, ConsentRule, SignedCommand};
use roomscribe_protocol::AgentId;
use std::path::{Path, PathBuf};

pub const CONSENT_FILE: &str = "consent.json";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentPolicy {
    pub version: u64,
    pub rule: ConsentRule,
    pub notice: String,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(CONSENT_FILE)
}

impl ConsentPolicy {
    /// The policy in a verified command, if it is one.
    pub fn from_action(action: &CommandAction) -> Option<Self> {
        match action {
            CommandAction::Consent {
                version,
                rule,
                notice,
            } => Some(Self {
                version: *version,
                rule: *rule,
                notice: notice.clone(),
            }),
            CommandAction::Meeting { .. } | CommandAction::Schedule { .. } => None,
        }
    }

    /// Loads the stored policy; none is `record_without_consent`, what a room did
    /// before any policy was set.
    pub fn load(state_dir: &Path, key: &ed25519_dalek::VerifyingKey, me: &AgentId) -> Self {
        stored::load(&path(state_dir), key, me)
            .and_then(|a| Self::from_action(&a))
            .unwrap_or_default()
    }

    pub fn store(state_dir: &Path, raw: &SignedCommand) -> std::io::Result<()> {
        stored::store(&path(state_dir), raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use roomscribe_protocol::command::CommandBody;

    #[test]
    fn a_stored_policy_loads_only_under_the_appliance_key_and_for_this_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_bytes(&[7; 32]);
        let me = AgentId::random();
        let body = CommandBody {
            id: "c".into(),
            agent_id: me,
            issued_at_ms: 0,
            expires_at_ms: 1,
            action: CommandAction::Consent {
                version: 4,
                rule: ConsentRule::RequireAll,
                notice: "Recorded for the minutes.".into(),
            },
        };
        let raw = SignedCommand::sign(&body, &key);
        ConsentPolicy::store(dir.path(), &raw).expect("store");
        let p = ConsentPolicy::load(dir.path(), &key.verifying_key(), &me);
        assert_eq!(p.rule, ConsentRule::RequireAll);
        assert_eq!(p.version, 4);
        // Expired long ago, still the rule: a stored policy does not lapse.
        let stranger = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            ConsentPolicy::load(dir.path(), &stranger.verifying_key(), &me),
            ConsentPolicy::default(),
            "a policy the appliance did not sign is no policy"
        );
        assert_eq!(
            ConsentPolicy::load(dir.path(), &key.verifying_key(), &AgentId::random()),
            ConsentPolicy::default()
        );
        // A tampered file: the signature no longer verifies.
        let text = std::fs::read_to_string(path(dir.path())).expect("read");
        std::fs::write(
            path(dir.path()),
            text.replace("require_all", "require_announcement"),
        )
        .expect("write");
        assert_eq!(
            ConsentPolicy::load(dir.path(), &key.verifying_key(), &me),
            ConsentPolicy::default()
        );
    }
}
