//! Envelopes the appliance refused for good, set aside so that replication goes on.
//!
//! On disk (`<state_dir>/quarantine/`, 0700): `<seq:020>.env` (the envelope exactly
//! as it was queued) and `<seq:020>.json` (why it was refused, when). Setting aside
//! copies both there first, then replaces the queue's item for that number by a
//! signed set-aside notice, which the appliance audits and shows on the agent's page
//! (docs/PROTOCOL.md, "Quarantine"). A crash in between leaves the envelope in both
//! places; the refusal repeats and the copy is written again.
//!
//! IT decides with `roomscribe-agent queue`: `requeue` puts the envelope back at the
//! end of the queue (sent renumbered), `discard` deletes it and queues a signed
//! discard notice, audited on the appliance. Nothing here is ever deleted otherwise.

use crate::fs::write_atomic;
use crate::replication::queue::{Queue, QueueError};
use ed25519_dalek::SigningKey;
use roomscribe_protocol::resync::{Notice, NoticeBody};
use roomscribe_protocol::{AgentId, EnvelopeHeader};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("quarantine")
}

/// What is known about a quarantined envelope (the content is sealed for the
/// appliance: the agent cannot read it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Its number when it was refused.
    pub seq: u64,
    /// The appliance's reject code and message.
    pub code: String,
    pub message: String,
    pub refused_at_ms: i64,
    pub bytes: u64,
    /// SHA-256 of the envelope, hex.
    pub sha256: String,
    /// From the envelope's header (authenticated, not secret).
    pub meeting_id: Option<String>,
    pub sealed_at_ms: Option<i64>,
    pub segment_count: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("quarantine {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("quarantine entry {path} is unreadable: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("envelope {0} is not in the quarantine (`roomscribe-agent queue list` shows what is)")]
    NotQuarantined(u64),
    #[error("item {0} is a notice, not an envelope: it cannot be set aside")]
    NotAnEnvelope(u64),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QuarantineError + '_ {
    move |source| QuarantineError::Io {
        path: path.to_owned(),
        source,
    }
}

fn paths(qdir: &Path, seq: u64) -> (PathBuf, PathBuf) {
    (
        qdir.join(format!("{seq:020}.env")),
        qdir.join(format!("{seq:020}.json")),
    )
}

/// Moves the queue's front envelope `seq` into the quarantine and queues the signed
/// set-aside notice under its number. Returns how many envelopes are quarantined.
pub fn set_aside(
    queue: &mut Queue,
    qdir: &Path,
    seq: u64,
    (code, message): (&str, &str),
    (key, agent_id): (&SigningKey, AgentId),
    now_ms: i64,
) -> Result<u64, QuarantineError> {
    let bytes = queue.read(seq)?;
    if roomscribe_protocol::resync::is_notice(&bytes) {
        return Err(QuarantineError::NotAnEnvelope(seq));
    }
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let header = EnvelopeHeader::parse(&bytes).ok();
    let entry = Entry {
        seq,
        code: code.to_owned(),
        message: message.chars().take(500).collect(),
        refused_at_ms: now_ms,
        bytes: bytes.len() as u64,
        sha256: hex::encode(digest),
        meeting_id: header.as_ref().map(|h| h.meeting_id.to_string()),
        sealed_at_ms: header.as_ref().map(|h| h.created_at_ms),
        segment_count: header.as_ref().map(|h| h.segment_count),
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(qdir)
            .map_err(io(qdir))?;
    }
    let (env_path, json_path) = paths(qdir, seq);
    write_atomic(&env_path, &bytes, 0o600).map_err(io(&env_path))?;
    let json = serde_json::to_vec_pretty(&entry).unwrap_or_default();
    write_atomic(&json_path, &json, 0o600).map_err(io(&json_path))?;
    let notice = Notice::sign(
        key,
        agent_id,
        seq,
        NoticeBody::SetAside {
            digest,
            reason: format!("{code}: {message}"),
        },
    );
    queue.replace_front(seq, &notice.to_bytes())?;
    Ok(list(qdir)?.len() as u64)
}

