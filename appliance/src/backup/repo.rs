//! A repository on a target: create a set from a snapshot, list, verify, restore.

use super::key::BackupKey;
use super::manifest::{
    hash, judge, BlobRef, Chain, KeyState, Manifest, Problem, Seen, SetKind, SetRef, SetStats,
    StreamEntry,
};
use super::object::{self, data_name, keys_name, set_name, Kind};
use super::{BackupError, Target};
use crate::keyring::KeyFiles;
use crate::store::{Snapshot, StoreError};
use base64::Engine;
use fastcdc::v2020::{Normalization, StreamCDC};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Chunk sizes (restic's): streams below the minimum are one blob.
const MIN_CHUNK: usize = 512 << 10;
const AVG_CHUNK: usize = 1 << 20;
const MAX_CHUNK: usize = 8 << 20;
/// The stream of the appliance's own key files (`<data_dir>/keys`, `tls`).
pub const FILES: &str = "files";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A value and the SHA-256 (hex) of its JSON.
type Hashed<T> = (T, String);

pub struct Repository {
    target: Arc<dyn Target>,
    key: Arc<BackupKey>,
    repo_id: String,
}

/// What the caller knows about the set being made.
pub struct CreateInfo {
    pub now_ms: i64,
    pub schema_version: u64,
    pub appliance_version: String,
}

/// A set as `list` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SetInfo {
    pub seq: u64,
    pub created_at_ms: i64,
    pub bytes: u64,
    pub new_stored_bytes: u64,
    pub blobs: u64,
    pub new_blobs: u64,
    pub duration_ms: u64,
    pub rows: u64,
}

