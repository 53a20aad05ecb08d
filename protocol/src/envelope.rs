//! Sealed envelopes: a signed, encrypted batch of transcript segments.
//!
//! Layout (big-endian; docs/PROTOCOL.md has the table):
//! `header (132 bytes) || ciphertext (len from header) || Ed25519 signature (64)`.
//!
//! Sealing uses a fresh X25519 key per envelope against the appliance's static X25519
//! key; HKDF-SHA256 derives the AES-256-GCM key; the whole header is the associated
//! data, and the agent signs `context || header || ciphertext`. The ephemeral secret is
//! dropped (and zeroized) right after sealing, so the agent cannot decrypt its own queue.

use crate::batch::{Batch, Caption};
use crate::context;
use crate::ids::{AgentId, MeetingId};
use crate::PROTOCOL_VERSION;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

pub const MAGIC: [u8; 4] = *b"RSEV";
pub const HEADER_LEN: usize = 132;
pub const SIGNATURE_LEN: usize = 64;
/// Largest accepted ciphertext (16 MiB). A batch of segments is far smaller.
pub const MAX_CIPHERTEXT_LEN: usize = 16 * 1024 * 1024;
/// Kind byte for a transcript batch (durable, sequence-checked).
pub const KIND_TRANSCRIPT_BATCH: u8 = 1;
/// Kind byte for a live caption (ephemeral; `envelope_seq` is a per-run counter that
/// is not sequence-checked, `segment_first` is the caption's segment number and
/// `segment_count` is 0).
pub const KIND_CAPTION: u8 = 2;
const GCM_TAG_LEN: usize = 16;

/// Every way an envelope can be refused. Parsing, verification and decryption each
/// return one of these; none of them panics on any input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("envelope truncated: need {needed} bytes, got {got}")]
    Truncated { needed: usize, got: usize },
    #[error("envelope has {0} trailing bytes after the signature")]
    TrailingBytes(usize),
    #[error("not an envelope: bad magic bytes")]
    BadMagic,
    #[error("unsupported envelope version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown envelope kind {0}")]
    UnknownKind(u8),
    #[error("reserved header bytes are not zero")]
    ReservedNotZero,
    #[error("ciphertext length {0} is out of range")]
    BadLength(usize),
    #[error("signature does not verify with the key of agent {0}")]
    BadSignature(AgentId),
    #[error("envelope is sealed to key id {got}, this appliance's key id is {expected}")]
    WrongRecipientKey { expected: String, got: String },
    #[error("decryption failed (wrong key or altered ciphertext)")]
    DecryptFailed,
    #[error("sealing failed: the cipher refused the key or the payload")]
    EncryptFailed,
    #[error("ephemeral key is a low-order point")]
    WeakEphemeralKey,
    #[error("payload is not a valid batch: {0}")]
    BadPayload(String),
    #[error("payload disagrees with its header: {0}")]
    PayloadMismatch(&'static str),
}

/// Every field of the fixed-size header. All of it is authenticated twice: as AEAD
/// associated data and under the agent's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub version: u8,
    pub kind: u8,
    pub agent_id: AgentId,
    pub meeting_id: MeetingId,
    /// Per-agent envelope number, from 1, contiguous.
    pub envelope_seq: u64,
    /// Sequence number of the first segment in the batch.
    pub segment_first: u64,
    pub segment_count: u32,
    /// Agent wall clock when sealed, Unix milliseconds.
    pub created_at_ms: i64,
    /// First 8 bytes of SHA-256 of the recipient's X25519 public key.
    pub recipient_key_id: [u8; 8],
    pub ephemeral_public: [u8; 32],
    pub nonce: [u8; 12],
    pub ciphertext_len: u32,
}

