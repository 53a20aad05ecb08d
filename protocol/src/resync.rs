//! Resynchronisation after a restore: what an agent sends when the appliance's
//! last stored envelope number (from the welcome) is not the agent's last
//! acknowledged one. Pure: the replicator and the property tests below drive the
//! same [`Resync`]. `docs/PROTOCOL.md` ("Resynchronisation") explains the cases.
//!
//! - **Appliance ahead** (the agent's state directory was restored from an older
//!   copy, or acknowledgements were lost): queued envelopes are re-sent; the
//!   identical ones are acknowledged as duplicates. The first one the appliance holds
//!   with *other* bytes (sealed after the restore under a number already used) is
//!   refused as `replayed`: the agent then renumbers it and everything after it to
//!   follow the appliance's last number ([`Step`] `Renumber`), sending each wrapped in
//!   a signed [`Notice`] because the sealed envelope's own number cannot change (the
//!   agent cannot decrypt it). With nothing queued, the agent numbers new envelopes
//!   after the appliance's last ([`Step::Advance`]).
//! - **Appliance behind** (restored from an older backup): the agent re-sends the
//!   acknowledged envelopes it keeps (`queue.keep_acked_days`) from the appliance's
//!   last + 1. If it no longer keeps the first one needed, it declares the missing
//!   numbers lost in a signed [`Notice`] (audited on the appliance) and goes on.
//!
//! A number is never given to new bytes while the appliance holds it, and the
//! appliance stores each meeting's segment numbers once, so neither direction
//! replays or duplicates a segment.

use crate::context;
use crate::envelope::{EnvelopeError, SealedEnvelope, SIGNATURE_LEN};
use crate::ids::AgentId;
use crate::PROTOCOL_VERSION;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// What an agent's queue holds, in envelope numbers.
pub trait Holdings {
    /// Highest number the appliance acknowledged (0 = none).
    fn acked(&self) -> u64;
    /// Highest number queued, or `acked` when nothing is queued.
    fn last(&self) -> u64;
    /// The lowest kept acknowledged envelope numbered `n` or more.
    fn kept_from(&self, n: u64) -> Option<u64>;
}

/// The next thing the replicator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send the queued envelope with this number (the queue's front).
    Send(u64),
    /// Re-send this kept, already acknowledged envelope (the appliance lost it).
    Resend(u64),
    /// Tell the appliance that `first..=last` are gone from this agent too.
    DeclareLost { first: u64, last: u64 },
    /// Nothing is queued and the appliance holds more than this agent knows of:
    /// number new envelopes after `to`.
    Advance { to: u64 },
    /// Nothing to send.
    Idle,
}

/// A refusal that is not part of resynchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("envelope {seq} was refused as a replay although the appliance's last number is {appliance_last}")]
pub struct NotAResyncConflict {
    pub seq: u64,
    pub appliance_last: u64,
}

/// One connection's view of the appliance's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    appliance_last: u64,
}

impl Resync {
    /// From the welcome's `last_envelope_seq`.
    pub fn new(welcome_last: Option<u64>) -> Self {
        Self {
            appliance_last: welcome_last.unwrap_or(0),
        }
    }

    pub fn appliance_last(&self) -> u64 {
        self.appliance_last
    }

    pub fn next(&self, q: &impl Holdings) -> Step {
        let (a, acked) = (self.appliance_last, q.acked());
        if a < acked {
            let need = a + 1;
            match q.kept_from(need) {
                Some(k) if k == need => Step::Resend(need),
                Some(k) if k <= acked => Step::DeclareLost {
                    first: need,
                    last: k - 1,
                },
                _ => Step::DeclareLost {
                    first: need,
                    last: acked,
                },
            }
        } else if q.last() > acked {
            Step::Send(acked + 1)
        } else if a > acked {
            Step::Advance { to: a }
        } else {
            Step::Idle
        }
    }

    /// The appliance acknowledged everything up to `through`.
    pub fn acknowledged(&mut self, through: u64) {
        self.appliance_last = self.appliance_last.max(through);
    }