impl From<&Manifest> for SetInfo {
    fn from(m: &Manifest) -> Self {
        Self {
            seq: m.seq,
            created_at_ms: m.created_at_ms,
            bytes: m.stats.bytes,
            new_stored_bytes: m.stats.new_stored_bytes,
            blobs: m.stats.blobs,
            new_blobs: m.stats.new_blobs,
            duration_ms: m.stats.duration_ms,
            rows: m
                .streams
                .iter()
                .filter(|s| s.name != FILES)
                .map(|s| s.rows)
                .sum(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub sets: usize,
    pub blobs: usize,
    pub bytes_read: u64,
    pub read_data: bool,
    pub head: Option<u64>,
    pub problems: Vec<Problem>,
}

/// Where a restore writes.
pub struct RestoreTo {
    pub data_dir: PathBuf,
    pub key_dir: PathBuf,
    pub master_key_file: PathBuf,
    /// Where the audit key goes when the appliance keeps it outside the data directory.
    pub audit_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub seq: u64,
    pub created_at_ms: i64,
    pub rows: u64,
    pub bytes: u64,
    pub key_files: usize,
    pub keystate_seq: u64,
    /// Problems elsewhere on the target (not in the restored set).
    pub warnings: Vec<Problem>,
}

/// What a target holds, as a look at it finds (the Backups page's target health).
#[derive(Debug)]
pub enum Holding {
    /// No backups yet: the first backup initialises it.
    Empty,
    /// Backups, but no backup key here to open them.
    NoKey,
    /// Backups made with another backup key (another appliance's, or a replaced key).
    Foreign(String),
    /// This backup key's repository: its good sets and any problem with the chain.
    Ours {
        repo_id: String,
        sets: Vec<SetInfo>,
        problems: Vec<Problem>,
    },
}

/// Looks at what `target` holds without changing it: its `config` object, then (with
/// `key`) the chain of manifests, judged against what this appliance saw there
/// before (`seen`, by repository id).
pub fn probe(
    target: Arc<dyn Target>,
    key: Option<Arc<BackupKey>>,
    seen: &dyn Fn(&str) -> Option<Seen>,
) -> Result<Holding, BackupError> {
    if target.get(object::CONFIG)?.is_none() {
        return Ok(Holding::Empty);
    }
    let Some(key) = key else {
        return Ok(Holding::NoKey);
    };
    match Repository::open(target, key) {
        Err(BackupError::Damaged(p)) => Ok(Holding::Foreign(p.what)),
        Err(e) => Err(e),
        Ok(repo) => {
            let (sets, problems) = repo.list(seen(repo.id()).as_ref())?;
            Ok(Holding::Ours {
                repo_id: repo.id().to_owned(),
                sets,
                problems,
            })
        }
    }
}

/// The key directory a key state holds (its files base64 in the manifest).
fn decode_key_files(k: &KeyState) -> Result<KeyFiles, BackupError> {
    Ok(KeyFiles {
        keystore_id: k.keystore_id.clone(),
        master_key_id: k.master_key_id.clone(),
        files: k
            .files
            .iter()
            .map(|(n, b)| {
                B64.decode(b).map(|b| (n.clone(), b)).map_err(|_| {
                    BackupError::Damaged(damaged(object::KEYS, "a key file is not base64"))
                })
            })
            .collect::<Result<_, _>>()?,
    })
}

fn damaged(object: impl Into<String>, what: impl Into<String>) -> Problem {
    Problem {
        object: object.into(),
        what: what.into(),
    }
}

impl Repository {
    /// The repository on `target`, created (its `config`) if the target is empty.
    pub fn init(
        target: Arc<dyn Target>,
        key: Arc<BackupKey>,
        now_ms: i64,
    ) -> Result<Self, BackupError> {
        if target.get(object::CONFIG)?.is_none() {
            let mut id = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
            let config = serde_json::json!({
                "format": "roomscribe-backup/1",
                "repo_id": hex::encode(id),
                "key_id": key.id(),
                "created_at_ms": now_ms,
            });
            target.put(object::CONFIG, &object::config_bytes(&key, &config))?;
        }
        Self::open(target, key)
    }

    /// The repository on `target`; refused when it has none or another key's.
    pub fn open(target: Arc<dyn Target>, key: Arc<BackupKey>) -> Result<Self, BackupError> {
        let bytes = target.get(object::CONFIG)?.ok_or_else(|| {
            BackupError::Refused(format!("{} holds no backups", target.describe()))
        })?;
        let config = object::open_config(&key, &bytes)
            .map_err(|why| BackupError::Damaged(damaged(object::CONFIG, why)))?;
        let repo_id = config
            .get("repo_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            target,
            key,
            repo_id,
        })
    }

    pub fn id(&self) -> &str {
        &self.repo_id
    }

    pub fn target(&self) -> &dyn Target {
        &*self.target
    }

    /// Every set object, read and judged on its own.
    fn read_sets(&self) -> Result<BTreeMap<u64, super::manifest::Found>, BackupError> {
        let mut found = BTreeMap::new();
        for (name, _) in self.target.list(object::SETS)? {
            let Some(seq) = object::seq_of(&name) else {
                continue;
            };
            let Some(bytes) = self.target.get(&name)? else {
                continue;
            };
            let f = object::open_signed(&self.key, Kind::Manifest, &bytes).and_then(|json| {
                let m: Manifest =
                    serde_json::from_slice(&json).map_err(|e| format!("not a manifest: {e}"))?;
                Ok((m, hash(&json)))
            });
            found.insert(seq, f);
        }
        Ok(found)
    }

    /// The sets judged as a chain (see `manifest`).
    pub fn chain(&self, seen: Option<&Seen>) -> Result<Chain, BackupError> {
        Ok(judge(&self.repo_id, &self.read_sets()?, seen))
    }

    /// The newest key state whose copies open, and what is wrong with any copy.
    fn keystate(&self) -> Result<(Option<Hashed<KeyState>>, Vec<Problem>), BackupError> {
        let mut problems = vec![];
        let mut by_seq: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (name, _) in self.target.list(object::KEYS)? {
            if let Some(seq) = object::seq_of(&name) {
                by_seq.entry(seq).or_default().push(name);
            }
        }
        let mut newest = None;
        for (seq, names) in by_seq.iter().rev() {
            let mut good = None;
            for name in names {
                let Some(bytes) = self.target.get(name)? else {
                    continue;
                };
                let opened =
                    object::open_signed(&self.key, Kind::KeyState, &bytes).and_then(|json| {
                        let k: KeyState = serde_json::from_slice(&json)
                            .map_err(|e| format!("not a key state: {e}"))?;
                        if k.seq != *seq || k.repo_id != self.repo_id {
                            return Err(format!("holds key state {} of {}", k.seq, k.repo_id));
                        }
                        Ok((k, hash(&json)))
                    });
                match opened {
                    Ok(k) => good = Some(k),
                    Err(why) => problems.push(damaged(name.clone(), why)),
                }
            }
            if newest.is_none() {
                if good.is_none() {
                    continue;
                }
                newest = good;
            }
        }
        Ok((newest, problems))
    }

    /// The key directory as the newest key state on the target holds it.
    pub fn key_files(&self) -> Result<Option<KeyFiles>, BackupError> {
        let (state, _) = self.keystate()?;
        state.map(|(k, _)| decode_key_files(&k)).transpose()
    }

    /// Makes a set of `snapshot` and `keys` (captured together) and the appliance's
    /// own key `files`, uploading only chunks the target does not have. Returns the
    /// manifest, its hash (the new [`Seen`]) and problems found on the way (sets
    /// that could not be carried over as kept).
    pub fn create(
        &self,
        snapshot: &Snapshot,
        keys: &KeyFiles,
        files: &[(String, Vec<u8>)],
        info: &CreateInfo,
        seen: Option<&Seen>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(Manifest, Seen, Vec<Problem>), BackupError> {
        let started = std::time::Instant::now();
        let found = self.read_sets()?;
        let chain = judge(&self.repo_id, &found, seen);
        refuse_rollback(&chain)?;
        let mut existing: HashSet<String> = self
            .target
            .list(object::DATA)?
            .into_iter()
            .filter_map(|(n, _)| object::id_of(&n).map(str::to_owned))
            .collect();
        let mut stats = SetStats::default();
        let mut streams = vec![];
        snapshot.each_table::<BackupError>(&mut |name, rows| {
            let entry = self.store_stream(name, rows, &mut existing, &mut stats, progress)?;
            streams.push(StreamEntry {
                rows: rows.rows(),
                ..entry
            });
            Ok(())
        })?;
        let mut packed = vec![];
        for (path, bytes) in files {
            for part in [path.as_bytes(), bytes] {
                packed.extend_from_slice(&(part.len() as u32).to_le_bytes());
                packed.extend_from_slice(part);
            }
        }
        let mut files_entry = self.store_stream(
            FILES,
            &mut packed.as_slice(),
            &mut existing,
            &mut stats,
            progress,
        )?;
        files_entry.rows = files.len() as u64;
        streams.push(files_entry);

        let (ks_seq, state_hash, stored) = self.write_keystate(keys, info.now_ms)?;
        stats.new_stored_bytes += stored;

        let seq = found.keys().next_back().copied().unwrap_or(0) + 1;
        stats.duration_ms = started.elapsed().as_millis() as u64;
        let manifest = Manifest {
            repo_id: self.repo_id.clone(),
            seq,
            prev: chain.head.as_ref().map(|(_, h)| h.clone()),
            kind: SetKind::Backup,
            created_at_ms: info.now_ms,
            keystore_id: keys.keystore_id.clone(),
            schema_version: info.schema_version,
            appliance_version: info.appliance_version.clone(),
            keystate: Some(SetRef {
                seq: ks_seq,
                hash: state_hash,
            }),
            streams,
            live: chain
                .live
                .iter()
                .map(|(m, h)| SetRef {
                    seq: m.seq,
                    hash: h.clone(),
                })
                .collect(),
            stats,
        };
        let json = manifest.to_json();
        self.target.put(
            &set_name(seq),
            &object::seal_signed(&self.key, Kind::Manifest, &json),
        )?;
        self.drop_keystates_before(ks_seq)?;
        let seen = Seen {
            seq,
            hash: hash(&json),
            keystate: ks_seq,
        };
        Ok((manifest, seen, chain.problems))
    }

    /// Writes a new key state (two copies), numbered after the newest on the
    /// target. Returns its number, hash and the bytes stored.
    fn write_keystate(
        &self,
        keys: &KeyFiles,
        now_ms: i64,
    ) -> Result<(u64, String, u64), BackupError> {
        let (old, _) = self.keystate()?;
        let seq = old.as_ref().map_or(0, |(k, _)| k.seq) + 1;
        let state = KeyState {
            repo_id: self.repo_id.clone(),
            seq,
            created_at_ms: now_ms,
            keystore_id: keys.keystore_id.clone(),
            master_key_id: keys.master_key_id.clone(),
            files: keys
                .files
                .iter()
                .map(|(n, b)| (n.clone(), B64.encode(b)))
                .collect(),
        };
        let json = serde_json::to_vec(&state).unwrap_or_default();
        let sealed = object::seal_signed(&self.key, Kind::KeyState, &json);
        for copy in ['a', 'b'] {
            self.target.put(&keys_name(seq, copy), &sealed)?;
        }
        Ok((seq, hash(&json), 2 * sealed.len() as u64))
    }

    /// Older key states are superseded: what was erased since they were written
    /// must not stay on the target.
    fn drop_keystates_before(&self, seq: u64) -> Result<(), BackupError> {
        for (name, _) in self.target.list(object::KEYS)? {
            if object::seq_of(&name).is_some_and(|s| s < seq) {
                self.target.delete(&name)?;
            }
        }
        Ok(())
    }

    /// Replaces the key state with the key directory as it is now (after an
    /// erasure: the erased meeting's key leaves the target, its tombstone joins it,
    /// so restoring any set keeps it erased). Returns the new record.
    pub fn refresh_keys(
        &self,
        keys: &KeyFiles,
        now_ms: i64,
        seen: Option<&Seen>,
    ) -> Result<Option<Seen>, BackupError> {
        let (seq, _, _) = self.write_keystate(keys, now_ms)?;
        self.drop_keystates_before(seq)?;
        Ok(seen.map(|s| Seen {
            keystate: seq,
            ..s.clone()
        }))
    }

    fn store_stream(
        &self,
        name: &str,
        r: &mut dyn Read,
        existing: &mut HashSet<String>,
        stats: &mut SetStats,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<StreamEntry, BackupError> {
        let chunks = StreamCDC::with_level_and_seed(
            r,
            MIN_CHUNK,
            AVG_CHUNK,
            MAX_CHUNK,
            Normalization::Level1,
            self.key.chunk_seed(),
        );
        let mut entry = StreamEntry {
            name: name.to_owned(),
            rows: 0,
            bytes: 0,
            blobs: vec![],
        };
        // Cutting and naming chunks (reading the stream, SHA-256) on this thread;
        // compressing, sealing and writing the new ones on a second, so the two
        // halves of the work overlap. A bounded queue keeps memory to a few chunks.
        let (to_seal, sealing) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(4);
        let (new_blobs, new_bytes, cut) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<(u64, u64), BackupError> {
                let (mut blobs, mut bytes) = (0u64, 0u64);
                for (id, data) in sealing {
                    let sealed = object::seal_blob(&self.key, &id, &data);
                    self.target.put(&data_name(&id), &sealed)?;
                    blobs += 1;
                    bytes += sealed.len() as u64;
                }
                Ok((blobs, bytes))
            });
            let cut = (|| {
                for chunk in chunks {
                    let chunk = chunk.map_err(|e| {
                        BackupError::Store(StoreError::Unavailable(format!(
                            "reading table {name}: {e:?}"
                        )))
                    })?;
                    let id = self.key.blob_id(&chunk.data);
                    if existing.insert(id.clone())
                        && to_seal.send((id.clone(), chunk.data)).is_err()
                    {
                        break; // the writer failed: its error is returned below
                    }
                    stats.blobs += 1;
                    stats.bytes += chunk.length as u64;
                    progress(stats.bytes);
                    entry.bytes += chunk.length as u64;
                    entry.blobs.push(BlobRef {
                        id,
                        len: chunk.length as u64,
                    });
                }
                Ok::<(), BackupError>(())
            })();
            drop(to_seal);
            let written = writer.join().unwrap_or_else(|_| {
                Err(BackupError::Store(StoreError::Unavailable(
                    "the backup writer thread panicked".into(),
                )))
            });
            written.map(|(b, n)| (b, n, cut))
        })?;
        cut?;
        stats.new_blobs += new_blobs;
        stats.new_stored_bytes += new_bytes;
        Ok(entry)
    }

    /// Drops the backup sets retention does not keep (`keep` holds the sequence
    /// numbers to keep): first a signed record of what is kept, then the dropped
    /// sets, then every chunk no kept set needs. Returns the sets dropped, the bytes
    /// freed and the new record of the newest set.
    pub fn prune(
        &self,
        keep: &std::collections::BTreeSet<u64>,
        now_ms: i64,
        seen: Option<&Seen>,
    ) -> Result<(Vec<u64>, u64, Option<Seen>), BackupError> {
        let found = self.read_sets()?;
        let chain = judge(&self.repo_id, &found, seen);
        refuse_rollback(&chain)?;
        let Some((head, head_hash)) = chain.head.clone() else {
            return Ok((vec![], 0, None));
        };
        let backups: Vec<&Hashed<Manifest>> = chain
            .live
            .iter()
            .filter(|(m, _)| m.kind == SetKind::Backup)
            .collect();
        let dropped: Vec<u64> = backups
            .iter()
            .map(|(m, _)| m.seq)
            .filter(|s| !keep.contains(s))
            .collect();
        if dropped.is_empty() {
            return Ok((vec![], 0, None));
        }
        let kept: Vec<&Hashed<Manifest>> = backups
            .into_iter()
            .filter(|(m, _)| keep.contains(&m.seq))
            .collect();
        let seq = found.keys().next_back().copied().unwrap_or(0) + 1;
        let record = Manifest {
            repo_id: self.repo_id.clone(),
            seq,
            prev: Some(head_hash),
            kind: SetKind::Prune,
            created_at_ms: now_ms,
            keystore_id: head.keystore_id.clone(),
            schema_version: head.schema_version,
            appliance_version: head.appliance_version.clone(),
            keystate: head.keystate.clone(),
            streams: vec![],
            live: kept
                .iter()
                .map(|(m, h)| SetRef {
                    seq: m.seq,
                    hash: h.clone(),
                })
                .collect(),
            stats: SetStats::default(),
        };
        let json = record.to_json();
        self.target.put(
            &set_name(seq),
            &object::seal_signed(&self.key, Kind::Manifest, &json),
        )?;
        let listed: HashSet<u64> = kept.iter().map(|(m, _)| m.seq).chain([seq]).collect();
        for s in found.keys() {
            if !listed.contains(s) {
                self.target.delete(&set_name(*s))?;
            }
        }
        let needed: HashSet<&str> = kept
            .iter()
            .flat_map(|(m, _)| m.streams.iter())
            .flat_map(|s| s.blobs.iter().map(|b| b.id.as_str()))
            .collect();
        let mut freed = 0;
        for (name, size) in self.target.list(object::DATA)? {
            if object::id_of(&name).is_some_and(|id| !needed.contains(id)) {
                self.target.delete(&name)?;
                freed += size;
            }
        }
        Ok((
            dropped,
            freed,
            Some(Seen {
                seq,
                hash: hash(&json),
                keystate: seen.map_or(0, |s| s.keystate),
            }),
        ))
    }

    /// The good sets, oldest first, and the problems of the rest.
    pub fn list(&self, seen: Option<&Seen>) -> Result<(Vec<SetInfo>, Vec<Problem>), BackupError> {
        let chain = self.chain(seen)?;
        let sets = chain
            .live
            .iter()
            .filter(|(m, _)| m.kind == SetKind::Backup)
            .map(|(m, _)| SetInfo::from(m))
            .collect();
        Ok((sets, chain.problems))
    }

    /// Checks the chain, the key state and that every blob of the sets (or of set
    /// `only`) exists; with `read_data`, reads and authenticates every one of them.
    pub fn verify(
        &self,
        only: Option<u64>,
        read_data: bool,
        seen: Option<&Seen>,
    ) -> Result<VerifyReport, BackupError> {
        let chain = self.chain(seen)?;
        let mut report = VerifyReport {
            read_data,
            head: chain.head.as_ref().map(|(m, _)| m.seq),
            problems: chain.problems.clone(),
            ..Default::default()
        };
        let (state, kproblems) = self.keystate()?;
        report.problems.extend(kproblems);
        match (
            &state,
            chain.head.as_ref().and_then(|(m, _)| m.keystate.clone()),
        ) {
            (None, Some(r)) => report.problems.push(damaged(
                keys_name(r.seq, 'a'),
                "missing: no key state opens, so no set can be restored",
            )),
            (Some((k, h)), Some(r)) if k.seq == r.seq && *h != r.hash => {
                report.problems.push(damaged(
                    keys_name(r.seq, 'a'),
                    "replaced: not the key state the newest set names",
                ))
            }
            (Some((k, _)), _) if seen.is_some_and(|s| k.seq < s.keystate) => {
                report.problems.push(damaged(
                    keys_name(seen.map_or(0, |s| s.keystate), 'a'),
                    format!(
                        "missing: the appliance wrote it, and the target's newest key state is {} (an erasure may have been undone)",
                        k.seq
                    ),
                ))
            }
            (Some((k, _)), Some(r)) if k.seq < r.seq => report.problems.push(damaged(
                keys_name(r.seq, 'a'),
                format!(
                    "missing: the newest set names it, the newest on the target is {}",
                    k.seq
                ),
            )),
            _ => {}
        }
        let sets: Vec<&Manifest> = chain
            .live
            .iter()
            .map(|(m, _)| m)
            .filter(|m| only.is_none_or(|s| s == m.seq))
            .collect();
        if let Some(s) = only {
            if sets.is_empty() {
                return Err(BackupError::Refused(format!(
                    "set {s} is not a good set on {}",
                    self.target.describe()
                )));
            }
        }
        report.sets = sets.len();
        let sizes: HashMap<String, u64> = self.target.list(object::DATA)?.into_iter().collect();
        let mut checked = HashSet::new();
        let mut to_read = vec![];
        for m in sets {
            for s in &m.streams {
                for b in &s.blobs {
                    if !checked.insert(b.id.clone()) {
                        continue;
                    }
                    report.blobs += 1;
                    let name = data_name(&b.id);
                    let whose = format!("(set {}, {})", m.seq, s.name);
                    if !sizes.contains_key(&name) {
                        report
                            .problems
                            .push(damaged(name, format!("missing {whose}")));
                    } else if read_data {
                        to_read.push((name, b, whose));
                    }
                }
            }
        }
        let (bytes_read, problems) = self.read_blobs(&to_read)?;
        report.bytes_read += bytes_read;
        report.problems.extend(problems);
        Ok(report)
    }

    /// Reads and authenticates each of `blobs` (object name, reference, which set
    /// and stream need it), on as many threads as there are cores (up to four); the
    /// bytes read and each problem found, in the order of `blobs`.
    fn read_blobs(
        &self,
        blobs: &[(String, &BlobRef, String)],
    ) -> Result<(u64, Vec<Problem>), BackupError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let found = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> Result<(u64, Vec<(usize, Problem)>), BackupError> {
                        let (mut read, mut problems) = (0u64, vec![]);
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some((name, b, whose)) = blobs.get(i) else {
                                return Ok((read, problems));
                            };
                            let problem = match self.target.get(name)? {
                                None => Some(format!("missing {whose}")),
                                Some(bytes) => {
                                    read += bytes.len() as u64;
                                    match object::open_blob(&self.key, &b.id, &bytes) {
                                        Ok(plain) if plain.len() as u64 == b.len => None,
                                        Ok(_) => Some(format!("has another length {whose}")),
                                        Err(why) => Some(format!("{why} {whose}")),
                                    }
                                }
                            };
                            if let Some(what) = problem {
                                problems.push((i, damaged(name.clone(), what)));
                            }
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(BackupError::Store(StoreError::Unavailable(
                            "a backup reader thread panicked".into(),
                        )))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut read = 0;
        let mut problems = vec![];
        for (r, p) in found {
            read += r;
            problems.extend(p);
        }
        problems.sort_by_key(|(i, _)| *i);
        Ok((read, problems.into_iter().map(|(_, p)| p).collect()))
    }

    /// Restores set `which` (`None`: the newest good one) into `to`, with the newest
    /// key state: a meeting erased since the set was made has no key there, and the
    /// erasure log it carries makes the restored appliance remove it at start.
    pub fn restore(
        self: &Arc<Self>,
        which: Option<u64>,
        to: &RestoreTo,
        seen: Option<&Seen>,
    ) -> Result<RestoreReport, BackupError> {
        let chain = self.chain(seen)?;
        let backups: Vec<&Manifest> = chain
            .live
            .iter()
            .map(|(m, _)| m)
            .filter(|m| m.kind == SetKind::Backup)
            .collect();
        let set = match which {
            Some(s) => backups.iter().find(|m| m.seq == s),
            None => backups.last(),
        }
        .copied()
        .cloned()
        .ok_or_else(|| {
            let why = chain
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            BackupError::Refused(match which {
                Some(s) => format!(
                    "set {s} is not a good set on {} {why}",
                    self.target.describe()
                ),
                None => format!("{} holds no good set {why}", self.target.describe()),
            })
        })?;
        if set.schema_version > crate::store::SCHEMA_VERSION {
            return Err(BackupError::Refused(format!(
                "set {} was made by a newer appliance (schema {}); restore it with that version",
                set.seq, set.schema_version
            )));
        }
        let (state, _) = self.keystate()?;
        let Some((state, _)) =
            state.filter(|(k, _)| set.keystate.as_ref().is_none_or(|r| k.seq >= r.seq))
        else {
            return Err(BackupError::Damaged(damaged(
                object::KEYS,
                "no key state opens: the meeting keys cannot be restored",
            )));
        };
        let master = crate::keyring::master_key_id(&to.master_key_file)?;
        if master != state.master_key_id {
            return Err(BackupError::Refused(format!(
                "the master key {} (id {master}) is not the one the backed-up meeting keys are wrapped with (id {}): use the master key from the safe",
                to.master_key_file.display(),
                state.master_key_id
            )));
        }
        let db = to.data_dir.join(crate::store::DB_FILE);
        if db.exists() {
            return Err(BackupError::Refused(format!(
                "{} exists: restore into a new data directory",
                db.display()
            )));
        }
        if to.key_dir.join("keystore.json").exists() {
            return Err(BackupError::Refused(format!(
                "{} holds a key store: restore into a new key directory",
                to.key_dir.display()
            )));
        }
        crate::keys::private_dir(&to.data_dir)?;
        let fresh = to.data_dir.join(format!("{}.new", crate::store::DB_FILE));
        let _ = std::fs::remove_file(&fresh);
        let by_name: HashMap<String, StreamEntry> = set
            .streams
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        let mut open = |name: &str| -> Result<Box<dyn Read>, BackupError> {
            let blobs = by_name
                .get(name)
                .map(|s| s.blobs.clone())
                .unwrap_or_default();
            Ok(Box::new(BlobReader::new(self.clone(), blobs)))
        };
        let rows = match crate::store::restore_into(&fresh, &mut open) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&fresh);
                return Err(e);
            }
        };
        // The appliance's own keys (identity, TLS), then the meeting keys.
        let files = by_name
            .get(FILES)
            .map(|s| s.blobs.clone())
            .unwrap_or_default();
        let mut r = BlobReader::new(self.clone(), files);
        let mut packed = vec![];
        r.read_to_end(&mut packed)
            .map_err(|e| BackupError::Refused(format!("reading the key files: {e}")))?;
        write_files(&packed, to)?;
        let keys = decode_key_files(&state)?;
        keys.write_to(&to.key_dir)?;
        std::fs::rename(&fresh, &db).map_err(|e| StoreError::Redb(e.into()))?;
        roomscribe_config::fsutil::sync_dir(&to.data_dir)
            .map_err(|e| StoreError::Redb(e.into()))?;
        Ok(RestoreReport {
            seq: set.seq,
            created_at_ms: set.created_at_ms,
            rows,
            bytes: set.stats.bytes,
            key_files: keys.files.len(),
            keystate_seq: state.seq,
            warnings: chain.problems,
        })
    }
}

