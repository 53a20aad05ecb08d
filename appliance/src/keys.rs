//! The appliance's own secrets, created on first start under `<data_dir>/keys/`:
//! the X25519 envelope key, the Ed25519 signing key (commands to agents), the Ed25519
//! audit key (audit-log checkpoints; its public half is what auditors verify against),
//! the QUIC ingest certificate (which agents pin) and the self-signed HTTPS certificate
//! (unless the operator configures one).
//!
//! Secret files are created 0600 in a 0700 directory and refused when group- or
//! world-readable. Key bytes are zeroized when dropped.

use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use roomscribe_protocol::RecipientKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path}: expected {expected} bytes of key material")]
    BadLength { path: PathBuf, expected: usize },
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{path}: no {what} found in PEM file")]
    Pem { path: PathBuf, what: &'static str },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn private_dir(dir: &Path) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Writes a secret file with mode 0600, atomically (temp file + rename).
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a secret file, refusing it when group or others can read it.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(Zeroizing::new(fs::read(path).map_err(io(path))?))
}

fn load_or_create_raw(path: &Path, len: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if !path.exists() {
        let mut b = Zeroizing::new(vec![0u8; len]);
        OsRng.fill_bytes(&mut b);
        write_secret(path, &b)?;
    }
    let b = read_secret(path)?;
    if b.len() != len {
        return Err(KeyError::BadLength {
            path: path.to_owned(),
            expected: len,
        });
    }
    Ok(b)
}

fn arr32(b: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut a = Zeroizing::new([0u8; 32]);
    a.copy_from_slice(&b[..32]);
    a
}

/// A certificate chain with its private key, ready for rustls.
pub struct TlsIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    pub fn clone_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// AES-256-GCM for secrets the appliance must keep in its database and use again
/// (TOTP seeds): a database file or backup alone does not reveal them. Each secret is
/// bound to what it belongs to (`context`), so one cannot be moved to another user.
pub struct SecretBox(Zeroizing<[u8; 32]>);

impl SecretBox {
    /// `nonce (12) || ciphertext+tag`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes256Gcm::new((&*self.0).into());
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        [nonce.as_slice(), &ct].concat()
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let (nonce, ct) = sealed.split_at_checked(12)?;
        let cipher = aes_gcm::Aes256Gcm::new((&*self.0).into());
        cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

pub struct ApplianceKeys {
    pub envelope: RecipientKey,
    pub signing: SigningKey,
    pub audit: SigningKey,
    pub secrets: SecretBox,
    pub ingest: TlsIdentity,
    pub ingest_cert_sha256: [u8; 32],
}

impl ApplianceKeys {
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        let dir = data_dir.join("keys");
        private_dir(&dir)?;
        let envelope = RecipientKey::from_secret_bytes(*arr32(&load_or_create_raw(
            &dir.join("envelope.x25519"),
            32,
        )?));
        let signing = SigningKey::from_bytes(&arr32(&load_or_create_raw(
            &dir.join("signing.ed25519"),
            32,
        )?));
        let audit =
            SigningKey::from_bytes(&arr32(&load_or_create_raw(&dir.join("audit.ed25519"), 32)?));
        let secrets = SecretBox(arr32(&load_or_create_raw(&dir.join("secrets.aes256"), 32)?));
        let ingest = self_signed(
            &dir.join("ingest.crt.der"),
            &dir.join("ingest.key.der"),
            &["roomscribe-ingest".into()],
        )?;
        let ingest_cert_sha256 = Sha256::digest(&ingest.chain[0]).into();
        Ok(Self {
            envelope,
            signing,
            audit,
            secrets,
            ingest,
            ingest_cert_sha256,
        })
    }
}

/// Loads a self-signed certificate from DER files, creating it on first use.
/// Its validity is long (rcgen's default ends in 4096): agents pin its hash.
pub fn self_signed(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
) -> Result<TlsIdentity, KeyError> {
    if !cert_path.exists() || !key_path.exists() {
        let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
        write_secret(key_path, &Zeroizing::new(ck.signing_key.serialize_der()))?;
        fs::write(cert_path, ck.cert.der()).map_err(io(cert_path))?;
    }
    let key = read_secret(key_path)?;
    let cert = fs::read(cert_path).map_err(io(cert_path))?;
    Ok(TlsIdentity {
        chain: vec![CertificateDer::from(cert)],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
    })
}

/// Loads an operator-provided PEM certificate chain and key.
pub fn from_pem(cert_path: &Path, key_path: &Path) -> Result<TlsIdentity, KeyError> {
    let cert_pem = fs::read(cert_path).map_err(io(cert_path))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(io(cert_path))?;
    if chain.is_empty() {
        return Err(KeyError::Pem {
            path: cert_path.to_owned(),
            what: "certificate",
        });
    }
    let key_pem = read_secret(key_path)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(io(key_path))?
        .ok_or_else(|| KeyError::Pem {
            path: key_path.to_owned(),
            what: "private key",
        })?;
    Ok(TlsIdentity { chain, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_open_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ApplianceKeys::load_or_create(dir.path()).expect("create");
        let b = ApplianceKeys::load_or_create(dir.path()).expect("load");
        assert_eq!(a.envelope.public_bytes(), b.envelope.public_bytes());
        assert_eq!(a.ingest_cert_sha256, b.ingest_cert_sha256);
        let key = dir.path().join("keys/signing.ed25519");
        assert_eq!(
            fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let sealed = a.secrets.seal("user:ann", b"seed");
        assert_eq!(
            b.secrets
                .open("user:ann", &sealed)
                .expect("opens")
                .as_slice(),
            b"seed"
        );
        assert!(
            b.secrets.open("user:bob", &sealed).is_none(),
            "bound to its owner"
        );
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            ApplianceKeys::load_or_create(dir.path()),
            Err(KeyError::TooOpen { .. })
        ));
    }
}
