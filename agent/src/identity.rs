//! The agent's identity in its state directory: `agent.key` (Ed25519 seed, 0600) and
//! `identity.json` (agent id, appliance address, pinned certificate and keys).
//! The key file is refused when group- or world-readable.

use crate::fs::write_atomic;
use ed25519_dalek::SigningKey;
use roomscribe_protocol::enroll::decode32;
use roomscribe_protocol::AgentId;
use serde::{Deserialize, Serialize};
use std::fs;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub const KEY_FILE: &str = "agent.key";
pub const IDENTITY_FILE: &str = "identity.json";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("this agent is not enrolled (no {path}); run `roomscribe-agent enroll --appliance HOST:PORT --token TOKEN`")]
    NotEnrolled { path: PathBuf },
    #[error("{path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("already enrolled as agent {agent_id} ({path} exists); use a new --state-dir to enroll again")]
    AlreadyEnrolled { agent_id: String, path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub agent_id: AgentId,
    /// `HOST:PORT` of the appliance's QUIC ingest.
    pub appliance: String,
    pub room: String,
    /// Hex X25519 key envelopes are sealed to.
    pub envelope_public_key: String,
    /// Hex Ed25519 key of the appliance.
    pub appliance_signing_key: String,
    /// Hex SHA-256 of the ingest certificate; connections to anything else fail.
    pub ingest_cert_sha256: String,
    pub enrolled_at_ms: i64,
}

impl Identity {
    pub fn recipient_public(&self) -> Result<[u8; 32], IdentityError> {
        decode32(&self.envelope_public_key, "envelope_public_key").map_err(|e| self.corrupt(e))
    }
    /// The appliance's Ed25519 key, which signs its commands.
    pub fn appliance_key(&self) -> Result<ed25519_dalek::VerifyingKey, IdentityError> {
        let raw = decode32(&self.appliance_signing_key, "appliance_signing_key")
            .map_err(|e| self.corrupt(e))?;
        ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| self.corrupt(e))
    }
    pub fn pin(&self) -> Result<[u8; 32], IdentityError> {
        decode32(&self.ingest_cert_sha256, "ingest_cert_sha256").map_err(|e| self.corrupt(e))
    }
    fn corrupt(&self, e: impl std::fmt::Display) -> IdentityError {
        IdentityError::Corrupt {
            path: PathBuf::from(IDENTITY_FILE),
            message: e.to_string(),
        }
    }
}

/// Creates a directory (and parents) with mode 0700.
pub fn private_dir(dir: &Path) -> Result<(), IdentityError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

pub fn load(state_dir: &Path) -> Result<(Identity, SigningKey), IdentityError> {
    let id_path = state_dir.join(IDENTITY_FILE);
    if !id_path.exists() {
        return Err(IdentityError::NotEnrolled { path: id_path });
    }
    let text = fs::read_to_string(&id_path).map_err(io(&id_path))?;
    let identity: Identity = serde_json::from_str(&text).map_err(|e| IdentityError::Corrupt {
        path: id_path.clone(),
        message: e.to_string(),
    })?;
    let key_path = state_dir.join(KEY_FILE);
    let mode = fs::metadata(&key_path)
        .map_err(io(&key_path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen {
            path: key_path,
            mode,
        });
    }
    let raw = Zeroizing::new(fs::read(&key_path).map_err(io(&key_path))?);
    let seed: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| IdentityError::Corrupt {
            path: key_path.clone(),
            message: "expected 32 bytes".into(),
        })?;
    let key = SigningKey::from_bytes(&seed);
    Ok((identity, key))
}

/// Refuses to overwrite an existing identity.
pub fn ensure_not_enrolled(state_dir: &Path) -> Result<(), IdentityError> {
    match load(state_dir) {
        Ok((id, _)) => Err(IdentityError::AlreadyEnrolled {
            agent_id: id.agent_id.to_string(),
            path: state_dir.join(IDENTITY_FILE),
        }),
        Err(_) => Ok(()),
    }
}

pub fn save(state_dir: &Path, identity: &Identity, key: &SigningKey) -> Result<(), IdentityError> {
    private_dir(state_dir)?;
    let key_path = state_dir.join(KEY_FILE);
    write_atomic(&key_path, key.as_bytes(), 0o600).map_err(io(&key_path))?;
    let id_path = state_dir.join(IDENTITY_FILE);
    let json = serde_json::to_vec_pretty(identity).map_err(|e| IdentityError::Corrupt {
        path: id_path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&id_path, &json, 0o600).map_err(io(&id_path))
}
