use super::records::*;
use super::tx::encode;
use super::*;
use redb::ReadableDatabase;
use std::sync::atomic::AtomicBool;

fn seg(seq: u64) -> SegmentRecord {
    SegmentRecord {
        seq,
        start: seq as f64,
        end: seq as f64 + 1.0,
        text: format!("s{seq}"),
        words: vec![],
        confidence: 0.5,
        received_at_ms: 0,
        speaker: None,
        engine: None,
        model: None,
        version: 0,
        envelope_seq: None,
    }
}

fn team(id: &str, members: &[&str]) -> TeamRecord {
    TeamRecord {
        id: id.into(),
        name: id.to_uppercase(),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        created_at_ms: 0,
        consent: Default::default(),
        trackers: vec![],
    }
}

#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error("refused")]
    Refused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The transaction semantics every backend must have.
fn test_suite(store: &Store) {
    // A closure that returns an error writes nothing, and its hooks never run.
    let hooked = Arc::new(AtomicBool::new(false));
    let h = hooked.clone();
    let refused = store.write(|tx| {
        tx.put_team(&team("a", &["ann"]))?;
        tx.on_commit(move || h.store(true, Ordering::SeqCst));
        Err::<(), _>(TestError::Refused)
    });
    assert!(matches!(refused, Err(TestError::Refused)));
    assert!(!hooked.load(Ordering::SeqCst), "no hook after an abort");
    assert!(
        store.read(|tx| tx.team("a")).expect("read").is_none(),
        "nothing written"
    );
    let before = store.commits();
    // A committed closure's writes are visible to its own later reads and to others;
    // hooks run after the commit.
    let h = hooked.clone();
    store
        .write(|tx| {
            tx.put_team(&team("a", &["ann"]))?;
            assert!(
                tx.team("a")?.is_some(),
                "a transaction reads its own writes"
            );
            tx.put_segment("m", &seg(0))?;
            tx.put_segment("m", &seg(2))?;
            tx.put_segment("n", &seg(1))?;
            tx.on_commit(move || h.store(true, Ordering::SeqCst));
            Ok::<_, StoreError>(())
        })
        .expect("commit");
    assert!(hooked.load(Ordering::SeqCst));
    assert_eq!(store.commits(), before + 1);
    store
        .read(|tx| {
            assert_eq!(tx.team("a")?.map(|t| t.members.len()), Some(1));
            let segs: Vec<u64> = tx.segments("m")?.iter().map(|s| s.seq).collect();
            assert_eq!(segs, [0, 2], "only this meeting's, in order");
            assert!(tx.has_segment("n", 1)? && !tx.has_segment("n", 0)?);
            Ok::<_, StoreError>(())
        })
        .expect("read");
    // Audit rows: appended and read by number, pruned only up to a kept checkpoint.
    store
        .write(|tx| {
            for seq in 1..=5 {
                let e = crate::auditlog::SealedEntry {
                    bytes: format!("{{\"n\":{seq}}}").into_bytes(),
                    hash: [seq as u8; 32],
                };
                tx.put_audit_entry(seq, &e)?;
            }
            let cp = crate::auditlog::SignedCheckpoint {
                bytes: b"{}".to_vec(),
                signature: [7; 64],
            };
            tx.put_audit_checkpoint(2, &cp)?;
            tx.put_audit_checkpoint(4, &cp)?;
            tx.prune_audit_through(2)
        })
        .expect("audit");
    store
        .read(|tx| {
            assert_eq!(tx.audit_first()?, Some(3));
            assert_eq!(tx.audit_head()?, Some((5, [5; 32])));
            let cps: Vec<u64> = tx.audit_checkpoints()?.iter().map(|(s, _)| *s).collect();
            assert_eq!(cps, [2, 4], "the anchor stays");
            let newest: Vec<u64> = tx
                .audit_entries(.., true, 2)?
                .iter()
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(newest, [5, 4]);
            Ok::<_, StoreError>(())
        })
        .expect("read");
}