impl EnvelopeHeader {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = self.version;
        b[5] = self.kind;
        // b[6..8] reserved, zero
        b[8..24].copy_from_slice(self.agent_id.as_bytes());
        b[24..40].copy_from_slice(self.meeting_id.as_bytes());
        b[40..48].copy_from_slice(&self.envelope_seq.to_be_bytes());
        b[48..56].copy_from_slice(&self.segment_first.to_be_bytes());
        b[56..60].copy_from_slice(&self.segment_count.to_be_bytes());
        b[60..68].copy_from_slice(&self.created_at_ms.to_be_bytes());
        b[68..76].copy_from_slice(&self.recipient_key_id);
        b[76..108].copy_from_slice(&self.ephemeral_public);
        b[108..120].copy_from_slice(&self.nonce);
        b[120..124].copy_from_slice(&self.ciphertext_len.to_be_bytes());
        // b[124..132] reserved, zero
        b
    }

    pub fn parse(b: &[u8]) -> Result<Self, EnvelopeError> {
        if b.len() < HEADER_LEN {
            return Err(EnvelopeError::Truncated {
                needed: HEADER_LEN,
                got: b.len(),
            });
        }
        if b[0..4] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        if b[4] != PROTOCOL_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(b[4]));
        }
        if b[5] != KIND_TRANSCRIPT_BATCH && b[5] != KIND_CAPTION {
            return Err(EnvelopeError::UnknownKind(b[5]));
        }
        if b[6..8] != [0, 0] || b[124..132] != [0u8; 8] {
            return Err(EnvelopeError::ReservedNotZero);
        }
        let ciphertext_len = u32::from_be_bytes(arr(&b[120..124]));
        if (ciphertext_len as usize) < GCM_TAG_LEN || ciphertext_len as usize > MAX_CIPHERTEXT_LEN {
            return Err(EnvelopeError::BadLength(ciphertext_len as usize));
        }
        Ok(Self {
            version: b[4],
            kind: b[5],
            agent_id: AgentId::from_bytes(arr(&b[8..24])),
            meeting_id: MeetingId::from_bytes(arr(&b[24..40])),
            envelope_seq: u64::from_be_bytes(arr(&b[40..48])),
            segment_first: u64::from_be_bytes(arr(&b[48..56])),
            segment_count: u32::from_be_bytes(arr(&b[56..60])),
            created_at_ms: i64::from_be_bytes(arr(&b[60..68])),
            recipient_key_id: arr(&b[68..76]),
            ephemeral_public: arr(&b[76..108]),
            nonce: arr(&b[108..120]),
            ciphertext_len,
        })
    }
}

/// Copies a slice of known length into an array; callers slice exact ranges.
fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// Key id of an X25519 public key: the first 8 bytes of its SHA-256.
pub fn key_id(public: &[u8; 32]) -> [u8; 8] {
    let d = Sha256::digest(public);
    arr(&d[..8])
}

/// The appliance's envelope key pair. The secret is zeroized on drop by x25519-dalek.
pub struct RecipientKey {
    secret: StaticSecret,
    public: PublicKey,
}

impl RecipientKey {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::from_secret_bytes({
            let mut b = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(b.as_mut());
            *b
        })
    }
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }
    pub fn public_bytes(&self) -> [u8; 32] {
        self.public.to_bytes()
    }
    pub fn key_id(&self) -> [u8; 8] {
        key_id(&self.public.to_bytes())
    }
}

/// What the sealer supplies besides the batch.
#[derive(Debug, Clone)]
pub struct SealParams {
    pub agent_id: AgentId,
    pub meeting_id: MeetingId,
    pub envelope_seq: u64,
    pub created_at_ms: i64,
    /// The appliance's X25519 public key, pinned at enrollment.
    pub recipient_public: [u8; 32],
}

/// A parsed (not yet verified) envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEnvelope {
    pub header: EnvelopeHeader,
    pub ciphertext: Vec<u8>,
    pub signature: [u8; SIGNATURE_LEN],
}

fn derive_key(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
    agent: &AgentId,
) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(context::ENVELOPE_KDF_SALT), shared);
    let mut info = Vec::with_capacity(80);
    info.extend_from_slice(ephemeral);
    info.extend_from_slice(recipient);
    info.extend_from_slice(agent.as_bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = hk.expand(&info, okm.as_mut());
    okm
}

fn signed_message(header: &[u8; HEADER_LEN], ciphertext: &[u8]) -> Vec<u8> {
    let mut m =
        Vec::with_capacity(context::ENVELOPE_SIGNATURE.len() + HEADER_LEN + ciphertext.len());
    m.extend_from_slice(context::ENVELOPE_SIGNATURE);
    m.extend_from_slice(header);
    m.extend_from_slice(ciphertext);
    m
}

