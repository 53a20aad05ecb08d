//! Meeting data keys: one random AES-256 key per meeting, wrapped by a master key and
//! kept in a key directory **outside** the data directory (`storage.key_dir`).
//!
//! Everything of a meeting's content that storage writes is sealed with its meeting's
//! key (see `store::cipher`); erasing a meeting destroys that key. Because the keys do
//! not live in the data directory, a copy or backup of the data directory taken before
//! an erasure cannot bring the meeting back: its rows are ciphertext whose key is gone.
//! The key directory also keeps the erasure log (`erased.log`, one line per erased
//! meeting, ids and who/why/when, never content), which the appliance replays at
//! every start: rows of an erased meeting found in restored data are purged, and
//! ingest refuses the meeting's envelopes.
//!
//! Layout of the key directory (0700):
//! - `keystore.json`: the key store's random id (the database records it, so a data
//!   directory is never opened with another appliance's keys) and the id of the
//!   master key its files are wrapped with;
//! - `meetings/<meeting id>.key`: `RSK1 ‖ master key id (8) ‖ nonce (12) ‖
//!   AES-256-GCM(data key)`, bound to the meeting id as associated data;
//! - `meetings/<meeting id>.rekey`: a meeting's next key while its content is being
//!   sealed again without some of its segments (see [`Keyring::stage_rekey`]); the
//!   next start keeps whichever key storage's rows open with;
//! - `erased.log`: the erasure tombstones, appended and fsynced;
//! - `erased-segments.log`: erasures of some of a meeting's segments (a participant
//!   withdrew, a data subject asked), the same way;
//! - `master.key` unless `storage.master_key_file` puts it elsewhere (it should: a
//!   systemd credential, another disk).
//!
//! Rotating the master key re-wraps each key file; content is not re-encrypted. The
//! master key is a [`KeyWrap`]: the seam where an external KMS or HSM would wrap and
//! unwrap data keys instead of a key file.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use zeroize::Zeroizing;

const KEY_FILE_MAGIC: &[u8; 4] = b"RSK1";
const KEY_FILE_LEN: usize = 4 + 8 + 12 + 32 + 16;
const KEYSTORE_FILE: &str = "keystore.json";
const ERASED_LOG: &str = "erased.log";
const SEGMENTS_LOG: &str = "erased-segments.log";
const MEETINGS_DIR: &str = "meetings";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the master key {path} is missing, but the key directory {dir} was created with one: put it back (from its escrow copy)")]
    MasterMissing { path: PathBuf, dir: PathBuf },
    #[error("the master key {path} (id {found}) is not the one the key directory's keys are wrapped with ({expected}): put the right one back")]
    WrongMaster {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error("meeting id {0:?} cannot name a key file")]
    BadId(String),
    #[error("meeting {0} was erased: it gets no key again")]
    Erased(String),
    #[error("storage.key_dir {key_dir} is inside the data directory {data_dir}: keys must live apart from what backups of the data directory hold")]
    InsideDataDir { key_dir: PathBuf, data_dir: PathBuf },
}

type Result<T> = std::result::Result<T, KeyringError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyringError + '_ {
    move |source| KeyringError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What wraps and unwraps data keys: the master key file, or (the seam) an external
/// key manager.
pub trait KeyWrap: Send + Sync {
    /// A short stable id of the wrapping key (written into each key file).
    fn id(&self) -> [u8; 8];
    /// `nonce ‖ ciphertext` of `key`, bound to `aad`.
    fn wrap(&self, key: &[u8; 32], aad: &[u8]) -> Vec<u8>;
    /// The key, if `wrapped` was made by [`Self::wrap`] with the same `aad`.
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Option<Zeroizing<[u8; 32]>>;
}