/// The store of `dir`, with its keys in a directory beside the database (the same
/// key store each time it is opened).
fn open(dir: &Path) -> Result<Store> {
    let keys =
        crate::keyring::Keyring::open(&dir.join("test-keys"), &dir.join("test-keys/master.key"))?;
    Store::open(dir, Arc::new(keys))
}

#[test]
fn transactions_behave_the_same_on_a_file_and_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    test_suite(&open(dir.path()).expect("file"));
    test_suite(&Store::in_memory().expect("memory"));
}

#[test]
fn concurrent_read_modify_writes_lose_nothing() {
    // Each thread adds its own member to one team, reading and writing in one
    // transaction: every member must survive (two transactions would lose some).
    let store = Arc::new(Store::in_memory().expect("memory"));
    store
        .write(|tx| tx.put_team(&team("t", &[])))
        .expect("team");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                for j in 0..25 {
                    store
                        .write(|tx| {
                            let mut t = tx.team("t")?.expect("team");
                            t.members.insert(format!("u{i}-{j}"));
                            std::thread::yield_now();
                            tx.put_team(&t)
                        })
                        .expect("write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    let t = store.read(|tx| tx.team("t")).expect("read").expect("team");
    assert_eq!(t.members.len(), 200);
}

#[test]
fn second_open_reports_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = open(dir.path()).expect("open");
    assert!(matches!(open(dir.path()), Err(StoreError::Locked { .. })));
}

/// A data directory as schema 1 (the first release) wrote it: users with one `role`,
/// rooms and meetings without teams, an API token.
fn schema_1_fixture(dir: &Path, corrupt_user: bool) {
    let db = Database::create(dir.join(DB_FILE)).expect("create");
    let txn = db.begin_write().expect("txn");
    {
        let mut meta = txn.open_table(META).expect("meta");
        meta.insert("schema_version", 1u64.to_be_bytes().as_slice())
            .expect("version");
        let mut users = txn.open_table(USERS).expect("users");
        for (name, role) in [("root", "admin"), ("ann", "user")] {
            let json = format!(
                r#"{{"username":"{name}","role":"{role}","password_hash":"$argon2id$x","must_change_password":false,"created_at_ms":7}}"#
            );
            users.insert(name, json.as_bytes()).expect("user");
        }
        if corrupt_user {
            users.insert("bad", b"{not json".as_slice()).expect("bad");
        }
        txn.open_table(ROOMS)
            .expect("rooms")
            .insert(
                "r",
                br#"{"id":"r","name":"Ward","created_at_ms":1}"#.as_slice(),
            )
            .expect("room");
        let m = br#"{"id":"m","room_id":"r","agent_id":"a","title":"t","started_at_ms":0,"clock_skew_ms":null,"status":"ended","segment_count":0,"duration_s":0.0,"updated_at_ms":0}"#;
        txn.open_table(MEETINGS)
            .expect("meetings")
            .insert("m", m.as_slice())
            .expect("meeting");
        let mut tokens = txn.open_table(API_TOKENS).expect("tokens");
        for (id, owner) in [("t1", "ann"), ("t2", "gone")] {
            let t = ApiTokenRecord {
                id: id.into(),
                owner: owner.into(),
                owner_id: String::new(),
                name: "x".into(),
                secret_sha256: String::new(),
                permissions: vec![],
                created_at_ms: 0,
                expires_at_ms: 1,
                revoked_at_ms: None,
            };
            tokens.insert(id, encode(&t).as_slice()).expect("token");
        }
    }
    txn.commit().expect("commit");
}

#[test]
fn schema_1_migrates_to_roles_teams_and_account_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    schema_1_fixture(dir.path(), false);
    let store = open(dir.path()).expect("migrates");
    store
        .read(|tx| {
            let root = tx.user("root")?.expect("root");
            let ann = tx.user("ann")?.expect("ann");
            assert_eq!(root.grants[0].role, "admin");
            assert_eq!(ann.grants[0].role, "member");
            assert_eq!(ann.grants[0].granted_by, "migration");
            assert!(!root.id.is_empty() && !ann.id.is_empty() && root.id != ann.id);
            let teams = tx.teams()?;
            assert_eq!(teams.len(), 1);
            let everyone = &teams[0];
            assert_eq!(everyone.name, "Everyone");
            assert!(everyone.members.contains("ann") && everyone.members.contains("root"));
            let room = tx.room("r")?.expect("room");
            assert_eq!(room.team_id.as_ref(), Some(&everyone.id));
            let m = tx.meeting("m")?.expect("meeting");
            assert_eq!(m.team_id.as_ref(), Some(&everyone.id));
            // Tokens belong to their owner's id; one whose owner is gone is removed.
            let tokens = tx.api_tokens()?;
            assert_eq!(tokens.len(), 1, "{tokens:?}");
            assert_eq!(tokens[0].owner_id, ann.id);
            Ok::<_, StoreError>(())
        })
        .expect("read");
    drop(store);
    // Opening again changes nothing (the migration ran once).
    let store = open(dir.path()).expect("again");
    assert_eq!(store.read(|tx| tx.teams()).expect("teams").len(), 1);
}