/// Seals a batch. Fails only if the batch is inconsistent or too large.
pub fn seal<R: RngCore + CryptoRng>(
    batch: &Batch,
    params: &SealParams,
    signing_key: &SigningKey,
    rng: &mut R,
) -> Result<SealedEnvelope, EnvelopeError> {
    let segment_first = batch.segments.first().map_or(0, |s| s.seq);
    check_contiguous(batch, segment_first)?;
    if let Some(what) = batch.non_finite() {
        return Err(EnvelopeError::BadPayload(what));
    }
    let plaintext = Zeroizing::new(
        serde_json::to_vec(batch).map_err(|e| EnvelopeError::BadPayload(e.to_string()))?,
    );
    seal_plaintext(
        KIND_TRANSCRIPT_BATCH,
        &plaintext,
        (segment_first, batch.segments.len() as u32),
        params,
        signing_key,
        rng,
    )
}

/// Seals a live caption (envelope kind 2).
pub fn seal_caption<R: RngCore + CryptoRng>(
    caption: &Caption,
    params: &SealParams,
    signing_key: &SigningKey,
    rng: &mut R,
) -> Result<SealedEnvelope, EnvelopeError> {
    let plaintext = Zeroizing::new(
        serde_json::to_vec(caption).map_err(|e| EnvelopeError::BadPayload(e.to_string()))?,
    );
    seal_plaintext(
        KIND_CAPTION,
        &plaintext,
        (caption.segment_seq, 0),
        params,
        signing_key,
        rng,
    )
}

fn seal_plaintext<R: RngCore + CryptoRng>(
    kind: u8,
    plaintext: &[u8],
    (segment_first, segment_count): (u64, u32),
    params: &SealParams,
    signing_key: &SigningKey,
    rng: &mut R,
) -> Result<SealedEnvelope, EnvelopeError> {
    let ciphertext_len = plaintext.len() + GCM_TAG_LEN;
    if ciphertext_len > MAX_CIPHERTEXT_LEN {
        return Err(EnvelopeError::BadLength(ciphertext_len));
    }
    let ephemeral = EphemeralSecret::random_from_rng(&mut *rng);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(params.recipient_public));
    if !shared.was_contributory() {
        return Err(EnvelopeError::WeakEphemeralKey);
    }
    let key = derive_key(
        shared.as_bytes(),
        &ephemeral_public,
        &params.recipient_public,
        &params.agent_id,
    );
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let header = EnvelopeHeader {
        version: PROTOCOL_VERSION,
        kind,
        agent_id: params.agent_id,
        meeting_id: params.meeting_id,
        envelope_seq: params.envelope_seq,
        segment_first,
        segment_count,
        created_at_ms: params.created_at_ms,
        recipient_key_id: key_id(&params.recipient_public),
        ephemeral_public,
        nonce,
        ciphertext_len: ciphertext_len as u32,
    };
    let header_bytes = header.to_bytes();
    let cipher =
        Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| EnvelopeError::EncryptFailed)?;
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &header_bytes,
            },
        )
        .map_err(|_| EnvelopeError::EncryptFailed)?;
    let signature = signing_key
        .sign(&signed_message(&header_bytes, &ciphertext))
        .to_bytes();
    Ok(SealedEnvelope {
        header,
        ciphertext,
        signature,
    })
}

fn check_contiguous(batch: &Batch, first: u64) -> Result<(), EnvelopeError> {
    for (i, s) in batch.segments.iter().enumerate() {
        if s.seq != first.wrapping_add(i as u64) {
            return Err(EnvelopeError::PayloadMismatch(
                "segment numbers are not contiguous",
            ));
        }
    }
    Ok(())
}

