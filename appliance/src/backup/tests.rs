//! Backups against real redb files and a real directory target: round trip, dedup,
//! every flipped bit, and a target that deletes, swaps or rolls back sets.

use super::*;
use crate::keyring::Keyring;
use crate::store::Store;
use rand_core::{OsRng, RngCore};
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Store,
    repo: Arc<Repository>,
    seen: Option<Seen>,
}

fn info() -> CreateInfo {
    CreateInfo {
        now_ms: 1_800_000_000_000,
        schema_version: crate::store::SCHEMA_VERSION,
        appliance_version: "test".into(),
    }
}

fn key_dir(root: &Path) -> PathBuf {
    root.join("data-keys")
}

impl Fixture {
    /// A data directory whose `meta` table holds `mib` MiB of random bytes (several
    /// chunks) and a meeting key, and an empty directory target.
    fn new(mib: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let keys =
            Keyring::open(&key_dir(&root), &key_dir(&root).join("master.key")).expect("keyring");
        keys.key_or_create("m1").expect("meeting key");
        std::fs::create_dir_all(root.join("data")).expect("data dir");
        let store = Store::open(&root.join("data"), Arc::new(keys)).expect("store");
        store
            .write(|tx| {
                for i in 0..mib {
                    let mut v = vec![0u8; 1 << 20];
                    OsRng.fill_bytes(&mut v);
                    tx.put_meta(&format!("filler-{i}"), &v)?;
                }
                Ok::<_, crate::store::StoreError>(())
            })
            .expect("filler");
        let target: Arc<dyn Target> =
            Arc::new(DirTarget::open(&root.join("target")).expect("target"));
        let key = Arc::new(BackupKey::from_bytes(&[9u8; 32]));
        let repo = Arc::new(Repository::init(target, key, 0).expect("repository"));
        Self {
            _dir: dir,
            root,
            store,
            repo,
            seen: None,
        }
    }

    fn backup(&mut self) -> Manifest {
        let (snapshot, keys) = self
            .store
            .keys()
            .capture(|| self.store.snapshot().map_err(BackupError::from))
            .expect("capture");
        let files = vec![("keys/signing.ed25519".to_owned(), vec![1u8; 32])];
        let (m, seen, problems) = self
            .repo
            .create(
                &snapshot,
                &keys,
                &files,
                &info(),
                self.seen.as_ref(),
                &|_| (),
            )
            .expect("create");
        assert!(problems.is_empty(), "{problems:?}");
        self.seen = Some(seen);
        m
    }

    fn verify(&self) -> VerifyReport {
        self.repo
            .verify(None, true, self.seen.as_ref())
            .expect("verify runs")
    }

    fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// Every object of the target, by name.
    fn objects(&self) -> Vec<String> {
        self.repo
            .target()
            .list("")
            .expect("list")
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }
}

use manifest::Manifest;

/// Every table's rows as one byte string per table.
fn dump(store: &Store) -> Vec<(String, Vec<u8>)> {
    let snap = store.snapshot().expect("snapshot");
    let mut out = vec![];
    snap.each_table::<crate::store::StoreError>(&mut |name, rows| {
        let mut b = vec![];
        std::io::Read::read_to_end(rows, &mut b).expect("rows");
        out.push((name.to_owned(), b));
        Ok(())
    })
    .expect("tables");
    out
}

