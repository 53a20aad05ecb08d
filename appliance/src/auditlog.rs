//! The tamper-evident audit log's format and its verification, without I/O.
//!
//! Each entry is JSON ([`Entry`]) stored and exported as the exact bytes that were
//! hashed. Entries form a hash chain, RFC 6962 style with domain separation:
//!
//! ```text
//! leaf(e)        = SHA-256("roomscribe/audit/v1/leaf\0" || bytes(e))
//! hash(e_n)      = SHA-256("roomscribe/audit/v1/chain\0" || hash(e_{n-1}) || leaf(e_n))
//! hash(e_0)      = 32 zero bytes (before the first entry, n = 1)
//! ```
//!
//! and every entry also names the hash before it (`prev`). A [`Checkpoint`] seals the
//! chain up to an entry: its JSON bytes are signed with the appliance's audit Ed25519
//! key under the context `"roomscribe/audit/v1/checkpoint\0"`, so no other signature
//! of the appliance can pass for one.
//!
//! The [`Verifier`] checks, in order: entry numbers are 1, 2, 3, … with no gap or
//! repeat; each entry names the hash before it; each stored hash matches the entry's
//! bytes; times never go backwards; every checkpoint's signature is valid under the
//! given key and matches the chain at its entry; no checkpoint seals an entry that is
//! missing. It stops at the first problem and names the entry (and, for an export,
//! the line).
//!
//! Retention (`audit.retention_days`) may remove the oldest entries, but only up to an
//! entry a checkpoint seals, and that checkpoint stays: it is the signed anchor the
//! rest of the chain starts from ([`Verifier::anchor`]); the report says where the log
//! starts.
//!
//! An export ([`export_lines`], [`verify_export`]) is JSON lines: a header with the
//! public key, then one `{"entry":…,"hash":…}` line per entry, each checkpoint right
//! after the entry it seals, and a checkpoint over the last entry. Everything after
//! the last checkpoint of an export is refused as unsealed.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

pub const LEAF_CONTEXT: &[u8] = b"roomscribe/audit/v1/leaf\0";
pub const CHAIN_CONTEXT: &[u8] = b"roomscribe/audit/v1/chain\0";
pub const CHECKPOINT_CONTEXT: &[u8] = b"roomscribe/audit/v1/checkpoint\0";
/// The export format version in the header line.
pub const EXPORT_VERSION: u64 = 1;

pub type Hash = [u8; 32];
/// The hash "before" entry 1.
pub const GENESIS: Hash = [0; 32];

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    /// Refused for lack of permission.
    Denied,
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub seq: u64,
    pub at_ms: i64,
    /// Username, `local-admin`, `agent:<id>`, or the name tried at a failed sign-in.
    pub actor: String,
    /// How the actor was authenticated: `password`, `ldap`, `oidc`, `token`,
    /// `local`, `enroll_token`, `agent_key`, `system`, or `none`.
    pub via: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// e.g. `login`, `meeting.view`, `user.create`, `permission.denied`.
    pub action: String,
    /// What it was done to, e.g. `meeting:<id>`, `user:<name>`.
    pub target: Option<String>,
    pub outcome: Outcome,
    /// A short note (never a secret, never transcript text).
    pub detail: Option<String>,
    /// How many identical events this entry stands for, when more than one (repeated
    /// refusals of one source and route within a minute are recorded once, counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Hex of the chain hash before this entry.
    pub prev: String,
}

pub fn leaf(entry_bytes: &[u8]) -> Hash {
    Sha256::new()
        .chain_update(LEAF_CONTEXT)
        .chain_update(entry_bytes)
        .finalize()
        .into()
}

pub fn chain(prev: &Hash, entry_bytes: &[u8]) -> Hash {
    Sha256::new()
        .chain_update(CHAIN_CONTEXT)
        .chain_update(prev)
        .chain_update(leaf(entry_bytes))
        .finalize()
        .into()
}

/// An entry as stored and exported: its exact bytes and the chain hash after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    pub bytes: Vec<u8>,
    pub hash: Hash,
}

/// Links `entry` (whose `seq` is already set) after `prev`.
pub fn seal_entry(mut entry: Entry, prev: &Hash) -> SealedEntry {
    entry.prev = hex::encode(prev);
    // A struct of strings and numbers always serializes.
    let bytes = serde_json::to_vec(&entry).unwrap_or_default();
    let hash = chain(prev, &bytes);
    SealedEntry { bytes, hash }
}