/// A master key kept in a file (32 random bytes, 0600).
pub struct MasterKey {
    id: [u8; 8],
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn from_bytes(b: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"roomscribe/master-key-id/v1\0")
            .chain_update(b)
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self {
            id,
            cipher: Aes256Gcm::new(b.into()),
        }
    }

    fn generate(path: &Path) -> Result<Self> {
        Ok(Self::from_bytes(&*crate::keys::new_secret32(path)?))
    }

    fn load(path: &Path) -> Result<Self> {
        Ok(Self::from_bytes(&*crate::keys::read_secret32(path)?))
    }
}

impl KeyWrap for MasterKey {
    fn id(&self) -> [u8; 8] {
        self.id
    }
    fn wrap(&self, key: &[u8; 32], aad: &[u8]) -> Vec<u8> {
        seal(&self.cipher, aad, key)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let plain = open(&self.cipher, aad, wrapped)?;
        let mut k = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return None;
        }
        k.copy_from_slice(&plain);
        Some(k)
    }
}

/// AES-256-GCM with a random nonce: `nonce (12) ‖ ciphertext ‖ tag`.
pub fn seal(cipher: &Aes256Gcm, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    // Encryption fails only for messages beyond GCM's 64 GiB limit; a row never is.
    match cipher.encrypt((&nonce).into(), Payload { msg: plain, aad }) {
        Ok(ct) => out.extend_from_slice(&ct),
        Err(_) => unreachable!("AES-GCM encryption of a bounded message cannot fail"),
    }
    out
}

/// The plaintext of [`seal`]'s output, if it is authentic for `aad`.
pub fn open(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, ct) = sealed.split_at_checked(12)?;
    cipher
        .decrypt(nonce.into(), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

fn dek_aad(meeting_id: &str) -> Vec<u8> {
    [b"roomscribe/dek/v1\0".as_slice(), meeting_id.as_bytes()].concat()
}

/// A key file's bytes.
fn key_file(wrap: &dyn KeyWrap, meeting_id: &str, key: &[u8; 32]) -> Vec<u8> {
    let mut out = KEY_FILE_MAGIC.to_vec();
    out.extend_from_slice(&wrap.id());
    out.extend_from_slice(&wrap.wrap(key, &dek_aad(meeting_id)));
    out
}

/// The master key id a key file is wrapped with, and the wrapped part.
fn parse_key_file(bytes: &[u8]) -> Option<([u8; 8], &[u8])> {
    if bytes.len() != KEY_FILE_LEN || &bytes[..4] != KEY_FILE_MAGIC {
        return None;
    }
    let id: [u8; 8] = bytes[4..12].try_into().ok()?;
    Some((id, &bytes[12..]))
}

/// One erasure, as the log keeps it: ids, who, when and why, never content.
pub type Tombstone = crate::store::records::ErasureRecord;
pub type SegmentTombstone = crate::store::records::SegmentErasureRecord;

/// Which of a meeting's key files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// `<id>.key`: the key its stored rows open with.
    Current,
    /// `<id>.rekey`: the key its rows are being sealed again with.
    Staged,
}

