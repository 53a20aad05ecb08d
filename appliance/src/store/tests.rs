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

#[test]
fn transactions_behave_the_same_on_a_file_and_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    test_suite(&Store::open(dir.path()).expect("file"));
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
    let _first = Store::open(dir.path()).expect("open");
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Locked { .. })
    ));
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
    let store = Store::open(dir.path()).expect("migrates");
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
    let store = Store::open(dir.path()).expect("again");
    assert_eq!(store.read(|tx| tx.teams()).expect("teams").len(), 1);
}

#[test]
fn failed_migration_leaves_the_data_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    schema_1_fixture(dir.path(), true);
    let err = Store::open(dir.path()).err().expect("corrupt record");
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
    drop(Store::open(dir.path()).expect("create"));
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
    let err = Store::open(dir.path()).err().expect("refused");
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