    /// The appliance refused queued envelope `seq` as a replay (it holds other bytes
    /// under that number). Returns how far to shift `seq` and every later queued
    /// envelope so that `seq` follows the appliance's last number.
    pub fn conflict(&self, seq: u64) -> Result<u64, NotAResyncConflict> {
        if seq == 0 || seq > self.appliance_last {
            return Err(NotAResyncConflict {
                seq,
                appliance_last: self.appliance_last,
            });
        }
        Ok(self.appliance_last + 1 - seq)
    }
}

// --- Notices -----------------------------------------------------------------------

pub const NOTICE_MAGIC: [u8; 4] = *b"RSRN";
pub const NOTICE_HEADER_LEN: usize = 44;
const KIND_RENUMBERED: u8 = 1;
const KIND_LOST: u8 = 2;
const KIND_SET_ASIDE: u8 = 3;
const KIND_DISCARDED: u8 = 4;
/// Longest reason a set-aside notice carries, bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Largest envelope a notice may carry (an envelope's own limit plus its framing).
const MAX_BODY_LEN: usize =
    crate::envelope::MAX_CIPHERTEXT_LEN + crate::envelope::HEADER_LEN + SIGNATURE_LEN;

/// What a notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeBody {
    /// `original` (a sealed envelope with another number) is sent as number `seq`.
    Renumbered { original: Vec<u8> },
    /// Numbers `seq..=last` are lost: neither the appliance nor the agent has them.
    Lost { last: u64 },
    /// The envelope numbered `seq` (SHA-256 `digest`) was refused for good with
    /// `reason`; the agent holds it in quarantine and the number is skipped.
    SetAside { digest: [u8; 32], reason: String },
    /// An operator discarded the quarantined envelope `original` (SHA-256 `digest`).
    Discarded { original: u64, digest: [u8; 32] },
}

/// A signed statement by an agent about its envelope numbers, sent where an
/// envelope would be. Layout (big-endian): `"RSRN" | version | kind | 0 0 |
/// agent id (16) | seq (8) | last (8) | body length (4) | body | Ed25519 signature
/// (64)` over `context || everything before it`. No time: a notice re-sent after a
/// reconnect must be byte-identical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub agent_id: AgentId,
    pub seq: u64,
    pub body: NoticeBody,
    signature: [u8; SIGNATURE_LEN],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("notice truncated: need {needed} bytes, got {got}")]
    Truncated { needed: usize, got: usize },
    #[error("not a notice: bad magic bytes")]
    BadMagic,
    #[error("unsupported notice version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed notice: {0}")]
    Malformed(&'static str),
    #[error("notice signature does not verify with the key of agent {0}")]
    BadSignature(AgentId),
    #[error("renumbered envelope: {0}")]
    Inner(EnvelopeError),
}