impl Slot {
    fn suffix(self) -> &'static str {
        match self {
            Slot::Current => "key",
            Slot::Staged => "rekey",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeystoreFile {
    id: String,
    master_key_id: String,
}

/// Where the key files are: a directory, or (tests) nowhere.
enum Place {
    Dir { dir: PathBuf, master_file: PathBuf },
    Memory(Mutex<HashMap<String, Vec<u8>>>),
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    pub old_master_key_id: String,
    pub new_master_key_id: String,
    pub rewrapped: usize,
}

pub struct Keyring {
    place: Place,
    id: String,
    /// Held for writing while a rotation runs, so no key is wrapped meanwhile.
    master: RwLock<Arc<dyn KeyWrap>>,
    cache: Mutex<HashMap<String, Arc<Aes256Gcm>>>,
    erased: Mutex<BTreeMap<String, Tombstone>>,
    /// Next keys of meetings being sealed again (see [`Keyring::stage_rekey`]).
    staged: Mutex<HashMap<String, Zeroizing<[u8; 32]>>>,
    /// Old keys of meetings switched to their next key whose commit has not finished:
    /// readers of the state before the commit still open rows with them.
    retiring: Mutex<HashMap<String, Arc<Aes256Gcm>>>,
    segment_erasures: Mutex<Vec<SegmentTombstone>>,
    /// Held while key files are removed or replaced, and while a backup captures the
    /// key directory at the moment its database snapshot opens ([`Keyring::capture`]).
    changing: Mutex<()>,
}

impl Keyring {
    /// Opens the key directory `dir` (creating it, the key store and the master key
    /// the first time), finishing a rotation that was interrupted.
    pub fn open(dir: &Path, master_file: &Path) -> Result<Self> {
        crate::keys::private_dir(&dir.join(MEETINGS_DIR))?;
        crate::keys::private_dir(dir)?;
        let store_path = dir.join(KEYSTORE_FILE);
        let next_path = next_of(master_file);
        let (id, master) = if store_path.exists() {
            let ks: KeystoreFile = serde_json::from_slice(
                &fs::read(&store_path).map_err(io(&store_path))?,
            )
            .map_err(|e| KeyringError::Damaged {
                path: store_path.clone(),
                what: e.to_string(),
            })?;
            if !master_file.exists() {
                return Err(KeyringError::MasterMissing {
                    path: master_file.to_owned(),
                    dir: dir.to_owned(),
                });
            }
            let current = MasterKey::load(master_file)?;
            let next = next_path
                .exists()
                .then(|| MasterKey::load(&next_path))
                .transpose()?;
            let wanted = ks.master_key_id.as_str();
            let matches = |k: &MasterKey| hex::encode(k.id) == wanted;
            if !matches(&current) && !next.as_ref().is_some_and(matches) {
                return Err(KeyringError::WrongMaster {
                    path: master_file.to_owned(),
                    found: hex::encode(current.id),
                    expected: ks.master_key_id,
                });
            }
            (ks.id, (current, next))
        } else {
            let master = if master_file.exists() {
                MasterKey::load(master_file)?
            } else {
                MasterKey::generate(master_file)?
            };
            let mut id = [0u8; 16];
            OsRng.fill_bytes(&mut id);
            let ks = KeystoreFile {
                id: hex::encode(id),
                master_key_id: hex::encode(master.id),
            };
            write_json(&store_path, &ks)?;
            (ks.id, (master, None))
        };
        let erased = read_log(&dir.join(ERASED_LOG))?;
        let segment_erasures = read_lines(&dir.join(SEGMENTS_LOG))?;
        let ring = Self {
            place: Place::Dir {
                dir: dir.to_owned(),
                master_file: master_file.to_owned(),
            },
            id,
            master: RwLock::new(Arc::new(master.0)),
            cache: Mutex::new(HashMap::new()),
            erased: Mutex::new(erased),
            staged: Mutex::new(HashMap::new()),
            retiring: Mutex::new(HashMap::new()),
            segment_erasures: Mutex::new(segment_erasures),
            changing: Mutex::new(()),
        };
        if let Some(next) = master.1 {
            tracing::warn!("finishing a master key rotation that was interrupted");
            ring.rotate_to(next)?;
        }
        Ok(ring)
    }

    /// Keys in memory only (tests of storage and the domain).
    pub fn in_memory() -> Self {
        let mut b = [0u8; 32];
        OsRng.fill_bytes(&mut b);
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        Self {
            place: Place::Memory(Mutex::new(HashMap::new())),
            id: hex::encode(id),
            master: RwLock::new(Arc::new(MasterKey::from_bytes(&b))),
            cache: Mutex::new(HashMap::new()),
            erased: Mutex::new(BTreeMap::new()),
            staged: Mutex::new(HashMap::new()),
            retiring: Mutex::new(HashMap::new()),
            segment_erasures: Mutex::new(vec![]),
            changing: Mutex::new(()),
        }
    }

    /// The key store's id (the database records it).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn master_key_id(&self) -> String {
        hex::encode(read(&self.master).id())
    }

    /// The meeting's key, if it has one.
    pub fn key(&self, meeting_id: &str) -> Result<Option<Arc<Aes256Gcm>>> {
        if let Some(k) = lock(&self.cache).get(meeting_id) {
            return Ok(Some(k.clone()));
        }
        let Some(key) = self.unwrap_file(meeting_id, Slot::Current)? else {
            return Ok(None);
        };
        let cipher = Arc::new(Aes256Gcm::new((&*key).into()));
        lock(&self.cache).insert(meeting_id.to_owned(), cipher.clone());
        Ok(Some(cipher))
    }

    /// The data key in one of the meeting's key files, unwrapped.
    fn unwrap_file(&self, meeting_id: &str, slot: Slot) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let master = read(&self.master).clone();
        let Some(bytes) = self.read_file(meeting_id, slot)? else {
            return Ok(None);
        };
        let bad = |what: &str| KeyringError::Damaged {
            path: self.file_name(meeting_id, slot),
            what: what.to_owned(),
        };
        let (id, wrapped) = parse_key_file(&bytes).ok_or_else(|| bad("not a key file"))?;
        if id != master.id() {
            return Err(bad(&format!(
                "wrapped with master key {}, not the current one ({})",
                hex::encode(id),
                hex::encode(master.id())
            )));
        }
        let key = master
            .unwrap(wrapped, &dek_aad(meeting_id))
            .ok_or_else(|| {
                bad("does not open with the master key (damaged, or moved from another meeting)")
            })?;
        Ok(Some(key))
    }

