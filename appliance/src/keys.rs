//! The appliance's own secrets, created on first start under `<data_dir>/keys/`:
//! the X25519 envelope key, the Ed25519 signing key (commands to agents), the Ed25519
//! audit key (audit-log checkpoints; its public half is what auditors verify against),
//! the QUIC ingest certificate (which agents pin) and the self-signed HTTPS certificate
//! (unless the operator configures one).
//!
//! Secret files are created 0600 in a 0700 directory (atomically, durably, never
//! through a planted symlink) and refused when group- or world-readable. A key file is
//! created only the first time: the database records which ones exist
//! ([`ApplianceKeys::load`]'s `known`), and one that goes missing later is an error
//! naming the file, never silently replaced (agents pin these keys; the audit log is
//! signed with one). The audit signing key may live outside the data directory
//! (`audit.key_file`), so that a copy of the data directory cannot forge checkpoints.
//! Key bytes are zeroized when dropped.

use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use roomscribe_protocol::RecipientKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::PermissionsExt;
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
    #[error("{path} is missing, but this appliance created it before: restore it from a backup (a new key would break every agent's pinned key or the audit log's signatures)")]
    Missing { path: PathBuf },
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

/// Writes a secret file with mode 0600, atomically and durably.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    roomscribe_config::fsutil::write_atomic(path, bytes, 0o600).map_err(io(path))
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

/// A 32-byte secret key file ([`read_secret`], and exactly 32 bytes).
pub fn read_secret32(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let b = read_secret(path)?;
    if b.len() != 32 {
        return Err(KeyError::BadLength {
            path: path.to_owned(),
            expected: 32,
        });
    }
    Ok(arr32(&b))
}

/// A new random 32-byte secret, written to `path` (0600) before it is returned.
pub fn new_secret32(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut b = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *b);
    write_secret(path, &*b)?;
    Ok(b)
}

/// Which key files an appliance created: created now, or known to exist.
/// (Recorded by name within the data directory, so a restored copy elsewhere still
/// knows its files.)
pub struct KeyFiles<'a> {
    base: &'a Path,
    known: &'a std::collections::BTreeSet<String>,
    pub now: std::collections::BTreeSet<String>,
}

impl KeyFiles<'_> {
    fn name(&self, path: &Path) -> String {
        path.strip_prefix(self.base)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// `path` may be created only if it was never created before.
    fn may_create(&mut self, path: &Path) -> Result<(), KeyError> {
        let name = self.name(path);
        if self.known.contains(&name) {
            return Err(KeyError::Missing {
                path: path.to_owned(),
            });
        }
        self.now.insert(name);
        Ok(())
    }

    fn exists(&mut self, path: &Path) {
        let name = self.name(path);
        self.now.insert(name);
    }
}

fn load_or_create_raw(
    path: &Path,
    len: usize,
    files: &mut KeyFiles<'_>,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if path.exists() {
        files.exists(path);
    } else {
        files.may_create(path)?;
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
    pub envelope: std::sync::Arc<RecipientKey>,
    pub signing: std::sync::Arc<SigningKey>,
    pub audit: std::sync::Arc<SigningKey>,
    pub secrets: std::sync::Arc<SecretBox>,
    pub ingest: TlsIdentity,
    pub ingest_cert_sha256: [u8; 32],
}

impl ApplianceKeys {
    /// Loads the keys under `<data_dir>/keys/` (and the audit key from
    /// `audit_key_file` when set), creating those never created before; `known` is
    /// what the database says was created. Returns the keys and the key files that
    /// exist now (to record).
    pub fn load(
        data_dir: &Path,
        audit_key_file: Option<&Path>,
        known: &std::collections::BTreeSet<String>,
    ) -> Result<(Self, std::collections::BTreeSet<String>), KeyError> {
        let dir = data_dir.join("keys");
        private_dir(&dir)?;
        let mut files = KeyFiles {
            base: data_dir,
            known,
            now: Default::default(),
        };
        let mut raw32 = |path: &Path| load_or_create_raw(path, 32, &mut files).map(|b| arr32(&b));
        let envelope = RecipientKey::from_secret_bytes(*raw32(&dir.join("envelope.x25519"))?);
        let signing = SigningKey::from_bytes(&*raw32(&dir.join("signing.ed25519"))?);
        let audit_path =
            audit_key_file.map_or_else(|| dir.join("audit.ed25519"), Path::to_path_buf);
        let audit = SigningKey::from_bytes(&*raw32(&audit_path)?);
        let secrets = SecretBox(raw32(&dir.join("secrets.aes256"))?);
        let ingest = self_signed_known(
            &dir.join("ingest.crt.der"),
            &dir.join("ingest.key.der"),
            &["roomscribe-ingest".into()],
            Some(&mut files),
        )?;
        let ingest_cert_sha256 = Sha256::digest(&ingest.chain[0]).into();
        Ok((
            Self {
                envelope: std::sync::Arc::new(envelope),
                signing: std::sync::Arc::new(signing),
                audit: std::sync::Arc::new(audit),
                secrets: std::sync::Arc::new(secrets),
                ingest,
                ingest_cert_sha256,
            },
            files.now,
        ))
    }

    /// Loads the keys, creating any that are missing (tests and a new data directory).
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        Self::load(data_dir, None, &Default::default()).map(|(k, _)| k)
    }
}

/// Loads a self-signed certificate from DER files, creating it on first use.
/// Its validity is long (rcgen's default ends in 4096): agents pin its hash.
pub fn self_signed(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
) -> Result<TlsIdentity, KeyError> {
    self_signed_known(cert_path, key_path, names, None)
}

fn self_signed_known(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
    files: Option<&mut KeyFiles<'_>>,
) -> Result<TlsIdentity, KeyError> {
    let present = cert_path.exists() && key_path.exists();
    if let Some(files) = files {
        if present {
            files.exists(key_path);
        } else {
            files.may_create(key_path)?;
        }
    }
    if !present {
        let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
        write_secret(key_path, &Zeroizing::new(ck.signing_key.serialize_der()))?;
        roomscribe_config::fsutil::write_atomic(cert_path, ck.cert.der(), 0o644)
            .map_err(io(cert_path))?;
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

    #[test]
    fn a_key_created_before_is_never_silently_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, known) = ApplianceKeys::load(dir.path(), None, &Default::default()).expect("first");
        assert_eq!(known.len(), 5, "{known:?}");
        let (_, again) = ApplianceKeys::load(dir.path(), None, &known).expect("second");
        assert_eq!(again, known);
        let gone = dir.path().join("keys/envelope.x25519");
        fs::remove_file(&gone).expect("rm");
        let err = ApplianceKeys::load(dir.path(), None, &known)
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("envelope.x25519 is missing"),
            "{err}"
        );
        assert!(!gone.exists(), "and not recreated");
        // An audit key outside the data directory.
        let outside = tempfile::tempdir().expect("tempdir");
        let audit = outside.path().join("audit.key");
        let (k, _) = ApplianceKeys::load(outside.path(), Some(&audit), &Default::default())
            .expect("created there");
        assert!(audit.exists());
        let (k2, _) =
            ApplianceKeys::load(outside.path(), Some(&audit), &Default::default()).expect("again");
        assert_eq!(k.audit.verifying_key(), k2.audit.verifying_key());
    }
}