/// Writing onto a target whose newest sets are gone would hide it: refuse, naming
/// what is missing.
fn refuse_rollback(chain: &Chain) -> Result<(), BackupError> {
    match chain.problems.iter().find(|p| {
        p.what.starts_with("missing: the appliance wrote it")
            || p.what
                .starts_with("replaced: it is not the set the appliance wrote")
    }) {
        Some(p) => Err(BackupError::Damaged(p.clone())),
        None => Ok(()),
    }
}

/// Writes the `files` stream: `keys/…` and `tls/…` under the data directory, the
/// audit key where the configuration keeps it.
fn write_files(mut packed: &[u8], to: &RestoreTo) -> Result<(), BackupError> {
    let bad = || BackupError::Damaged(damaged(FILES, "the key files stream is not well formed"));
    let take = |p: &mut &[u8]| -> Result<Vec<u8>, BackupError> {
        let (len, rest) = p.split_at_checked(4).ok_or_else(bad)?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
        let (v, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
        *p = rest;
        Ok(v.to_vec())
    };
    while !packed.is_empty() {
        let path = String::from_utf8(take(&mut packed)?).map_err(|_| bad())?;
        let bytes = take(&mut packed)?;
        let ok_part = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\');
        let dest = match path.split_once('/') {
            _ if path == AUDIT_KEY => to
                .audit_key_file
                .clone()
                .unwrap_or_else(|| to.data_dir.join("keys/audit.ed25519")),
            Some((dir @ ("keys" | "tls"), name)) if ok_part(name) && !name.contains('/') => {
                to.data_dir.join(dir).join(name)
            }
            _ => return Err(bad()),
        };
        if let Some(parent) = dest.parent() {
            crate::keys::private_dir(parent)?;
        }
        crate::keys::write_secret(&dest, &bytes)?;
    }
    Ok(())
}

/// The name the audit key travels under when it is kept outside the data directory.
pub const AUDIT_KEY: &str = "audit.ed25519";

/// The appliance's own key files for a backup: `<data_dir>/keys/*`, `tls/*` and the
/// audit key kept elsewhere.
pub fn own_files(
    data_dir: &Path,
    audit_key_file: Option<&Path>,
) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let mut out = vec![];
    for dir in ["keys", "tls"] {
        let path = data_dir.join(dir);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::keys::KeyError::Io { path, source: e }.into()),
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            // Certificates are 0644 by design: read them as they are.
            let p = e.path();
            let bytes = std::fs::read(&p)
                .map_err(|source| crate::keys::KeyError::Io { path: p, source })?;
            out.push((format!("{dir}/{name}"), bytes));
        }
    }
    if let Some(p) = audit_key_file {
        out.push((AUDIT_KEY.to_owned(), crate::keys::read_secret(p)?.to_vec()));
    }
    out.sort();
    Ok(out)
}