#[test]
fn a_restored_data_directory_holds_every_row_and_opens_with_the_keys_from_the_safe() {
    let mut f = Fixture::new(3);
    let m = f.backup();
    assert!(
        m.stats.blobs >= 2,
        "3 MiB make several chunks (about 1 MiB each): {:?}",
        m.stats
    );
    let to = RestoreTo {
        data_dir: f.root.join("new"),
        key_dir: f.root.join("new-keys"),
        master_key_file: key_dir(&f.root).join("master.key"),
        audit_key_file: None,
    };
    let report = f.repo.restore(None, &to, f.seen.as_ref()).expect("restore");
    assert_eq!(report.seq, m.seq);
    assert!(to.data_dir.join("keys/signing.ed25519").exists());
    let keys = Keyring::open(&to.key_dir, &to.master_key_file).expect("restored keys open");
    assert!(
        keys.key("m1").expect("read").is_some(),
        "the meeting key came back"
    );
    let restored = Store::open(&to.data_dir, Arc::new(keys)).expect("restored store opens");
    assert_eq!(dump(&restored), dump(&f.store), "every table, row for row");

    // Again into the same place: refused, nothing overwritten.
    let again = f.repo.restore(None, &to, f.seen.as_ref()).unwrap_err();
    assert!(again.to_string().contains("new data directory"), "{again}");
    // Another master key: refused before anything is written.
    let other = f.root.join("other.key");
    crate::keys::write_secret(&other, &[3u8; 32]).expect("key");
    let to2 = RestoreTo {
        data_dir: f.root.join("new2"),
        key_dir: f.root.join("new2-keys"),
        master_key_file: other,
        audit_key_file: None,
    };
    let e = f.repo.restore(None, &to2, None).unwrap_err();
    assert!(e.to_string().contains("master key"), "{e}");
    assert!(!to2.data_dir.exists());
}

#[test]
fn an_unchanged_appliance_backs_up_again_for_almost_nothing() {
    let mut f = Fixture::new(4);
    let first = f.backup();
    let second = f.backup();
    assert!(first.stats.new_blobs >= 2, "{:?}", first.stats);
    assert_eq!(
        second.stats.new_blobs, 0,
        "unchanged tables are not uploaded again: {:?}",
        second.stats
    );
    assert!(second.stats.new_stored_bytes < first.stats.new_stored_bytes / 20);
    assert_eq!(second.live.len(), 1);
    assert_eq!(f.verify().problems, vec![]);
}

#[test]
fn every_flipped_bit_anywhere_in_the_target_is_found_and_the_object_named() {
    // Small tables: every object is small, so each of the ~100 verifications is quick.
    let mut f = Fixture::new(0);
    f.backup();
    f.backup();
    let objects = f.objects();
    assert!(objects.len() >= 6, "{objects:?}");
    let (mut tried, mut found) = (0, 0);
    let per_object = 100usize.div_ceil(objects.len()).max(3);
    for name in &objects {
        let path = f.target().join(name);
        let good = std::fs::read(&path).expect("object");
        for _ in 0..per_object {
            let bit = (OsRng.next_u64() as usize) % (good.len() * 8);
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &bad).expect("flip");
            tried += 1;
            let named = match Repository::open(
                Arc::new(DirTarget::open(&f.target()).expect("target")),
                Arc::new(BackupKey::from_bytes(&[9u8; 32])),
            ) {
                // The config itself: the repository does not open, naming it.
                Err(e) => e.to_string().contains(name.as_str()),
                Ok(r) => r
                    .verify(None, true, f.seen.as_ref())
                    .expect("verify")
                    .problems
                    .iter()
                    .any(|p| p.object == *name),
            };
            if named {
                found += 1;
            } else {
                eprintln!("bit {bit} of {name} went unnoticed");
            }
        }
        std::fs::write(&path, &good).expect("restore");
    }
    eprintln!("flipped bits found and named: {found} of {tried}");
    assert!(tried >= 100);
    assert_eq!(found, tried);
    assert_eq!(f.verify().problems, vec![]);
}