/// Every quarantined envelope, oldest first. A missing directory is an empty list.
pub fn list(qdir: &Path) -> Result<Vec<Entry>, QuarantineError> {
    let listing = match fs::read_dir(qdir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(qdir)(e)),
    };
    let mut out = vec![];
    for entry in listing {
        let path = entry.map_err(io(qdir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = fs::read(&path).map_err(io(&path))?;
        let e: Entry = serde_json::from_slice(&text).map_err(|e| QuarantineError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        out.push(e);
    }
    out.sort_by_key(|e| e.seq);
    Ok(out)
}

/// The entry and the envelope's bytes.
pub fn show(qdir: &Path, seq: u64) -> Result<(Entry, Vec<u8>), QuarantineError> {
    let entry = list(qdir)?
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or(QuarantineError::NotQuarantined(seq))?;
    let (env_path, _) = paths(qdir, seq);
    let bytes = fs::read(&env_path).map_err(io(&env_path))?;
    Ok((entry, bytes))
}

fn remove(qdir: &Path, seq: u64) -> Result<(), QuarantineError> {
    let (env_path, json_path) = paths(qdir, seq);
    // The entry goes first: an envelope file without one is left over, not listed.
    fs::remove_file(&json_path).map_err(io(&json_path))?;
    match fs::remove_file(&env_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&env_path)(e)),
    }
    crate::fs::sync_dir(qdir).map_err(io(qdir))
}

/// Puts a quarantined envelope back at the end of the queue (it is sent renumbered).
/// Returns its new number.
pub fn requeue(queue: &mut Queue, qdir: &Path, seq: u64) -> Result<u64, QuarantineError> {
    let (_, bytes) = show(qdir, seq)?;
    let new = queue.next_seq();
    queue.push(new, &bytes)?;
    remove(qdir, seq)?;
    Ok(new)
}

/// Deletes a quarantined envelope and queues the signed discard notice that tells
/// the appliance (which audits it). Returns the notice's number.
pub fn discard(
    queue: &mut Queue,
    qdir: &Path,
    seq: u64,
    (key, agent_id): (&SigningKey, AgentId),
) -> Result<u64, QuarantineError> {
    let (entry, bytes) = show(qdir, seq)?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let new = queue.next_seq();
    let notice = Notice::sign(
        key,
        agent_id,
        new,
        NoticeBody::Discarded {
            original: entry.seq,
            digest,
        },
    );
    queue.push(new, &notice.to_bytes())?;
    remove(qdir, seq)?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::StateLock;
    use rand_core::OsRng;
    use roomscribe_protocol::resync::{self, Verified};

    #[test]
    fn set_aside_requeue_and_discard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = StateLock::acquire(dir.path()).expect("lock");
        let mut q = Queue::open(&dir.path().join("queue"), &lock).expect("queue");
        let qdir = super::dir(dir.path());
        let key = SigningKey::generate(&mut OsRng);
        let agent = AgentId::random();
        q.push(1, b"refused envelope").expect("push");
        q.push(2, b"next").expect("push");
        let n = set_aside(
            &mut q,
            &qdir,
            1,
            ("BadSignature", "signature does not verify"),
            (&key, agent),
            42,
        )
        .expect("set aside");
        assert_eq!(n, 1);
        // The queue's item 1 is now the signed notice; 2 still follows it.
        let front = q.front().expect("front").expect("item");
        assert_eq!(front.0, 1);
        match resync::Notice::parse(&front.1)
            .and_then(|n| n.verify(&key.verifying_key()))
            .expect("notice")
        {
            Verified::SetAside { seq, reason, .. } => {
                assert_eq!(seq, 1);
                assert!(reason.contains("BadSignature"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.len(), 2);
        let listed = list(&qdir).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].seq, listed[0].refused_at_ms, listed[0].bytes),
            (1, 42, 16)
        );
        assert_eq!(show(&qdir, 1).expect("show").1, b"refused envelope");
        // A notice is never set aside (it would loop).
        assert!(matches!(
            set_aside(&mut q, &qdir, 1, ("x", "y"), (&key, agent), 0),
            Err(QuarantineError::NotAnEnvelope(1))
        ));
        let again = requeue(&mut q, &qdir, 1).expect("requeue");
        assert_eq!(again, 3);
        assert_eq!(q.read(3).expect("requeued"), b"refused envelope");
        assert!(list(&qdir).expect("list").is_empty());
        assert!(matches!(
            requeue(&mut q, &qdir, 1),
            Err(QuarantineError::NotQuarantined(1))
        ));
        // Set aside once more (as the front), then discarded.
        q.ack(1).expect("ack");
        q.ack(2).expect("ack");
        set_aside(&mut q, &qdir, 3, ("Malformed", "m"), (&key, agent), 43).expect("aside");
        let d = discard(&mut q, &qdir, 3, (&key, agent)).expect("discard");
        assert_eq!(d, 4);
        match resync::Notice::parse(&q.read(4).expect("notice"))
            .and_then(|n| n.verify(&key.verifying_key()))
            .expect("notice")
        {
            Verified::Discarded { seq, original, .. } => assert_eq!((seq, original), (4, 3)),
            other => panic!("{other:?}"),
        }
        assert!(list(&qdir).expect("list").is_empty());
    }
}