fn unsigned_bytes(agent_id: &AgentId, seq: u64, body: &NoticeBody) -> Vec<u8> {
    let owned: Vec<u8>;
    let (kind, last, payload): (u8, u64, &[u8]) = match body {
        NoticeBody::Renumbered { original } => (KIND_RENUMBERED, seq, original),
        NoticeBody::Lost { last } => (KIND_LOST, *last, &[]),
        NoticeBody::SetAside { digest, reason } => {
            let reason = &reason.as_bytes()[..floor_char_boundary(reason, MAX_REASON_LEN)];
            owned = [digest.as_slice(), reason].concat();
            (KIND_SET_ASIDE, seq, &owned)
        }
        NoticeBody::Discarded { original, digest } => {
            owned = [original.to_be_bytes().as_slice(), digest.as_slice()].concat();
            (KIND_DISCARDED, seq, &owned)
        }
    };
    let mut b = Vec::with_capacity(NOTICE_HEADER_LEN + payload.len() + SIGNATURE_LEN);
    b.extend_from_slice(&NOTICE_MAGIC);
    b.extend_from_slice(&[PROTOCOL_VERSION, kind, 0, 0]);
    b.extend_from_slice(agent_id.as_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = s.len().min(max);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context::RESYNC_NOTICE_SIGNATURE.len() + unsigned.len());
    m.extend_from_slice(context::RESYNC_NOTICE_SIGNATURE);
    m.extend_from_slice(unsigned);
    m
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl Notice {
    /// Signs a notice (Ed25519 is deterministic: the same notice has the same bytes,
    /// so a re-sent one is recognised as a duplicate).
    pub fn sign(key: &SigningKey, agent_id: AgentId, seq: u64, body: NoticeBody) -> Self {
        let body = match body {
            NoticeBody::SetAside { digest, reason } => NoticeBody::SetAside {
                digest,
                reason: reason[..floor_char_boundary(&reason, MAX_REASON_LEN)].to_owned(),
            },
            other => other,
        };
        let signature = key
            .sign(&signed_message(&unsigned_bytes(&agent_id, seq, &body)))
            .to_bytes();
        Self {
            agent_id,
            seq,
            body,
            signature,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = unsigned_bytes(&self.agent_id, self.seq, &self.body);
        b.extend_from_slice(&self.signature);
        b
    }

    /// Parses the framing; [`Self::verify`] next. Never panics.
    pub fn parse(b: &[u8]) -> Result<Self, NoticeError> {
        if b.len() < NOTICE_HEADER_LEN + SIGNATURE_LEN {
            return Err(NoticeError::Truncated {
                needed: NOTICE_HEADER_LEN + SIGNATURE_LEN,
                got: b.len(),
            });
        }
        if b[0..4] != NOTICE_MAGIC {
            return Err(NoticeError::BadMagic);
        }
        if b[4] != PROTOCOL_VERSION {
            return Err(NoticeError::UnsupportedVersion(b[4]));
        }
        if b[6..8] != [0, 0] {
            return Err(NoticeError::Malformed("reserved bytes are not zero"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[8..24]);
        let agent_id = AgentId::from_bytes(id);
        let seq = be_u64(&b[24..32]);
        let last = be_u64(&b[32..40]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&b[40..44]);
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_BODY_LEN {
            return Err(NoticeError::Malformed("body too long"));
        }
        let total = NOTICE_HEADER_LEN + len + SIGNATURE_LEN;
        if b.len() != total {
            return Err(NoticeError::Truncated {
                needed: total,
                got: b.len(),
            });
        }
        if seq == 0 {
            return Err(NoticeError::Malformed("envelope number 0"));
        }
        let payload = &b[NOTICE_HEADER_LEN..NOTICE_HEADER_LEN + len];
        let digest = |p: &[u8]| {
            let mut d = [0u8; 32];
            d.copy_from_slice(&p[..32]);
            d
        };
        let body = match b[5] {
            KIND_RENUMBERED if last == seq && len > 0 => NoticeBody::Renumbered {
                original: payload.to_vec(),
            },
            KIND_LOST if last >= seq && len == 0 => NoticeBody::Lost { last },
            KIND_SET_ASIDE if last == seq && (32..=32 + MAX_REASON_LEN).contains(&len) => {
                NoticeBody::SetAside {
                    digest: digest(payload),
                    reason: String::from_utf8(payload[32..].to_vec())
                        .map_err(|_| NoticeError::Malformed("reason is not UTF-8"))?,
                }
            }
            KIND_DISCARDED if last == seq && len == 40 => {
                let original = be_u64(payload);
                if original == 0 || original >= seq {
                    return Err(NoticeError::Malformed(
                        "a discarded envelope precedes its discard",
                    ));
                }
                NoticeBody::Discarded {
                    original,
                    digest: digest(&payload[8..]),
                }
            }
            KIND_RENUMBERED | KIND_LOST | KIND_SET_ASIDE | KIND_DISCARDED => {
                return Err(NoticeError::Malformed(
                    "numbers or body do not fit the kind",
                ))
            }
            _ => return Err(NoticeError::Malformed("unknown kind")),
        };
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&b[total - SIGNATURE_LEN..]);
        Ok(Self {
            agent_id,
            seq,
            body,
            signature,
        })
    }

    /// Checks the agent's signature (`verify_strict`); for a renumbered envelope
    /// also parses the envelope inside and checks that it names the same agent (the
    /// caller still verifies and opens that envelope with the same key).
    pub fn verify(&self, agent_key: &VerifyingKey) -> Result<Verified, NoticeError> {
        let msg = signed_message(&unsigned_bytes(&self.agent_id, self.seq, &self.body));
        agent_key
            .verify_strict(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| NoticeError::BadSignature(self.agent_id))?;
        match &self.body {
            NoticeBody::Lost { last } => Ok(Verified::Lost {
                first: self.seq,
                last: *last,
            }),
            NoticeBody::SetAside { digest, reason } => Ok(Verified::SetAside {
                seq: self.seq,
                digest: *digest,
                reason: reason.clone(),
            }),
            NoticeBody::Discarded { original, digest } => Ok(Verified::Discarded {
                seq: self.seq,
                original: *original,
                digest: *digest,
            }),
            NoticeBody::Renumbered { original } => {
                let inner = SealedEnvelope::parse(original).map_err(NoticeError::Inner)?;
                if inner.header.agent_id != self.agent_id {
                    return Err(NoticeError::Malformed(
                        "the renumbered envelope names another agent",
                    ));
                }
                Ok(Verified::Renumbered {
                    seq: self.seq,
                    envelope: inner,
                })
            }
        }
    }

    /// SHA-256 of the exact bytes (recognises a re-sent notice).
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }
}

/// A notice whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Store `envelope` (after verifying it) under number `seq`.
    Renumbered {
        seq: u64,
        envelope: SealedEnvelope,
    },
    Lost {
        first: u64,
        last: u64,
    },
    SetAside {
        seq: u64,
        digest: [u8; 32],
        reason: String,
    },
    Discarded {
        seq: u64,
        original: u64,
        digest: [u8; 32],
    },
}

/// True when `bytes` are a notice rather than a sealed envelope.
pub fn is_notice(bytes: &[u8]) -> bool {
    bytes.starts_with(&NOTICE_MAGIC)
}

/// The envelope number an envelope frame's bytes are acknowledged under: the
/// envelope's own, a renumbered envelope's new one, or a lost range's last.
pub fn acknowledged_number(bytes: &[u8]) -> Option<u64> {
    if is_notice(bytes) {
        let n = Notice::parse(bytes).ok()?;
        Some(match n.body {
            NoticeBody::Lost { last } => last,
            _ => n.seq,
        })
    } else {
        crate::EnvelopeHeader::parse(bytes)
            .ok()
            .map(|h| h.envelope_seq)
    }
}

/// The bytes to send for the queued item `bytes` under number `seq`: the envelope
/// itself when it carries that number, else a signed renumbering notice; a queued
/// notice (set aside, discarded) is signed again under `seq` if it was renumbered.
/// Deterministic, so a re-send is byte-identical.
pub fn wire_bytes(key: &SigningKey, agent_id: AgentId, seq: u64, bytes: &[u8]) -> Vec<u8> {
    if is_notice(bytes) {
        if let Ok(n) = Notice::parse(bytes) {
            if n.seq == seq {
                return bytes.to_vec();
            }
            if !matches!(
                n.body,
                NoticeBody::Renumbered { .. } | NoticeBody::Lost { .. }
            ) {
                return Notice::sign(key, agent_id, seq, n.body).to_bytes();
            }
        }
    }
    match crate::EnvelopeHeader::parse(bytes) {
        Ok(h) if h.envelope_seq == seq => bytes.to_vec(),
        _ => Notice::sign(
            key,
            agent_id,
            seq,
            NoticeBody::Renumbered {
                original: bytes.to_vec(),
            },
        )
        .to_bytes(),
    }
}

#[cfg(test)]
mod tests;