/// A signed statement: "the chain up to entry `seq` has hash `hash`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub at_ms: i64,
    /// Hex of the audit public key that signs it.
    pub key: String,
    /// The first entry the log holds when this checkpoint is signed: 1, or the entry
    /// after the anchor retention kept. Only a signed checkpoint can say that older
    /// entries are gone by retention; entries missing before it are tampering.
    #[serde(default = "first_entry", skip_serializing_if = "is_first_entry")]
    pub starts_at: u64,
}

fn first_entry() -> u64 {
    1
}

fn is_first_entry(n: &u64) -> bool {
    *n == 1
}

/// A checkpoint's exact JSON bytes and their signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub bytes: Vec<u8>,
    pub signature: [u8; 64],
}

fn checkpoint_message(bytes: &[u8]) -> Vec<u8> {
    [CHECKPOINT_CONTEXT, bytes].concat()
}

/// Signs "the chain up to entry `seq` has hash `hash`, and the log starts at entry
/// `starts_at`".
pub fn sign_checkpoint(
    seq: u64,
    hash: &Hash,
    at_ms: i64,
    starts_at: u64,
    key: &SigningKey,
) -> SignedCheckpoint {
    let cp = Checkpoint {
        seq,
        hash: hex::encode(hash),
        at_ms,
        key: hex::encode(key.verifying_key().to_bytes()),
        starts_at,
    };
    let bytes = serde_json::to_vec(&cp).unwrap_or_default();
    let signature = key.sign(&checkpoint_message(&bytes)).to_bytes();
    SignedCheckpoint { bytes, signature }
}

/// Where verification found the first problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The entry concerned (for a checkpoint, the entry it seals).
    pub entry: Option<u64>,
    /// 1-based line of an export.
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.entry, self.line) {
            (Some(e), Some(l)) => write!(f, "entry {e} (line {l}): {}", self.reason),
            (Some(e), None) => write!(f, "entry {e}: {}", self.reason),
            (None, Some(l)) => write!(f, "line {l}: {}", self.reason),
            (None, None) => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Broken {}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The first entry present (1 unless retention removed older ones).
    pub starts_at: u64,
    /// The last entry.
    pub entries: u64,
    pub checkpoints: u64,
    /// The last entry a valid checkpoint seals.
    pub sealed_through: u64,
    /// Hex of the chain hash after the last entry.
    pub head: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = if self.starts_at > 1 {
            format!(
                " (entries before {} removed by retention; the chain starts at the signed checkpoint of entry {})",
                self.starts_at,
                self.starts_at - 1
            )
        } else {
            String::new()
        };
        write!(
            f,
            "audit log intact: {} entries{kept}, {} signed checkpoints, sealed through entry {}{}; head {}",
            self.entries + 1 - self.starts_at,
            self.checkpoints,
            self.sealed_through,
            match self.entries - self.sealed_through {
                0 => String::new(),
                n => format!(" ({n} newer entries not yet sealed)"),
            },
            self.head
        )
    }
}

/// Checks a log entry by entry; see the module docs for the rules.
pub struct Verifier {
    key: VerifyingKey,
    /// Checkpoints by the entry they seal: (line, checkpoint).
    pending: std::collections::BTreeMap<u64, (Option<usize>, Checkpoint)>,
    checkpoints: u64,
    sealed_through: u64,
    last_seq: u64,
    last_hash: Hash,
    last_at: i64,
    starts_at: u64,
    /// Where the newest verified checkpoint says the log starts: (its entry, start).
    claimed_start: Option<(u64, u64)>,
}

fn broken(entry: Option<u64>, line: Option<usize>, reason: impl Into<String>) -> Broken {
    Broken {
        entry,
        line,
        reason: reason.into(),
    }
}

impl Verifier {
    pub fn new(key: VerifyingKey) -> Self {
        Self {
            key,
            pending: Default::default(),
            checkpoints: 0,
            sealed_through: 0,
            last_seq: 0,
            last_hash: GENESIS,
            last_at: i64::MIN,
            starts_at: 1,
            claimed_start: None,
        }
    }

    /// Starts the chain at a signed checkpoint instead of the beginning: the entries
    /// up to it were removed by retention. Only before the first entry.
    pub fn anchor(&mut self, cp: &SignedCheckpoint, line: Option<usize>) -> Result<(), Broken> {
        let parsed = check_signature(&self.key, cp, line)?;
        if self.last_seq != 0 || self.checkpoints != 0 {
            return Err(broken(
                Some(parsed.seq),
                line,
                "an anchor can only come before every entry",
            ));
        }
        let hash = hex32(&parsed.hash)
            .ok_or_else(|| broken(Some(parsed.seq), line, "anchor hash is not 32 bytes of hex"))?;
        self.last_seq = parsed.seq;
        self.last_hash = hash;
        self.starts_at = parsed.seq + 1;
        self.checkpoints = 1;
        self.sealed_through = parsed.seq;
        Ok(())
    }