    /// Makes the meeting's next key and writes it durably beside its current one, for
    /// sealing its content again without some segments. Storage then writes every row
    /// of the meeting with it, in one transaction; after the commit
    /// [`commit_rekey`](Keyring::commit_rekey) makes it the meeting's key (the old one
    /// is gone), after a failure [`abort_rekey`](Keyring::abort_rekey) drops it. A
    /// crash in between leaves both files: the next start keeps whichever one the
    /// stored rows open with ([`Keyring::staged_rekeys`]).
    pub fn stage_rekey(&self, meeting_id: &str) -> Result<Arc<Aes256Gcm>> {
        let master = read(&self.master).clone();
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *key);
        self.write_file(
            meeting_id,
            Slot::Staged,
            &key_file(&*master, meeting_id, &key),
        )?;
        let cipher = Arc::new(Aes256Gcm::new((&*key).into()));
        lock(&self.staged).insert(meeting_id.to_owned(), key);
        Ok(cipher)
    }

    /// Called last in the transaction that sealed the meeting again: from now on its
    /// rows are sealed and opened with the staged key, while readers of the state
    /// before the commit may still open them with the old one until
    /// [`commit_rekey`](Keyring::commit_rekey). (A writer after the commit must not
    /// seal with the old key, which is about to go.)
    pub fn switch_rekey(&self, meeting_id: &str) -> Result<()> {
        let Some(key) = lock(&self.staged)
            .get(meeting_id)
            .map(|k| Aes256Gcm::new((&**k).into()))
        else {
            return Ok(());
        };
        if let Some(old) = self.key(meeting_id)? {
            lock(&self.retiring).insert(meeting_id.to_owned(), old);
        }
        lock(&self.cache).insert(meeting_id.to_owned(), Arc::new(key));
        Ok(())
    }

    /// The old key of a meeting being switched to its next one, while that lasts.
    pub fn retiring(&self, meeting_id: &str) -> Option<Arc<Aes256Gcm>> {
        lock(&self.retiring).get(meeting_id).cloned()
    }

    /// The staged key becomes the meeting's key; the old one is destroyed.
    pub fn commit_rekey(&self, meeting_id: &str) -> Result<()> {
        let _changing = lock(&self.changing);
        let Some(key) = lock(&self.staged).remove(meeting_id) else {
            return Ok(());
        };
        let master = read(&self.master).clone();
        self.write_file(
            meeting_id,
            Slot::Current,
            &key_file(&*master, meeting_id, &key),
        )?;
        lock(&self.cache).insert(
            meeting_id.to_owned(),
            Arc::new(Aes256Gcm::new((&*key).into())),
        );
        lock(&self.retiring).remove(meeting_id);
        self.remove_file(meeting_id, Slot::Staged)
    }

    /// Drops a staged key (storage kept the rows under the current one).
    pub fn abort_rekey(&self, meeting_id: &str) -> Result<()> {
        lock(&self.staged).remove(meeting_id);
        match lock(&self.retiring).remove(meeting_id) {
            Some(old) => {
                lock(&self.cache).insert(meeting_id.to_owned(), old);
            }
            None => {
                lock(&self.cache).remove(meeting_id);
            }
        }
        self.remove_file(meeting_id, Slot::Staged)
    }

    /// Meetings whose re-keying a crash cut short, with their staged keys (loaded, so
    /// that `commit_rekey` or `abort_rekey` can finish it).
    pub fn staged_rekeys(&self) -> Result<Vec<(String, Arc<Aes256Gcm>)>> {
        let mut out = vec![];
        for id in self.meetings_in(Slot::Staged)? {
            if let Some(key) = self.unwrap_file(&id, Slot::Staged)? {
                out.push((id.clone(), Arc::new(Aes256Gcm::new((&*key).into()))));
                lock(&self.staged).insert(id, key);
            }
        }
        Ok(out)
    }

    /// Records an erasure of some of a meeting's segments, durably, before storage
    /// forgets them.
    pub fn record_segment_erasure(&self, t: &SegmentTombstone) -> Result<()> {
        if let Place::Dir { dir, .. } = &self.place {
            append_line(&dir.join(SEGMENTS_LOG), t)?;
        }
        lock(&self.segment_erasures).push(t.clone());
        Ok(())
    }

    /// Every erasure of some segments on record, oldest first.
    pub fn segment_erasures(&self) -> Vec<SegmentTombstone> {
        lock(&self.segment_erasures).clone()
    }

    /// The meeting's key, created (and durably written) if it has none yet. An erased
    /// meeting gets no new key.
    pub fn key_or_create(&self, meeting_id: &str) -> Result<Arc<Aes256Gcm>> {
        if let Some(k) = self.key(meeting_id)? {
            return Ok(k);
        }
        if self.is_erased(meeting_id) {
            return Err(KeyringError::Erased(meeting_id.to_owned()));
        }
        let master = read(&self.master).clone();
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *key);
        let file = key_file(&*master, meeting_id, &key);
        self.write_file(meeting_id, Slot::Current, &file)?;
        let cipher = Arc::new(Aes256Gcm::new((&*key).into()));
        lock(&self.cache).insert(meeting_id.to_owned(), cipher.clone());
        Ok(cipher)
    }

    pub fn is_erased(&self, meeting_id: &str) -> bool {
        lock(&self.erased).contains_key(meeting_id)
    }

    /// Every erasure on record, oldest first by meeting id.
    pub fn tombstones(&self) -> Vec<Tombstone> {
        lock(&self.erased).values().cloned().collect()
    }

    /// Records an erasure durably (before storage forgets the meeting).
    pub fn record_erasure(&self, t: &Tombstone) -> Result<()> {
        if let Place::Dir { dir, .. } = &self.place {
            append_line(&dir.join(ERASED_LOG), t)?;
        }
        lock(&self.erased).insert(t.meeting_id.clone(), t.clone());
        Ok(())
    }

    /// Destroys the meeting's key: whatever of it remains anywhere is unreadable.
    /// (Unlinking leaves the old blocks on the disk until reused: a volume encrypted
    /// underneath, LUKS, keeps them from a disk thief.)
    pub fn destroy(&self, meeting_id: &str) -> Result<()> {
        let _changing = lock(&self.changing);
        lock(&self.cache).remove(meeting_id);
        lock(&self.staged).remove(meeting_id);
        self.remove_file(meeting_id, Slot::Staged)?;
        self.remove_file(meeting_id, Slot::Current)
    }

    fn remove_file(&self, meeting_id: &str, slot: Slot) -> Result<()> {
        check_id(meeting_id)?;
        match &self.place {
            Place::Memory(files) => {
                lock(files).remove(&memory_name(meeting_id, slot));
            }
            Place::Dir { dir, .. } => {
                let path = self.file_name(meeting_id, slot);
                match fs::remove_file(&path) {
                    Ok(()) => {
                        let meetings = dir.join(MEETINGS_DIR);
                        roomscribe_config::fsutil::sync_dir(&meetings).map_err(io(&meetings))?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
            }
        }
        Ok(())
    }

    /// The meetings that have a key file.
    pub fn meetings_with_keys(&self) -> Result<BTreeSet<String>> {
        self.meetings_in(Slot::Current)
    }

    fn meetings_in(&self, slot: Slot) -> Result<BTreeSet<String>> {
        let suffix = format!(".{}", slot.suffix());
        match &self.place {
            Place::Memory(files) => Ok(lock(files)
                .keys()
                .filter_map(|n| n.strip_suffix(&suffix).map(str::to_owned))
                .collect()),
            Place::Dir { dir, .. } => {
                let meetings = dir.join(MEETINGS_DIR);
                let mut out = BTreeSet::new();
                for e in fs::read_dir(&meetings).map_err(io(&meetings))? {
                    let e = e.map_err(io(&meetings))?;
                    if let Some(id) = e.file_name().to_str().and_then(|n| n.strip_suffix(&suffix)) {
                        out.insert(id.to_owned());
                    }
                }
                Ok(out)
            }
        }
    }

    /// Wraps every data key with a new master key, then replaces the master key file
    /// (content is not touched). Safe to interrupt: the next open finishes it.
    pub fn rotate(&self) -> Result<Rotation> {
        let Place::Dir { master_file, .. } = &self.place else {
            let mut b = [0u8; 32];
            OsRng.fill_bytes(&mut b);
            return self.rotate_to(MasterKey::from_bytes(&b));
        };
        let next = MasterKey::generate(&next_of(master_file))?;
        self.rotate_to(next)
    }

    fn rotate_to(&self, next: MasterKey) -> Result<Rotation> {
        let mut master = self.master.write().unwrap_or_else(|p| p.into_inner());
        let old = master.clone();
        let mut rewrapped = 0;
        for slot in [Slot::Current, Slot::Staged] {
            for meeting_id in self.meetings_in(slot)? {
                let Some(bytes) = self.read_file(&meeting_id, slot)? else {
                    continue;
                };
                let Some((id, wrapped)) = parse_key_file(&bytes) else {
                    return Err(KeyringError::Damaged {
                        path: self.file_name(&meeting_id, slot),
                        what: "not a key file".into(),
                    });
                };
                if id == next.id() {
                    continue; // done before an interruption
                }
                let key = old.unwrap(wrapped, &dek_aad(&meeting_id)).ok_or_else(|| {
                    KeyringError::Damaged {
                        path: self.file_name(&meeting_id, slot),
                        what: "does not open with the master key".into(),
                    }
                })?;
                self.write_file(&meeting_id, slot, &key_file(&next, &meeting_id, &key))?;
                if slot == Slot::Current {
                    rewrapped += 1;
                }
            }
        }
        let rotation = Rotation {
            old_master_key_id: hex::encode(old.id()),
            new_master_key_id: hex::encode(next.id()),
            rewrapped,
        };
        if let Place::Dir { dir, master_file } = &self.place {
            write_json(
                &dir.join(KEYSTORE_FILE),
                &KeystoreFile {
                    id: self.id.clone(),
                    master_key_id: rotation.new_master_key_id.clone(),
                },
            )?;
            let next_path = next_of(master_file);
            fs::rename(&next_path, master_file).map_err(io(master_file))?;
            if let Some(parent) = master_file.parent() {
                roomscribe_config::fsutil::sync_dir(parent).map_err(io(parent))?;
            }
        }
        *master = Arc::new(next);
        Ok(rotation)
    }

    fn file_name(&self, meeting_id: &str, slot: Slot) -> PathBuf {
        let name = memory_name(meeting_id, slot);
        match &self.place {
            Place::Dir { dir, .. } => dir.join(MEETINGS_DIR).join(name),
            Place::Memory(_) => PathBuf::from(format!(":memory:/{name}")),
        }
    }

    fn read_file(&self, meeting_id: &str, slot: Slot) -> Result<Option<Vec<u8>>> {
        check_id(meeting_id)?;
        match &self.place {
            Place::Memory(files) => Ok(lock(files).get(&memory_name(meeting_id, slot)).cloned()),
            Place::Dir { .. } => {
                let path = self.file_name(meeting_id, slot);
                match fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&path)(e)),
                }
            }
        }
    }

    fn write_file(&self, meeting_id: &str, slot: Slot, bytes: &[u8]) -> Result<()> {
        check_id(meeting_id)?;
        match &self.place {
            Place::Memory(files) => {
                lock(files).insert(memory_name(meeting_id, slot), bytes.to_vec());
                Ok(())
            }
            Place::Dir { .. } => Ok(crate::keys::write_secret(
                &self.file_name(meeting_id, slot),
                bytes,
            )?),
        }
    }
}