#[test]
fn failed_migration_leaves_the_data_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    schema_1_fixture(dir.path(), true);
    let err = open(dir.path()).err().expect("corrupt record");
    assert!(err.to_string().contains("users/bad"), "{err}");
    let db = Database::create(dir.path().join(DB_FILE)).expect("reopen");
    let txn = db.begin_read().expect("read");
    let meta = txn.open_table(META).expect("meta");
    let v = meta.get("schema_version").expect("get").expect("version");
    assert_eq!(v.value(), 1u64.to_be_bytes().as_slice(), "still schema 1");
    let users = txn.open_table(USERS).expect("users");
    let ann = users.get("ann").expect("get").expect("ann");
    assert!(std::str::from_utf8(ann.value())
        .expect("utf8")
        .contains(r#""role":"user""#));
    assert!(txn.open_table(TEAMS).is_err(), "no team table was created");
}

#[test]
fn a_database_from_a_newer_build_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()).expect("create"));
    {
        let db = Database::create(dir.path().join(DB_FILE)).expect("reopen");
        let txn = db.begin_write().expect("txn");
        txn.open_table(META)
            .expect("meta")
            .insert(
                "schema_version",
                (SCHEMA_VERSION + 1).to_be_bytes().as_slice(),
            )
            .expect("version");
        txn.commit().expect("commit");
    }
    let err = open(dir.path()).err().expect("refused");
    assert!(
        err.to_string().contains(&format!(
            "database schema version {} is newer than this build understands ({SCHEMA_VERSION})",
            SCHEMA_VERSION + 1
        )),
        "{err}"
    );
    // Still the newer version: nothing was migrated "down".
    let db = Database::create(dir.path().join(DB_FILE)).expect("reopen");
    let txn = db.begin_read().expect("read");
    let meta = txn.open_table(META).expect("meta");
    let v = meta.get("schema_version").expect("get").expect("version");
    assert!(v.value() == (SCHEMA_VERSION + 1).to_be_bytes().as_slice());
}

/// Whether `needle` is anywhere in the files under `dir`, as UTF-8 or UTF-16LE.
fn found_in_files(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let utf16: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut hits = vec![];
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let b = std::fs::read(&p).expect("file");
                let has = |n: &[u8]| b.windows(n.len()).any(|w| w == n);
                if has(needle.as_bytes()) || has(&utf16) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

fn meeting_record(id: &str, title: &str) -> MeetingRecord {
    serde_json::from_value(serde_json::json!({
        "id": id, "room_id": "r", "agent_id": "a", "title": title, "started_at_ms": 0,
        "clock_skew_ms": null, "status": "ended", "segment_count": 1, "duration_s": 1.0,
        "updated_at_ms": 0
    }))
    .expect("meeting")
}

#[test]
fn meeting_content_is_sealed_in_the_file_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data");
    let keys =
        crate::keyring::Keyring::open(&dir.path().join("keys"), &dir.path().join("master.key"))
            .expect("keys");
    let store = Store::open(&data, Arc::new(keys)).expect("store");
    let mut s = seg(1);
    s.text = "zebracanary spoke".into();
    store
        .write(|tx| {
            tx.put_meeting(&meeting_record("m1", "titlecanary"))?;
            tx.put_segment("m1", &s)?;
            tx.put_sealed_envelope("m1", "agent", 1, b"envelopecanary")
        })
        .expect("write");
    store
        .read(|tx| {
            assert_eq!(tx.meeting("m1")?.expect("m").title, "titlecanary");
            assert_eq!(tx.segments("m1")?[0].text, "zebracanary spoke");
            assert_eq!(
                tx.sealed_envelope("m1", "agent", 1)?.as_deref(),
                Some(b"envelopecanary".as_slice())
            );
            // Asked for under another meeting, the envelope is refused, not opened.
            assert!(matches!(
                tx.sealed_envelope("m2", "agent", 1),
                Err(StoreError::Unauthentic { .. })
            ));
            Ok::<_, StoreError>(())
        })
        .expect("read");
    drop(store);
    for canary in ["titlecanary", "zebracanary", "envelopecanary"] {
        assert_eq!(
            found_in_files(&data, canary),
            Vec::<PathBuf>::new(),
            "{canary}"
        );
    }
}