    /// Registers a checkpoint for an entry still to come (a stored log: all
    /// checkpoints first, then the entries). Its signature is checked now, its hash
    /// when the entry it seals arrives.
    pub fn checkpoint_ahead(
        &mut self,
        cp: &SignedCheckpoint,
        line: Option<usize>,
    ) -> Result<(), Broken> {
        let parsed = check_signature(&self.key, cp, line)?;
        let at = Some(parsed.seq);
        if parsed.seq <= self.last_seq {
            return Err(broken(at, line, "checkpoint for an entry already checked"));
        }
        if self.pending.insert(parsed.seq, (line, parsed)).is_some() {
            return Err(broken(at, line, "two checkpoints for one entry"));
        }
        Ok(())
    }

    /// A checkpoint that must seal the entry fed last (an export: it follows it).
    pub fn checkpoint_here(
        &mut self,
        cp: &SignedCheckpoint,
        line: Option<usize>,
    ) -> Result<(), Broken> {
        let parsed = check_signature(&self.key, cp, line)?;
        if parsed.seq != self.last_seq {
            return Err(broken(
                Some(parsed.seq),
                line,
                format!("checkpoint for entry {} is not right after it", parsed.seq),
            ));
        }
        self.sealed(&parsed, &self.last_hash.clone(), line)
    }

    fn sealed(&mut self, cp: &Checkpoint, hash: &Hash, line: Option<usize>) -> Result<(), Broken> {
        if cp.hash != hex::encode(hash) {
            return Err(broken(
                Some(self.sealed_through + 1),
                line,
                format!(
                    "entries {} to {} do not match the signed checkpoint at entry {} (rewritten)",
                    self.sealed_through + 1,
                    cp.seq,
                    cp.seq
                ),
            ));
        }
        self.checkpoints += 1;
        self.sealed_through = cp.seq;
        if self.claimed_start.is_none_or(|(seq, _)| cp.seq >= seq) {
            self.claimed_start = Some((cp.seq, cp.starts_at));
        }
        Ok(())
    }

    /// Feeds the next entry: its stored bytes and hash. `key_seq` is the number it is
    /// stored under, when there is one (the database key).
    pub fn entry(
        &mut self,
        key_seq: Option<u64>,
        bytes: &[u8],
        hash: &Hash,
        line: Option<usize>,
    ) -> Result<(), Broken> {
        let expected = self.last_seq + 1;
        let e: Entry = serde_json::from_slice(bytes).map_err(|err| {
            broken(
                Some(key_seq.unwrap_or(expected)),
                line,
                format!("unreadable entry: {err}"),
            )
        })?;
        if let Some(k) = key_seq {
            if k != e.seq {
                return Err(broken(
                    Some(k),
                    line,
                    format!("stored as entry {k} but says it is entry {}", e.seq),
                ));
            }
        }
        if e.seq != expected {
            let reason = if e.seq > expected {
                if expected + 1 == e.seq {
                    format!("entry {expected} is missing (next is {})", e.seq)
                } else {
                    format!("entries {expected} to {} are missing", e.seq - 1)
                }
            } else {
                format!("entry {} appears again or out of order", e.seq)
            };
            return Err(broken(Some(expected), line, reason));
        }
        let at = Some(e.seq);
        if e.prev != hex::encode(self.last_hash) {
            return Err(broken(
                at,
                line,
                "does not follow the entry before it (prev hash differs)",
            ));
        }
        if chain(&self.last_hash, bytes) != *hash {
            return Err(broken(
                at,
                line,
                "was altered: its hash does not match its content",
            ));
        }
        if e.at_ms < self.last_at {
            return Err(broken(at, line, "its time is before the entry before it"));
        }
        if let Some((cp_line, cp)) = self.pending.remove(&e.seq) {
            self.sealed(&cp, hash, cp_line)?;
        }
        self.last_seq = e.seq;
        self.last_hash = *hash;
        self.last_at = e.at_ms;
        Ok(())
    }

