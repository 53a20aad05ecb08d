use super::*;
use std::os::unix::fs::PermissionsExt;

fn ring(dir: &Path) -> Result<Keyring> {
    Keyring::open(&dir.join("keys"), &dir.join("master.key"))
}

fn tombstone(id: &str) -> Tombstone {
    Tombstone {
        meeting_id: id.into(),
        room_id: "r".into(),
        team_id: None,
        by: "ann".into(),
        at_ms: 7,
        reason: "request #1".into(),
    }
}

/// Seals with `meeting`'s key and opens again with a fresh ring on the same dirs.
fn roundtrip(dir: &Path, meeting: &str) -> Option<Vec<u8>> {
    let sealed = seal(
        &ring(dir)
            .expect("ring")
            .key_or_create(meeting)
            .expect("key"),
        b"a",
        b"secret words",
    );
    let k = ring(dir).expect("again").key(meeting).expect("read")?;
    open(&k, b"a", &sealed).map(|p| p.to_vec())
}

#[test]
fn a_meeting_keeps_its_key_across_restarts_and_files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        roundtrip(dir.path(), "m1").as_deref(),
        Some(b"secret words".as_slice())
    );
    let file = dir.path().join("keys/meetings/m1.key");
    let bytes = fs::read(&file).expect("key file");
    assert_eq!(bytes.len(), KEY_FILE_LEN);
    for p in [&file, &dir.path().join("master.key")] {
        let mode = fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    // The data key is wrapped, not stored: its bytes are not in the file.
    let ring = ring(dir.path()).expect("ring");
    assert_eq!(ring.id().len(), 32);
    assert_eq!(
        ring.meetings_with_keys().expect("list"),
        ["m1".to_owned()].into()
    );
}

#[test]
fn erasure_destroys_the_key_and_is_remembered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = ring(dir.path()).expect("ring");
    let key = r.key_or_create("m1").expect("key");
    let sealed = seal(&key, b"", b"canary");
    r.record_erasure(&tombstone("m1")).expect("tombstone");
    r.destroy("m1").expect("destroy");
    assert!(r.key("m1").expect("read").is_none());
    assert!(matches!(
        r.key_or_create("m1"),
        Err(KeyringError::Erased(_))
    ));
    // After a restart: still erased, still no key; the ciphertext opens with nothing.
    let r = ring(dir.path()).expect("again");
    assert!(r.is_erased("m1"));
    assert_eq!(r.tombstones(), vec![tombstone("m1")]);
    assert!(r.key("m1").expect("read").is_none());
    assert!(matches!(
        r.key_or_create("m1"),
        Err(KeyringError::Erased(_))
    ));
    let other = r.key_or_create("m2").expect("m2");
    assert!(open(&other, b"", &sealed).is_none());
}

#[test]
fn an_erasure_log_line_cut_short_is_dropped_and_the_next_one_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    ring(dir.path())
        .expect("ring")
        .record_erasure(&tombstone("m1"))
        .expect("one");
    let log = dir.path().join("keys").join(ERASED_LOG);
    let mut f = fs::OpenOptions::new().append(true).open(&log).expect("log");
    f.write_all(br#"{"meeting_id":"m2","by":"#).expect("torn");
    drop(f);
    let r = ring(dir.path()).expect("reads");
    assert!(r.is_erased("m1") && !r.is_erased("m2"));
    r.record_erasure(&tombstone("m3")).expect("three");
    let r = ring(dir.path()).expect("reads again");
    assert!(r.is_erased("m1") && r.is_erased("m3"));
    // Damage in the middle is an error naming the line, never silently skipped.
    fs::write(&log, "garbage\n{}\n").expect("damage");
    let err = ring(dir.path()).err().expect("refused").to_string();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn rotation_rewraps_every_key_and_the_old_master_key_opens_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = ring(dir.path()).expect("ring");
    let sealed: Vec<_> = (0..3)
        .map(|i| seal(&r.key_or_create(&format!("m{i}")).expect("key"), b"", b"x"))
        .collect();
    let old_master = fs::read(dir.path().join("master.key")).expect("master");
    let before = r.master_key_id();
    let rot = r.rotate().expect("rotate");
    assert_eq!(rot.rewrapped, 3);
    assert_eq!(rot.old_master_key_id, before);
    assert_ne!(rot.new_master_key_id, before);
    assert_ne!(
        fs::read(dir.path().join("master.key")).expect("master"),
        old_master
    );
    assert!(!dir.path().join("master.key.next").exists());
    // Content is untouched and opens with the re-wrapped keys, after a restart too.
    let r = ring(dir.path()).expect("again");
    assert_eq!(r.master_key_id(), rot.new_master_key_id);
    for (i, s) in sealed.iter().enumerate() {
        let k = r.key(&format!("m{i}")).expect("read").expect("key");
        assert!(open(&k, b"", s).is_some());
    }
    // The old master key no longer opens anything: it is refused as the wrong one.
    fs::write(dir.path().join("master.key"), &old_master).expect("old back");
    match ring(dir.path()) {
        Err(KeyringError::WrongMaster { expected, .. }) => {
            assert_eq!(expected, rot.new_master_key_id)
        }
        other => panic!("expected WrongMaster, got {:?}", other.err()),
    }
}