/// A stream read back from its blobs, each fetched, authenticated and checked — on a
/// thread of its own, a few blobs ahead of the reader (who is writing rows into the
/// new database meanwhile). Dropping the reader stops the thread.
struct BlobReader {
    opened: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    /// Blobs not yet received (a thread that stopped early is an error, not the end).
    left: usize,
    cur: Vec<u8>,
    pos: usize,
}

impl BlobReader {
    fn new(repo: Arc<Repository>, blobs: Vec<BlobRef>) -> Self {
        let (tx, opened) = std::sync::mpsc::sync_channel(4);
        let left = blobs.len();
        std::thread::spawn(move || {
            for b in blobs {
                let name = data_name(&b.id);
                let blob = match repo.target.get(&name) {
                    Err(e) => Err(std::io::Error::other(e)),
                    Ok(None) => Err(std::io::Error::other(format!("{name}: missing"))),
                    Ok(Some(bytes)) => object::open_blob(&repo.key, &b.id, &bytes)
                        .map_err(|why| std::io::Error::other(format!("{name}: {why}"))),
                };
                let failed = blob.is_err();
                if tx.send(blob).is_err() || failed {
                    return;
                }
            }
        });
        Self {
            opened,
            left,
            cur: vec![],
            pos: 0,
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.left == 0 {
                return Ok(0);
            }
            let blob = self.opened.recv().map_err(|_| {
                std::io::Error::other("the thread reading the backup's chunks stopped")
            })?;
            self.left -= 1;
            self.cur = blob?;
            self.pos = 0;
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