#[test]
fn a_sealed_row_moved_to_another_place_does_not_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).expect("store");
    store
        .write(|tx| {
            tx.put_segment("m1", &seg(1))?;
            tx.put_segment("m1", &seg(2))?;
            tx.put_segment("m2", &seg(1))
        })
        .expect("write");
    let (one, other) = store
        .read(|tx| {
            Ok::<_, StoreError>((
                tx.raw_pair(SEGMENTS, "m1", 1)?.expect("row"),
                tx.raw_pair(SEGMENTS, "m2", 1)?.expect("row"),
            ))
        })
        .expect("raw");
    // Seq 1's ciphertext put at seq 2 of the same meeting, or another meeting's row:
    // neither opens.
    store
        .write(|tx| {
            tx.tamper_pair(SEGMENTS, "m1", 2, &one)?;
            tx.tamper_pair(SEGMENTS, "m1", 1, &other)
        })
        .expect("tamper");
    for seq in [1, 2] {
        let err = store.read(|tx| tx.segment("m1", seq)).expect_err("refused");
        assert!(matches!(err, StoreError::Unauthentic { .. }), "{err}");
    }
}

#[test]
fn a_data_directory_is_refused_with_another_key_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = |name: &str| {
        Arc::new(
            crate::keyring::Keyring::open(
                &dir.path().join(name),
                &dir.path().join(name).join("master.key"),
            )
            .expect("keys"),
        )
    };
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data");
    drop(Store::open(&data, keys("a")).expect("first"));
    let err = Store::open(&data, keys("b"))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("storage.key_dir"), "{err}");
    Store::open(&data, keys("a")).expect("its own opens");
}

#[test]
fn schema_5_plaintext_is_sealed_and_no_copy_of_it_is_left_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // As schema 5 wrote it: plaintext JSON, a kept envelope as signed.
        let db = Database::create(dir.path().join(DB_FILE)).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert("schema_version", 5u64.to_be_bytes().as_slice())
                .expect("v");
            let m = encode(&meeting_record(
                "11111111-2222-3333-4444-555555555555",
                "oldtitlecanary",
            ));
            txn.open_table(MEETINGS)
                .expect("t")
                .insert("11111111-2222-3333-4444-555555555555", m.as_slice())
                .expect("m");
            let mut s = seg(0);
            s.text = "oldsegmentcanary".into();
            txn.open_table(SEGMENTS)
                .expect("t")
                .insert(
                    ("11111111-2222-3333-4444-555555555555", 0u64),
                    encode(&s).as_slice(),
                )
                .expect("s");
        }
        txn.commit().expect("commit");
    }
    let store = open(dir.path()).expect("migrates");
    store
        .read(|tx| {
            let id = "11111111-2222-3333-4444-555555555555";
            assert_eq!(tx.meeting(id)?.expect("m").title, "oldtitlecanary");
            assert_eq!(tx.segments(id)?[0].text, "oldsegmentcanary");
            Ok::<_, StoreError>(())
        })
        .expect("read");
    drop(store);
    assert!(!dir.path().join(format!("{DB_FILE}.new")).exists());
    let db = std::fs::read(dir.path().join(DB_FILE)).expect("db");
    for canary in ["oldtitlecanary", "oldsegmentcanary"] {
        assert!(
            !db.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{canary} left in the file"
        );
    }
}