#[test]
fn a_target_that_deletes_swaps_or_rolls_back_sets_is_caught() {
    let mut f = Fixture::new(1);
    for _ in 0..3 {
        f.backup();
    }
    let sets = f.target().join("sets");
    let read = |n: u64| std::fs::read(sets.join(format!("{n:010}"))).expect("set");
    let (s1, s2, s3) = (read(1), read(2), read(3));
    let names = |f: &Fixture| -> Vec<String> {
        f.verify().problems.into_iter().map(|p| p.object).collect()
    };

    std::fs::remove_file(sets.join("0000000002")).expect("delete");
    assert!(names(&f).contains(&"sets/0000000002".to_owned()));
    std::fs::write(sets.join("0000000002"), &s1).expect("swap in an older set");
    assert!(names(&f).contains(&"sets/0000000002".to_owned()));
    std::fs::write(sets.join("0000000002"), &s2).expect("put back");
    assert_eq!(names(&f), Vec::<String>::new());

    // The newest set deleted: only the appliance's record can tell.
    std::fs::remove_file(sets.join("0000000003")).expect("delete newest");
    assert!(names(&f).contains(&"sets/0000000003".to_owned()));
    // A new backup onto the rolled-back target is refused, naming what is missing.
    let (snapshot, keys) = f
        .store
        .keys()
        .capture(|| f.store.snapshot().map_err(BackupError::from))
        .expect("capture");
    let e = f
        .repo
        .create(&snapshot, &keys, &[], &info(), f.seen.as_ref(), &|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("sets/0000000003"), "{e}");
    std::fs::write(sets.join("0000000003"), &s3).expect("put back");

    // A missing chunk is named with the set and stream that need it.
    let blob = f
        .objects()
        .into_iter()
        .find(|n| n.starts_with("data/"))
        .expect("a chunk");
    std::fs::remove_file(f.target().join(&blob)).expect("delete chunk");
    let problems = f.verify().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.object == blob && p.what.contains("missing")),
        "{problems:?}"
    );
}

#[test]
fn a_backup_key_opens_only_its_own_target() {
    let f = Fixture::new(0);
    let other = Arc::new(BackupKey::from_bytes(&[1u8; 32]));
    let target: Arc<dyn Target> = Arc::new(DirTarget::open(&f.target()).expect("target"));
    let e = Repository::open(target.clone(), other.clone())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("config"), "{e}");
    assert!(
        Repository::init(target, other, 0).is_err(),
        "init does not take it over"
    );
}

#[test]
fn an_erasure_after_the_backup_reaches_the_target_and_a_restore_keeps_it_erased() {
    let mut f = Fixture::new(0);
    f.backup();
    let old_state = std::fs::read(f.target().join("keys/0000000001.a")).expect("key state");
    let keys = f.store.keys().clone();
    keys.record_erasure(&crate::store::records::ErasureRecord {
        meeting_id: "m1".into(),
        room_id: "r".into(),
        team_id: None,
        by: "test".into(),
        at_ms: 1,
        reason: "test".into(),
    })
    .expect("tombstone");
    keys.destroy("m1").expect("destroy");
    let ((), files) = keys.capture(|| Ok::<_, BackupError>(())).expect("capture");
    f.seen = f
        .repo
        .refresh_keys(&files, 1, f.seen.as_ref())
        .expect("refresh");
    let held = f.repo.key_files().expect("read").expect("a key state");
    assert!(
        !held.files.contains_key("meetings/m1.key"),
        "the key left the target"
    );
    assert!(String::from_utf8_lossy(&held.files["erased.log"]).contains("m1"));
    assert_eq!(f.verify().problems, vec![]);

    let to = RestoreTo {
        data_dir: f.root.join("new"),
        key_dir: f.root.join("new-keys"),
        master_key_file: key_dir(&f.root).join("master.key"),
        audit_key_file: None,
    };
    f.repo.restore(None, &to, f.seen.as_ref()).expect("restore");
    let restored = Keyring::open(&to.key_dir, &to.master_key_file).expect("keys");
    assert!(restored.key("m1").expect("read").is_none());
    assert!(
        restored.is_erased("m1"),
        "the tombstone came back with the keys"
    );

    // A target that puts the old key state back (with the erased key) is caught.
    let dir = f.target().join("keys");
    for copy in ["a", "b"] {
        std::fs::remove_file(dir.join(format!("0000000002.{copy}"))).expect("delete");
        std::fs::write(dir.join(format!("0000000001.{copy}")), &old_state).expect("put back");
    }
    let problems = f.verify().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.object.starts_with("keys/0000000002")),
        "{problems:?}"
    );
}

/// A directory target that starts failing every write after `budget` of them (a
/// target that fills up or drops away mid-backup).
struct Failing {
    inner: DirTarget,
    budget: std::sync::atomic::AtomicI64,
}

