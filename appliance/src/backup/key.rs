//! The backup key: 32 random bytes in their own file (`backup.key_file`), apart from
//! the storage master key, so that a stolen backup target and a stolen master key are
//! separate failures. Every key a backup uses is derived from it (HKDF-SHA256, one
//! label per purpose): the encryption key of objects, the key of blob ids, the
//! chunker's seed and the Ed25519 key that signs manifests.

use super::BackupError;
use aes_gcm::{Aes256Gcm, KeyInit};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};

use sha2::{Digest, Sha256};
use std::path::Path;
use zeroize::Zeroizing;

pub struct BackupKey {
    id: String,
    cipher: Aes256Gcm,
    id_key: Zeroizing<[u8; 32]>,
    seed: u64,
    signing: SigningKey,
}

fn derive(ikm: &[u8; 32], label: &str) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let info = format!("roomscribe/backup/{label}/v1");
    // 32 bytes are far below HKDF-SHA256's limit of 255 blocks.
    if hkdf::Hkdf::<Sha256>::new(None, ikm)
        .expand(info.as_bytes(), &mut *out)
        .is_err()
    {
        unreachable!("HKDF output of 32 bytes is always valid");
    }
    out
}

impl BackupKey {
    pub fn from_bytes(ikm: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"roomscribe/backup-key-id/v1\0")
            .chain_update(ikm)
            .finalize();
        let seed = derive(ikm, "chunk-seed");
        Self {
            id: hex::encode(&digest[..8]),
            cipher: Aes256Gcm::new((&*derive(ikm, "encrypt")).into()),
            id_key: derive(ikm, "blob-id"),
            seed: u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()),
            signing: SigningKey::from_bytes(&derive(ikm, "sign")),
        }
    }

    /// Loads the key file (0600, refused when others can read it).
    pub fn load(path: &Path) -> Result<Self, BackupError> {
        Ok(Self::from_bytes(&*crate::keys::read_secret32(path)?))
    }

    /// Loads the key file, creating it the first time (its copy goes into the safe).
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), BackupError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        if let Some(dir) = path.parent() {
            crate::keys::private_dir(dir)?;
        }
        Ok((Self::from_bytes(&*crate::keys::new_secret32(path)?), true))
    }

    /// A short public id of the key (never the key): which key a target was made with.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    pub fn chunk_seed(&self) -> u64 {
        self.seed
    }

    /// The blob id of a chunk: keyed, so an id reveals nothing about content.
    pub fn blob_id(&self, plain: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.id_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(plain);
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn sign(&self, context: &[u8], msg: &[u8]) -> [u8; 64] {
        self.signing.sign(&[context, msg].concat()).to_bytes()
    }

    pub fn verify(&self, context: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        self.verifying_key()
            .verify(&[context, msg].concat(), &sig)
            .is_ok()
    }

    /// The public key that verifies manifests (for the restore instructions).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }
}
