//! The key directory as files, captured for a backup and written back by a restore.
//!
//! A backup needs the meeting keys that open the rows of its database snapshot. The
//! capture runs under the lock that key removals and replacements take, with the
//! snapshot opened inside it, so no key the snapshot's rows need can vanish between
//! the two (an erasure or re-keying that commits meanwhile keeps its old key file
//! until the capture is done; a re-keying caught half way leaves both files, and the
//! next start keeps the one the rows open with). The master key is never part of it.

use super::*;

/// Files of a key directory, by path relative to it (`keystore.json`,
/// `meetings/<id>.key`, `meetings/<id>.rekey`, `erased.log`, `erased-segments.log`):
/// wrapped keys and logs, nothing in the clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFiles {
    pub keystore_id: String,
    pub master_key_id: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Keyring {
    /// Runs `open` (which opens the database snapshot) and captures the key directory
    /// at that moment, with no key file removed or replaced in between.
    pub fn capture<T, E: From<KeyringError>>(
        &self,
        open: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, KeyFiles), E> {
        let master = read(&self.master);
        let _changing = lock(&self.changing);
        let snapshot = open()?;
        let mut files = BTreeMap::new();
        match &self.place {
            Place::Memory(map) => {
                for (name, bytes) in lock(map).iter() {
                    files.insert(format!("{MEETINGS_DIR}/{name}"), bytes.clone());
                }
                files.insert(
                    KEYSTORE_FILE.to_owned(),
                    serde_json::to_vec_pretty(&KeystoreFile {
                        id: self.id.clone(),
                        master_key_id: hex::encode(master.id()),
                    })
                    .unwrap_or_default(),
                );
                let lines = |v: Vec<serde_json::Value>| {
                    v.iter()
                        .flat_map(|t| {
                            let mut l = serde_json::to_vec(t).unwrap_or_default();
                            l.push(b'\n');
                            l
                        })
                        .collect::<Vec<u8>>()
                };
                let erased = self
                    .tombstones()
                    .iter()
                    .map(|t| serde_json::json!(t))
                    .collect();
                let segs = self
                    .segment_erasures()
                    .iter()
                    .map(|t| serde_json::json!(t))
                    .collect();
                files.insert(ERASED_LOG.to_owned(), lines(erased));
                files.insert(SEGMENTS_LOG.to_owned(), lines(segs));
            }
            Place::Dir { dir, .. } => {
                for name in [KEYSTORE_FILE, ERASED_LOG, SEGMENTS_LOG] {
                    let path = dir.join(name);
                    match fs::read(&path) {
                        Ok(b) => {
                            files.insert(name.to_owned(), b);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&path)(e).into()),
                    }
                }
                let meetings = dir.join(MEETINGS_DIR);
                for e in fs::read_dir(&meetings).map_err(io(&meetings))? {
                    let e = e.map_err(io(&meetings))?;
                    let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    if !(name.ends_with(".key") || name.ends_with(".rekey")) {
                        continue;
                    }
                    let path = e.path();
                    match fs::read(&path) {
                        Ok(b) => {
                            files.insert(format!("{MEETINGS_DIR}/{name}"), b);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&path)(e).into()),
                    }
                }
            }
        }
        Ok((
            snapshot,
            KeyFiles {
                keystore_id: self.id.clone(),
                master_key_id: hex::encode(master.id()),
                files,
            },
        ))
    }
}

impl KeyFiles {
    /// Writes the files into `dir`, a new or empty key directory (0700, files 0600,
    /// each durable). Refuses paths outside the layout.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        crate::keys::private_dir(&dir.join(MEETINGS_DIR))?;
        crate::keys::private_dir(dir)?;
        for (name, bytes) in &self.files {
            let ok = match name.split_once('/') {
                None => [KEYSTORE_FILE, ERASED_LOG, SEGMENTS_LOG].contains(&name.as_str()),
                Some((MEETINGS_DIR, file)) => {
                    let id = file
                        .strip_suffix(".key")
                        .or_else(|| file.strip_suffix(".rekey"));
                    id.is_some_and(|id| check_id(id).is_ok())
                }
                Some(_) => false,
            };
            if !ok {
                return Err(KeyringError::Damaged {
                    path: dir.join(name),
                    what: "not a file a key directory holds".into(),
                });
            }
            crate::keys::write_secret(&dir.join(name), bytes)?;
        }
        roomscribe_config::fsutil::sync_dir(dir).map_err(io(dir))
    }
}

/// The id of the master key in `path` (as `keystore.json` names it), to check that a
/// restore has the right one before writing anything.
pub fn master_key_id(path: &Path) -> Result<String> {
    Ok(hex::encode(MasterKey::load(path)?.id))
}