impl SealedEnvelope {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ciphertext.len() + SIGNATURE_LEN);
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.ciphertext);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the framing only; [`Self::verify`] next, then open what it returns.
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let header = EnvelopeHeader::parse(bytes)?;
        let total = HEADER_LEN + header.ciphertext_len as usize + SIGNATURE_LEN;
        if bytes.len() < total {
            return Err(EnvelopeError::Truncated {
                needed: total,
                got: bytes.len(),
            });
        }
        if bytes.len() > total {
            return Err(EnvelopeError::TrailingBytes(bytes.len() - total));
        }
        let ct_end = HEADER_LEN + header.ciphertext_len as usize;
        Ok(Self {
            ciphertext: bytes[HEADER_LEN..ct_end].to_vec(),
            signature: arr(&bytes[ct_end..total]),
            header,
        })
    }

    /// Checks the agent's signature with `verify_strict` (rejects malleable and
    /// small-order cases). Only the [`VerifiedEnvelope`] it returns can be opened, so
    /// nothing can decrypt an envelope whose signature was not checked.
    pub fn verify(&self, agent_key: &VerifyingKey) -> Result<VerifiedEnvelope<'_>, EnvelopeError> {
        let msg = signed_message(&self.header.to_bytes(), &self.ciphertext);
        agent_key
            .verify_strict(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| EnvelopeError::BadSignature(self.header.agent_id))?;
        Ok(VerifiedEnvelope(self))
    }

    fn decrypt(&self, recipient: &RecipientKey) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let expected = recipient.key_id();
        if self.header.recipient_key_id != expected {
            return Err(EnvelopeError::WrongRecipientKey {
                expected: hex::encode(expected),
                got: hex::encode(self.header.recipient_key_id),
            });
        }
        let eph = PublicKey::from(self.header.ephemeral_public);
        let shared = recipient.secret.diffie_hellman(&eph);
        if !shared.was_contributory() {
            return Err(EnvelopeError::WeakEphemeralKey);
        }
        let key = derive_key(
            shared.as_bytes(),
            &self.header.ephemeral_public,
            &recipient.public_bytes(),
            &self.header.agent_id,
        );
        let cipher =
            Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| EnvelopeError::DecryptFailed)?;
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&self.header.nonce),
                    Payload {
                        msg: &self.ciphertext,
                        aad: &self.header.to_bytes(),
                    },
                )
                .map_err(|_| EnvelopeError::DecryptFailed)?,
        );
        Ok(plaintext)
    }

    /// SHA-256 of the exact bytes, used to recognise an identical replay.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }
}

/// An envelope whose agent signature verified: the only kind that can be opened.
/// Only [`SealedEnvelope::verify`] makes one; an unverified envelope has no `open`:
///
/// ```compile_fail
/// # use roomscribe_protocol::envelope::{RecipientKey, SealedEnvelope};
/// fn read(env: &SealedEnvelope, key: &RecipientKey) {
///     let _ = env.open(key);
/// }
/// ```
///
/// ```compile_fail
/// # use roomscribe_protocol::envelope::{SealedEnvelope, VerifiedEnvelope};
/// fn forge(env: &SealedEnvelope) -> VerifiedEnvelope<'_> {
///     VerifiedEnvelope(env)
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct VerifiedEnvelope<'a>(&'a SealedEnvelope);

impl VerifiedEnvelope<'_> {
    pub fn header(&self) -> &EnvelopeHeader {
        &self.0.header
    }

    /// Decrypts a transcript batch and checks that it agrees with the header.
    pub fn open(&self, recipient: &RecipientKey) -> Result<Batch, EnvelopeError> {
        if self.0.header.kind != KIND_TRANSCRIPT_BATCH {
            return Err(EnvelopeError::PayloadMismatch("not a transcript batch"));
        }
        let plaintext = self.0.decrypt(recipient)?;
        let batch: Batch = serde_json::from_slice(&plaintext)
            .map_err(|e| EnvelopeError::BadPayload(e.to_string()))?;
        if batch.segments.len() != self.0.header.segment_count as usize {
            return Err(EnvelopeError::PayloadMismatch("segment count"));
        }
        check_contiguous(&batch, self.0.header.segment_first)?;
        Ok(batch)
    }

    /// Decrypts a live caption and checks it against the header.
    pub fn open_caption(&self, recipient: &RecipientKey) -> Result<Caption, EnvelopeError> {
        if self.0.header.kind != KIND_CAPTION {
            return Err(EnvelopeError::PayloadMismatch("not a caption"));
        }
        let plaintext = self.0.decrypt(recipient)?;
        let caption: Caption = serde_json::from_slice(&plaintext)
            .map_err(|e| EnvelopeError::BadPayload(e.to_string()))?;
        if caption.segment_seq != self.0.header.segment_first || self.0.header.segment_count != 0 {
            return Err(EnvelopeError::PayloadMismatch("caption segment number"));
        }
        Ok(caption)
    }
}

#[cfg(test)]
mod tests;