impl Target for Failing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        if self
            .budget
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            <= 0
        {
            return Err(BackupError::TargetFull {
                target: self.describe(),
                what: format!("{name}: no space left"),
            });
        }
        self.inner.put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BackupError> {
        self.inner.get(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> Result<(), BackupError> {
        self.inner.delete(name)
    }
}

#[test]
fn a_backup_cut_short_at_any_write_leaves_the_sets_before_it_good() {
    let mut f = Fixture::new(2);
    f.backup();
    // New content, so the next set has new chunks to write.
    f.store
        .write(|tx| {
            let mut v = vec![0u8; 1 << 20];
            OsRng.fill_bytes(&mut v);
            tx.put_meta("more", &v)
        })
        .expect("more");
    let key = Arc::new(BackupKey::from_bytes(&[9u8; 32]));
    // Cut after 0, 1, 2, … writes: each attempt leaves what it wrote, the next one
    // reuses it, until one has writes enough for its key state and manifest.
    let mut failures = 0;
    for budget in 0..20 {
        let failing = Arc::new(Failing {
            inner: DirTarget::open(&f.target()).expect("target"),
            budget: std::sync::atomic::AtomicI64::new(budget),
        });
        let repo = Repository::open(failing, key.clone()).expect("repo");
        let (snapshot, keys) = f
            .store
            .keys()
            .capture(|| f.store.snapshot().map_err(BackupError::from))
            .expect("capture");
        match repo.create(&snapshot, &keys, &[], &info(), f.seen.as_ref(), &|_| ()) {
            Err(e) => {
                assert!(e.to_string().contains("no space left"), "{e}");
                failures += 1;
                let listed = f.repo.list(f.seen.as_ref()).expect("list");
                assert_eq!(listed.0.len(), 1, "cut after {budget} writes: {listed:?}");
                assert_eq!(f.verify().problems, vec![], "cut after {budget} writes");
            }
            Ok((m, seen, _)) => {
                assert_eq!(m.stats.new_blobs, 0, "the chunks were all written before");
                f.seen = Some(seen);
                break;
            }
        }
    }
    assert!(failures >= 3, "{failures}");
    assert_eq!(f.repo.list(f.seen.as_ref()).expect("list").0.len(), 2);
    assert_eq!(f.verify().problems, vec![]);
}

#[test]
fn a_capture_racing_erasures_never_holds_rows_without_their_key() {
    let f = Fixture::new(0);
    let keys = f.store.keys().clone();
    let ids: Vec<String> = (0..150).map(|i| format!("m-{i}")).collect();
    for id in &ids {
        keys.key_or_create(id).expect("key");
        f.store
            .write(|tx| tx.put_meta(&format!("present-{id}"), b"1"))
            .expect("row");
    }
    let store = Arc::new(f.store);
    let eraser = {
        let (store, ids) = (store.clone(), ids.clone());
        std::thread::spawn(move || {
            // An erasure's order: the rows go in one commit, then the key.
            for id in &ids {
                store
                    .write(|tx| tx.put_meta(&format!("present-{id}"), b"0"))
                    .expect("rows");
                store.keys().destroy(id).expect("destroy");
            }
        })
    };
    let mut captures = 0;
    while !eraser.is_finished() || captures == 0 {
        let (snapshot, files) = store
            .keys()
            .capture(|| store.snapshot().map_err(BackupError::from))
            .expect("capture");
        let mut meta = vec![];
        snapshot
            .each_table::<crate::store::StoreError>(&mut |name, rows| {
                if name == "meta" {
                    std::io::Read::read_to_end(rows, &mut meta).expect("rows");
                }
                Ok(())
            })
            .expect("tables");
        let mut rest = meta.as_slice();
        let take = |rest: &mut &[u8]| {
            let len = u32::from_le_bytes(rest[..4].try_into().expect("len")) as usize;
            let part = rest[4..4 + len].to_vec();
            *rest = &rest[4 + len..];
            part
        };
        while !rest.is_empty() {
            let (k, v) = (take(&mut rest), take(&mut rest));
            let k = String::from_utf8(k).expect("key");
            if let Some(id) = k.strip_prefix("present-") {
                if v == b"1" {
                    assert!(
                        files.files.contains_key(&format!("meetings/{id}.key")),
                        "the snapshot holds {id}'s rows but the capture lacks its key"
                    );
                }
            }
        }
        captures += 1;
    }
    eraser.join().expect("eraser");
    eprintln!("{captures} captures raced 150 erasures");
}