/// Refuses a key directory inside the data directory (both must exist).
pub fn check_apart(key_dir: &Path, data_dir: &Path) -> Result<()> {
    let (k, d) = (
        fs::canonicalize(key_dir).map_err(io(key_dir))?,
        fs::canonicalize(data_dir).map_err(io(data_dir))?,
    );
    if k.starts_with(&d) {
        return Err(KeyringError::InsideDataDir {
            key_dir: key_dir.to_owned(),
            data_dir: data_dir.to_owned(),
        });
    }
    Ok(())
}

fn check_id(meeting_id: &str) -> Result<()> {
    let ok = !meeting_id.is_empty()
        && meeting_id.len() <= 128
        && !meeting_id.starts_with('.')
        && meeting_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(KeyringError::BadId(meeting_id.to_owned()))
    }
}

/// A key file's name: `<meeting id>.key` or `<meeting id>.rekey`.
fn memory_name(meeting_id: &str, slot: Slot) -> String {
    format!("{meeting_id}.{}", slot.suffix())
}

/// Appends one JSON line to a log and makes it durable.
fn append_line<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(&line).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn next_of(master_file: &Path) -> PathBuf {
    let mut s = master_file.as_os_str().to_owned();
    s.push(".next");
    PathBuf::from(s)
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).unwrap_or_default();
    Ok(crate::keys::write_secret(path, &bytes)?)
}

/// The erasure log, by meeting.
fn read_log(path: &Path) -> Result<BTreeMap<String, Tombstone>> {
    Ok(read_lines::<Tombstone>(path)?
        .into_iter()
        .map(|t| (t.meeting_id.clone(), t))
        .collect())
}

/// A log of JSON lines; a last line cut short by a crash is removed, anything else
/// unreadable is an error naming the line.
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(path)(e)),
    };
    let mut out = vec![];
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    if whole < text.len() {
        // A crash cut the last append short: that erasure did not happen (storage
        // was untouched until the line was durable). Cut it, so the next append
        // starts a line of its own.
        tracing::warn!(path = %path.display(), "the erasure log ends in a line cut short; it is removed");
        let f = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(whole as u64).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
    }
    for (n, line) in text[..whole].lines().enumerate() {
        match serde_json::from_str::<T>(line) {
            Ok(t) => out.push(t),
            Err(e) => {
                return Err(KeyringError::Damaged {
                    path: path.to_owned(),
                    what: format!("line {}: {e}", n + 1),
                })
            }
        }
    }
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

mod capture;
pub use capture::{master_key_id, KeyFiles};

#[cfg(test)]
mod tests;