    /// Ends verification: a checkpoint for an entry that never came means entries
    /// were cut off the end.
    pub fn finish(self) -> Result<Report, Broken> {
        if let Some((seq, (line, _))) = self.pending.into_iter().next() {
            return Err(broken(
                Some(self.last_seq + 1),
                line,
                format!(
                    "the log ends at entry {} but a signed checkpoint seals entry {seq}: entries were removed",
                    self.last_seq
                ),
            ));
        }
        let claimed = self.claimed_start.map_or(1, |(_, s)| s);
        if claimed != self.starts_at && self.last_seq > 0 {
            let reason = if self.starts_at > claimed {
                format!(
                    "entries {claimed} to {} are missing: the newest signed checkpoint says the log starts at entry {claimed}, and only retention may remove entries",
                    self.starts_at - 1
                )
            } else {
                format!(
                    "the log starts at entry {} but the newest signed checkpoint says {claimed}",
                    self.starts_at
                )
            };
            return Err(broken(Some(self.starts_at.min(claimed)), None, reason));
        }
        Ok(Report {
            starts_at: self.starts_at,
            entries: self.last_seq,
            checkpoints: self.checkpoints,
            sealed_through: self.sealed_through,
            head: hex::encode(self.last_hash),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    roomscribe_audit_export: u64,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(borrow, default)]
    checkpoint: Option<&'a RawValue>,
    #[serde(default)]
    signature: Option<String>,
}

#[derive(Serialize)]
struct EntryLine<'a> {
    entry: &'a RawValue,
    hash: String,
}

#[derive(Serialize)]
struct CheckpointLine<'a> {
    checkpoint: &'a RawValue,
    signature: String,
}

fn raw(bytes: &[u8]) -> Option<&RawValue> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
}

/// Writes an export: the header, the anchor when the log does not start at entry 1,
/// each entry (with its number), each checkpoint after the entry it seals.
pub fn export_lines(
    public_key: &VerifyingKey,
    entries: &[(u64, SealedEntry)],
    checkpoints: &[SignedCheckpoint],
) -> Vec<u8> {
    let mut by_seq = std::collections::BTreeMap::new();
    for cp in checkpoints {
        if let Ok(c) = serde_json::from_slice::<Checkpoint>(&cp.bytes) {
            by_seq.insert(c.seq, cp);
        }
    }
    let mut out = serde_json::to_vec(&Header {
        roomscribe_audit_export: EXPORT_VERSION,
        public_key: hex::encode(public_key.to_bytes()),
    })
    .unwrap_or_default();
    out.push(b'\n');
    let checkpoint_line = |cp: &SignedCheckpoint| {
        raw(&cp.bytes).map(|c| {
            let mut l = serde_json::to_vec(&CheckpointLine {
                checkpoint: c,
                signature: hex::encode(cp.signature),
            })
            .unwrap_or_default();
            l.push(b'\n');
            l
        })
    };
    let first = entries.first().map_or(1, |(s, _)| *s);
    if first > 1 {
        if let Some(l) = by_seq.get(&(first - 1)).and_then(|cp| checkpoint_line(cp)) {
            out.extend(l);
        }
    }
    for (seq, e) in entries {
        if let Some(entry) = raw(&e.bytes) {
            let line = EntryLine {
                entry,
                hash: hex::encode(e.hash),
            };
            out.extend(serde_json::to_vec(&line).unwrap_or_default());
            out.push(b'\n');
        }
        if let Some(l) = by_seq.get(seq).and_then(|cp| checkpoint_line(cp)) {
            out.extend(l);
        }
    }
    out
}

/// One line of a witness file: a checkpoint exactly as in an export
/// (`{"checkpoint":…,"signature":…}`), newline-terminated.
pub fn witness_line(cp: &SignedCheckpoint) -> Vec<u8> {
    let mut line = raw(&cp.bytes)
        .map(|c| {
            serde_json::to_vec(&CheckpointLine {
                checkpoint: c,
                signature: hex::encode(cp.signature),
            })
            .unwrap_or_default()
        })
        .unwrap_or_default();
    line.push(b'\n');
    line
}

/// The checkpoints of a witness file (see [`witness_line`]); a line cut short by a
/// crash at the very end is ignored, anything else unreadable is refused.
pub fn parse_witness(text: &[u8]) -> Result<Vec<SignedCheckpoint>, Broken> {
    let mut out = vec![];
    let complete = match text.iter().rposition(|b| *b == b'\n') {
        Some(i) => &text[..=i],
        None => return Ok(out),
    };
    for (i, line) in complete.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let l: Line<'_> = serde_json::from_slice(line)
            .map_err(|e| broken(None, Some(i + 1), format!("unreadable witness line: {e}")))?;
        let (Some(cp), Some(sig)) = (l.checkpoint, l.signature) else {
            return Err(broken(None, Some(i + 1), "not a checkpoint line"));
        };
        let signature: [u8; 64] = hex::decode(&sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| broken(None, Some(i + 1), "signature is not 64 bytes of hex"))?;
        out.push(SignedCheckpoint {
            bytes: cp.get().as_bytes().to_vec(),
            signature,
        });
    }
    Ok(out)
}