#[test]
fn a_rotation_cut_short_is_finished_at_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = ring(dir.path()).expect("ring");
    let sealed = seal(&r.key_or_create("m1").expect("key"), b"", b"x");
    r.key_or_create("m2").expect("key");
    drop(r);
    // As a crash leaves it: the next key written, one key file re-wrapped.
    let next = MasterKey::generate(&dir.path().join("master.key.next")).expect("next");
    let old = MasterKey::load(&dir.path().join("master.key")).expect("old");
    let file = dir.path().join("keys/meetings/m1.key");
    let bytes = fs::read(&file).expect("read");
    let (_, wrapped) = parse_key_file(&bytes).expect("parse");
    let key = old.unwrap(wrapped, &dek_aad("m1")).expect("unwrap");
    fs::write(&file, key_file(&next, "m1", &key)).expect("rewrap");
    let r = ring(dir.path()).expect("finishes");
    assert_eq!(r.master_key_id(), hex::encode(next.id()));
    assert!(!dir.path().join("master.key.next").exists());
    let k = r.key("m1").expect("read").expect("key");
    assert!(open(&k, b"", &sealed).is_some());
    assert!(r.key("m2").expect("read").is_some());
}

#[test]
fn a_missing_open_or_foreign_master_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    ring(dir.path())
        .expect("ring")
        .key_or_create("m1")
        .expect("key");
    let master = dir.path().join("master.key");
    fs::set_permissions(&master, fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = ring(dir.path()).err().expect("too open").to_string();
    assert!(err.contains("chmod 600"), "{err}");
    fs::remove_file(&master).expect("remove");
    assert!(matches!(
        ring(dir.path()),
        Err(KeyringError::MasterMissing { .. })
    ));
    // A new master key is never made up for an existing key store.
    assert!(!master.exists());
    crate::keys::write_secret(&master, &[9u8; 32]).expect("foreign");
    assert!(matches!(
        ring(dir.path()),
        Err(KeyringError::WrongMaster { .. })
    ));
}

#[test]
fn a_key_file_moved_to_another_meeting_does_not_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = ring(dir.path()).expect("ring");
    r.key_or_create("m1").expect("key");
    let meetings = dir.path().join("keys/meetings");
    fs::copy(meetings.join("m1.key"), meetings.join("m2.key")).expect("copy");
    let err = r.key("m2").err().expect("refused").to_string();
    assert!(err.contains("does not open"), "{err}");
    for bad in ["../m", ".hidden", "", "a/b"] {
        assert!(
            matches!(r.key_or_create(bad), Err(KeyringError::BadId(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_key_directory_inside_the_data_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("keys")).expect("dirs");
    fs::create_dir_all(dir.path().join("data-keys")).expect("dirs");
    assert!(matches!(
        check_apart(&data.join("keys"), &data),
        Err(KeyringError::InsideDataDir { .. })
    ));
    check_apart(&dir.path().join("data-keys"), &data).expect("beside is fine");
}

#[test]
fn a_rekeying_cut_short_can_be_finished_or_dropped_after_a_restart_and_survives_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opens = |k: &Aes256Gcm, sealed: &[u8]| open(k, b"row", sealed).is_some();
    let r = ring(dir.path()).expect("ring");
    let old = r.key_or_create("m1").expect("key");
    let next = r.stage_rekey("m1").expect("stage");
    let sealed_new = seal(&next, b"row", b"resealed");
    let sealed_old = seal(&old, b"row", b"as before");
    assert!(dir.path().join("keys/meetings/m1.rekey").exists());
    assert!(
        opens(&r.key("m1").expect("key").expect("some"), &sealed_old),
        "until the commit, the meeting's key is the old one"
    );
    drop(r); // a crash between staging and the commit

    // A rotation meanwhile re-wraps the staged key too.
    ring(dir.path()).expect("ring").rotate().expect("rotate");
    let r = ring(dir.path()).expect("reopened");
    let staged = r.staged_rekeys().expect("staged");
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].0, "m1");
    assert!(opens(&staged[0].1, &sealed_new));
    r.commit_rekey("m1").expect("commit");
    assert!(!dir.path().join("keys/meetings/m1.rekey").exists());
    let r = ring(dir.path()).expect("reopened");
    let now = r.key("m1").expect("key").expect("some");
    assert!(opens(&now, &sealed_new), "the new key is the meeting's");
    assert!(!opens(&now, &sealed_old), "the old key is gone");

    // Dropped instead: the current key stays.
    r.stage_rekey("m1").expect("stage");
    drop(r);
    let r = ring(dir.path()).expect("reopened");
    assert_eq!(r.staged_rekeys().expect("staged").len(), 1);
    r.abort_rekey("m1").expect("abort");
    assert!(r.staged_rekeys().expect("staged").is_empty());
    assert!(opens(
        &r.key("m1").expect("key").expect("some"),
        &sealed_new
    ));
}

#[test]
fn erasures_of_segments_are_remembered_and_a_cut_line_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = ring(dir.path()).expect("ring");
    let t = SegmentTombstone {
        meeting_id: "m1".into(),
        segments: vec![1, 4],
        by: "ann".into(),
        at_ms: 9,
        reason: "withdrew".into(),
    };
    r.record_segment_erasure(&t).expect("record");
    drop(r);
    let log = dir.path().join("keys/erased-segments.log");
    let mut f = fs::OpenOptions::new().append(true).open(&log).expect("log");
    f.write_all(b"{\"meeting_id\":\"m2\",\"segm").expect("cut");
    drop(f);
    assert_eq!(ring(dir.path()).expect("ring").segment_erasures(), vec![t]);
}
