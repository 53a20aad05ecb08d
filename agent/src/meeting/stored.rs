//! Appliance commands the agent keeps (the room schedule, the consent rule): the
//! signed command is stored as received, atomically and 0600, and its signature is
//! checked again whenever it is loaded, so the file is only as trusted as the key that
//! signed it.

use crate::fs::write_atomic;
use roomscribe_protocol::command::{CommandAction, SignedCommand};
use roomscribe_protocol::AgentId;
use std::path::Path;

/// Stores the signed command (atomically, durably).
pub fn store(path: &Path, raw: &SignedCommand) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(raw).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes, 0o600)
}

/// The action of the stored command at `path`, if there is one whose signature the
/// appliance key verifies. A missing file is `None`; an unreadable or unverifiable one
/// is `None` with a warning (the appliance sends it again on connect).
pub fn load(path: &Path, key: &ed25519_dalek::VerifyingKey, me: &AgentId) -> Option<CommandAction> {
    let bytes = std::fs::read(path).ok()?;
    let opened = serde_json::from_slice::<SignedCommand>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|c| c.open(key, me).map_err(|e| e.to_string()));
    match opened {
        Ok(body) => Some(body.action),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring a stored command");
            None
        }
    }
}