#[test]
fn erasing_without_the_key_removes_every_row_of_the_meeting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).expect("store");
    let mut s = seg(1);
    s.envelope_seq = Some(1);
    store
        .write(|tx| {
            tx.put_meeting(&meeting_record("m1", "t"))?;
            tx.put_segment("m1", &s)?;
            tx.put_revision(
                "m1",
                1,
                &serde_json::from_value(serde_json::json!({
                    "version": 1, "at_ms": 0, "by": "ann", "text_before": "a", "text_after": "b",
                    "speaker_before": null, "speaker_after": null, "words_before": []
                }))
                .expect("revision"),
            )?;
            tx.put_sealed_envelope("m1", "agent", 1, b"x")?;
            tx.put_sealed_envelope("m2", "agent", 2, b"y")?;
            tx.put_segment("m2", &seg(1))
        })
        .expect("write");
    store.keys().destroy("m1").expect("key gone");
    let e = ErasureRecord {
        meeting_id: "m1".into(),
        room_id: String::new(),
        team_id: None,
        by: "system".into(),
        at_ms: 0,
        reason: "replayed".into(),
    };
    store.write(|tx| tx.erase_meeting(&e, None)).expect("erase");
    store
        .read(|tx| {
            assert!(!tx.has_meeting("m1")?);
            assert!(tx.raw_pairs(SEGMENTS, "m1")?.is_empty());
            assert!(tx.raw_pairs(REVISIONS, "m1/1")?.is_empty());
            assert!(tx.raw_pair(SEALED, "agent", 1)?.is_none());
            // Another meeting's rows stay.
            assert!(tx.raw_pair(SEALED, "agent", 2)?.is_some());
            assert_eq!(tx.segments("m2")?.len(), 1);
            assert_eq!(tx.erasure("m1")?, Some(e.clone()));
            Ok::<_, StoreError>(())
        })
        .expect("read");
}

/// The moments of a re-keying, one at a time: rows sealed again under the next key,
/// the switch, a writer and a reader between the commit and the key file's
/// replacement, then the replacement. Every row opens at every moment.
#[test]
fn a_meeting_sealed_again_under_its_next_key_reads_at_every_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).expect("store");
    let keys = store.keys().clone();
    store
        .write(|tx| {
            tx.put_meeting(&meeting_record("m1", "t"))?;
            tx.put_segment("m1", &seg(0))?;
            tx.put_segment("m1", &seg(1))
        })
        .expect("write");
    let m = store.read(|tx| tx.meeting("m1")).expect("read").expect("m");
    let next = keys.stage_rekey("m1").expect("stage");
    store
        .write(|tx| {
            tx.reseal_meeting(&m, next.clone(), &[0].into())?;
            tx.put_meeting(&m)?;
            keys.switch_rekey("m1").map_err(StoreError::from)
        })
        .expect("resealed");
    // Committed; the key file still holds the old key. A reader and a writer now:
    let read = |store: &Store| {
        store
            .read(|tx| Ok::<_, StoreError>((tx.meeting("m1")?.is_some(), tx.segments("m1")?.len())))
            .expect("every row opens")
    };
    assert_eq!(read(&store), (true, 1));
    store
        .write(|tx| tx.put_segment("m1", &seg(2)))
        .expect("a segment arrives");
    assert_eq!(read(&store), (true, 2));
    keys.commit_rekey("m1").expect("commit");
    assert_eq!(read(&store), (true, 2));
    // And after a restart, from the key file alone.
    drop(store);
    let store = open(dir.path()).expect("reopened");
    assert_eq!(read(&store), (true, 2));
    assert_eq!(
        store
            .read(|tx| tx.meeting_opens_with("m1", &next))
            .expect("read"),
        Some(true)
    );
}
