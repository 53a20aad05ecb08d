//! Agent authentication on an ingest connection, and status reports.
//!
//! After the QUIC handshake (agent pins the appliance certificate), the agent sends a
//! [`Hello`] signed with its enrolled Ed25519 key over a value exported from this very
//! TLS session, so a hello cannot be replayed on another connection.

use crate::context;
use crate::ids::AgentId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Length of the keying material exported from the TLS session for the hello.
pub const EXPORTER_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    pub version: String,
    pub queue_depth: u64,
    /// Age of the oldest queued envelope in seconds, if any.
    pub oldest_queued_age_s: Option<u64>,
    pub agent_time_ms: i64,
    /// Model directory name(s) the agent transcribes with.
    #[serde(default)]
    pub model: String,
    /// Which engine runs and how live captions are made, e.g. `"vosk"`,
    /// `"whisper (live captions: sliding-window re-decode)"`, `"two-pass (...)"`.
    #[serde(default)]
    pub engine: String,
    /// Capture device (or input file) name; empty when not transcribing.
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub device_connected: bool,
    /// RMS input level over the last chunk, dBFS.
    #[serde(default)]
    pub input_level_dbfs: Option<f32>,
    #[serde(default)]
    pub queue_bytes: u64,
    /// Disk budget left for the queue, bytes.
    #[serde(default)]
    pub budget_left_bytes: u64,
    /// Appliance clock minus agent clock as the agent measured it at its last hello.
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    /// Active alarms: `queue_full`, `device_lost`, `clock_skew`.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// `idle`, `recording` or `paused`.
    #[serde(default)]
    pub meeting_state: String,
}

impl AgentStatus {
    /// A status with only the required fields set (tests, `drain`).
    pub fn minimal(version: &str, queue_depth: u64, agent_time_ms: i64) -> Self {
        Self {
            version: version.to_owned(),
            queue_depth,
            oldest_queued_age_s: None,
            agent_time_ms,
            model: String::new(),
            engine: String::new(),
            device: String::new(),
            device_connected: false,
            input_level_dbfs: None,
            queue_bytes: 0,
            budget_left_bytes: 0,
            clock_offset_ms: None,
            alarms: vec![],
            meeting_state: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub protocol_version: u8,
    pub agent_id: AgentId,
    /// Hex Ed25519 signature over context || exporter || agent id.
    pub signature: String,
    pub status: AgentStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// Highest envelope sequence the appliance has stored for this agent.
    pub last_envelope_seq: Option<u64>,
    pub appliance_time_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub status: AgentStatus,
}

fn message(exporter: &[u8; EXPORTER_LEN], agent_id: &AgentId) -> Vec<u8> {
    let mut m = Vec::with_capacity(context::HELLO_SIGNATURE.len() + EXPORTER_LEN + 16);
    m.extend_from_slice(context::HELLO_SIGNATURE);
    m.extend_from_slice(exporter);
    m.extend_from_slice(agent_id.as_bytes());
    m
}

pub fn sign_hello(key: &SigningKey, exporter: &[u8; EXPORTER_LEN], agent_id: &AgentId) -> String {
    hex::encode(key.sign(&message(exporter, agent_id)).to_bytes())
}

/// True when `hello.signature` is the agent's signature for this connection.
pub fn verify_hello(key: &VerifyingKey, exporter: &[u8; EXPORTER_LEN], hello: &Hello) -> bool {
    let Ok(raw) = hex::decode(&hello.signature) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(raw.as_slice()) else {
        return false;
    };
    key.verify_strict(
        &message(exporter, &hello.agent_id),
        &Signature::from_bytes(&sig),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn hello_binds_connection_and_agent() {
        let key = SigningKey::generate(&mut OsRng);
        let agent = AgentId::random();
        let exp = [7u8; 32];
        let status = AgentStatus::minimal("t", 0, 0);
        let hello = Hello {
            protocol_version: 1,
            agent_id: agent,
            signature: sign_hello(&key, &exp, &agent),
            status,
        };
        assert!(verify_hello(&key.verifying_key(), &exp, &hello));
        assert!(
            !verify_hello(&key.verifying_key(), &[8u8; 32], &hello),
            "other connection"
        );
        let other = Hello {
            agent_id: AgentId::random(),
            ..hello.clone()
        };
        assert!(
            !verify_hello(&key.verifying_key(), &exp, &other),
            "other agent id"
        );
        let stranger = SigningKey::generate(&mut OsRng);
        assert!(
            !verify_hello(&stranger.verifying_key(), &exp, &hello),
            "other key"
        );
        let garbage = Hello {
            signature: "zz".into(),
            ..hello
        };
        assert!(!verify_hello(&key.verifying_key(), &exp, &garbage));
    }
}
