//! The signed manifest of an export: which file (its SHA-256 and size), of which
//! meeting and transcript state, exported by whom and when, signed with the
//! appliance's audit key (Ed25519, the key auditors already hold). Verifying needs
//! only the file, the manifest and, to prove the origin, that public key: it runs
//! offline on any machine (`roomscribe export verify`).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Signed before the manifest's body, so that no other signature of the key (an
/// audit checkpoint) can pass for a manifest.
const CONTEXT: &[u8] = b"roomscribe export manifest v1\n";
pub const KIND: &str = "roomscribe.export-manifest";

/// What is signed. Its JSON (fields in this order, compact) is the signed message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub kind: String,
    pub version: u32,
    pub file_name: String,
    pub format: String,
    pub file_sha256: String,
    pub file_size: u64,
    pub meeting_id: String,
    /// SHA-256 of the transcript as exported (its JSON form): two exports of the same
    /// transcript state share it, whatever their format.
    pub transcript_sha256: String,
    /// Corrections in the transcript so far (the sum of its segments' versions).
    pub transcript_corrections: u64,
    pub segments: u64,
    pub exported_by: String,
    pub exported_at_ms: i64,
    /// Hex Ed25519 public key of the signer.
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(flatten)]
    pub body: Body,
    /// Hex Ed25519 signature over the context and the body's JSON.
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("the manifest is not a Roomscribe export manifest: {0}")]
    Malformed(String),
    #[error("the manifest is signed by key {found}, not the expected {expected}")]
    WrongKey { found: String, expected: String },
    #[error("the manifest's signature does not verify: the manifest was altered")]
    BadSignature,
    #[error("the file is {found} bytes; the manifest says {expected}")]
    WrongSize { found: u64, expected: u64 },
    #[error("the file's SHA-256 is {found}; the manifest says {expected}: the file was altered")]
    WrongDigest { found: String, expected: String },
}

fn message(body: &Body) -> Vec<u8> {
    // A struct of strings and integers always serialises.
    [CONTEXT, &serde_json::to_vec(body).unwrap_or_default()].concat()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Signs `body` (its `kind`, `version` and `public_key` are set here).
pub fn sign(mut body: Body, key: &SigningKey) -> Manifest {
    body.kind = KIND.into();
    body.version = 1;
    body.public_key = hex::encode(key.verifying_key().to_bytes());
    let signature = hex::encode(key.sign(&message(&body)).to_bytes());
    Manifest { body, signature }
}

/// Checks a file against its manifest: the signature (by `expected_key` when given,
/// else by the key the manifest names, which proves integrity but not origin), then
/// the size and the SHA-256.
pub fn verify(
    file: &[u8],
    manifest_json: &[u8],
    expected_key: Option<&str>,
) -> Result<Body, ManifestError> {
    let m: Manifest = serde_json::from_slice(manifest_json)
        .map_err(|e| ManifestError::Malformed(e.to_string()))?;
    if m.body.kind != KIND || m.body.version != 1 {
        return Err(ManifestError::Malformed(format!(
            "kind {:?} version {}",
            m.body.kind, m.body.version
        )));
    }
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !lower_hex(&m.signature) || !lower_hex(&m.body.public_key) {
        return Err(ManifestError::Malformed(
            "signature and public_key are lower-case hex".into(),
        ));
    }
    if let Some(expected) = expected_key {
        if !expected.eq_ignore_ascii_case(&m.body.public_key) {
            return Err(ManifestError::WrongKey {
                found: m.body.public_key.clone(),
                expected: expected.to_lowercase(),
            });
        }
    }
    let key = hex::decode(&m.body.public_key)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(|| ManifestError::Malformed("public_key is not an Ed25519 key".into()))?;
    let signature = hex::decode(&m.signature)
        .ok()
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .map(|s| Signature::from_bytes(&s))
        .ok_or_else(|| ManifestError::Malformed("signature is not 64 hex bytes".into()))?;
    key.verify_strict(&message(&m.body), &signature)
        .map_err(|_| ManifestError::BadSignature)?;
    if file.len() as u64 != m.body.file_size {
        return Err(ManifestError::WrongSize {
            found: file.len() as u64,
            expected: m.body.file_size,
        });
    }
    let found = sha256_hex(file);
    if found != m.body.file_sha256 {
        return Err(ManifestError::WrongDigest {
            found,
            expected: m.body.file_sha256,
        });
    }
    Ok(m.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signed(file: &[u8], key: &SigningKey) -> Vec<u8> {
        let m = sign(
            Body {
                kind: String::new(),
                version: 0,
                file_name: "meeting-m.csv".into(),
                format: "csv".into(),
                file_sha256: sha256_hex(file),
                file_size: file.len() as u64,
                meeting_id: "m".into(),
                transcript_sha256: sha256_hex(b"t"),
                transcript_corrections: 2,
                segments: 3,
                exported_by: "cara".into(),
                exported_at_ms: 7,
                public_key: String::new(),
            },
            key,
        );
        serde_json::to_vec_pretty(&m).expect("json")
    }

    #[test]
    fn the_right_key_is_required_when_named() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let m = signed(b"file", &key);
        let mine = hex::encode(key.verifying_key().to_bytes());
        assert!(verify(b"file", &m, Some(&mine.to_uppercase())).is_ok());
        assert!(verify(b"file", &m, None).is_ok());
        let theirs = hex::encode(other.verifying_key().to_bytes());
        assert!(matches!(
            verify(b"file", &m, Some(&theirs)),
            Err(ManifestError::WrongKey { .. })
        ));
        // A manifest re-signed by another key names that key: caught when the
        // expected key is given.
        let forged = signed(b"file", &other);
        assert!(matches!(
            verify(b"file", &forged, Some(&mine)),
            Err(ManifestError::WrongKey { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any one changed byte, of the file or of the manifest, is caught.
        #[test]
        fn one_changed_byte_is_caught(
            file in prop::collection::vec(any::<u8>(), 1..400),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
            in_manifest in any::<bool>(),
        ) {
            let key = SigningKey::from_bytes(&[7; 32]);
            let m = signed(&file, &key);
            let pk = hex::encode(key.verifying_key().to_bytes());
            prop_assert!(verify(&file, &m, Some(&pk)).is_ok());
            let (mut f, mut mm) = (file.clone(), m.clone());
            if in_manifest {
                let i = at.index(mm.len());
                mm[i] ^= 1 << bit;
            } else {
                let i = at.index(f.len());
                f[i] ^= 1 << bit;
            }
            let r = verify(&f, &mm, Some(&pk));
            // A flipped bit in the manifest's JSON may land in whitespace and change
            // nothing it says; everything it says is covered.
            if in_manifest && serde_json::from_slice::<Manifest>(&mm).ok() == serde_json::from_slice::<Manifest>(&m).ok() {
                prop_assert!(r.is_ok());
            } else {
                prop_assert!(r.is_err(), "{:?}", r);
            }
        }
    }
}