/// The entry a checkpoint seals, if its bytes parse.
pub fn checkpoint_seq(cp: &SignedCheckpoint) -> Option<u64> {
    serde_json::from_slice::<Checkpoint>(&cp.bytes)
        .ok()
        .map(|c| c.seq)
}

fn hex32(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}

/// The public key an export's header names.
pub fn export_public_key(export: &[u8]) -> Result<VerifyingKey, Broken> {
    let first = export.split(|b| *b == b'\n').next().unwrap_or_default();
    let h: Header = serde_json::from_slice(first)
        .map_err(|e| broken(None, Some(1), format!("not an audit export header: {e}")))?;
    if h.roomscribe_audit_export != EXPORT_VERSION {
        return Err(broken(
            None,
            Some(1),
            format!("unsupported export version {}", h.roomscribe_audit_export),
        ));
    }
    hex32(&h.public_key)
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| broken(None, Some(1), "the header's public key is not a valid key"))
}

/// Verifies an export against `key` (which the verifier must already hold: pinned,
/// printed by the appliance, or the export's own key compared by a person).
pub fn verify_export(export: &[u8], key: &VerifyingKey) -> Result<Report, Broken> {
    if export_public_key(export)? != *key {
        return Err(broken(
            None,
            Some(1),
            "the export names another public key than the one verified against",
        ));
    }
    if export.last() != Some(&b'\n') {
        return Err(broken(
            None,
            None,
            "the export does not end with a newline (cut off)",
        ));
    }
    let mut v = Verifier::new(*key);
    let body = &export[..export.len() - 1];
    for (i, text) in body.split(|b| *b == b'\n').enumerate().skip(1) {
        let line = Some(i + 1);
        let expected = Some(v.last_seq + 1);
        let l: Line<'_> = serde_json::from_slice(text)
            .map_err(|e| broken(expected, line, format!("unreadable line: {e}")))?;
        match l {
            Line {
                entry: Some(entry),
                hash: Some(hash),
                checkpoint: None,
                signature: None,
            } => {
                let hash = hex32(&hash)
                    .ok_or_else(|| broken(expected, line, "hash is not 32 bytes of hex"))?;
                v.entry(None, entry.get().as_bytes(), &hash, line)?;
            }
            Line {
                entry: None,
                hash: None,
                checkpoint: Some(cp),
                signature: Some(sig),
            } => {
                let signature: [u8; 64] = hex::decode(&sig)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| broken(None, line, "signature is not 64 bytes of hex"))?;
                let cp = SignedCheckpoint {
                    bytes: cp.get().as_bytes().to_vec(),
                    signature,
                };
                if v.last_seq == 0 && v.checkpoints == 0 {
                    // Before any entry: the anchor of a log shortened by retention.
                    v.anchor(&cp, line)?;
                } else {
                    v.checkpoint_here(&cp, line)?;
                }
            }
            _ => {
                return Err(broken(
                    expected,
                    line,
                    "neither an entry line nor a checkpoint line",
                ))
            }
        }
    }
    let report = v.finish()?;
    if report.sealed_through != report.entries {
        return Err(broken(
            Some(report.sealed_through + 1),
            None,
            format!(
                "entries {} to {} are not sealed by a checkpoint (an export ends with one)",
                report.sealed_through + 1,
                report.entries
            ),
        ));
    }
    Ok(report)
}

fn check_signature(
    key: &VerifyingKey,
    cp: &SignedCheckpoint,
    line: Option<usize>,
) -> Result<Checkpoint, Broken> {
    let parsed: Checkpoint = serde_json::from_slice(&cp.bytes)
        .map_err(|e| broken(None, line, format!("unreadable checkpoint: {e}")))?;
    let at = Some(parsed.seq);
    if parsed.key != hex::encode(key.to_bytes()) {
        return Err(broken(
            at,
            line,
            "checkpoint names another signing key than the one verified against",
        ));
    }
    key.verify_strict(
        &checkpoint_message(&cp.bytes),
        &Signature::from_bytes(&cp.signature),
    )
    .map_err(|_| broken(at, line, "checkpoint signature is not valid"))?;
    Ok(parsed)
}

#[cfg(test)]
mod tests;
