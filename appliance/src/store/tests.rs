use super::*;

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
    }
}

fn meeting(id: &str, agent: &str) -> MeetingRecord {
    MeetingRecord {
        id: id.into(),
        room_id: "r".into(),
        agent_id: agent.into(),
        title: "t".into(),
        started_at_ms: 0,
        clock_skew_ms: None,
        status: MeetingStatus::Live,
        segment_count: 0,
        duration_s: 0.0,
        updated_at_ms: 0,
        speaker_names: Default::default(),
        team_id: None,
    }
}

fn agent(id: &str) -> AgentRecord {
    AgentRecord {
        id: id.into(),
        room_id: "r".into(),
        hostname: "h".into(),
        public_key: String::new(),
        enrolled_at_ms: 0,
        revoked_at_ms: None,
        last_envelope_seq: None,
        last_seen_ms: None,
    }
}

fn env<'a>(
    agent: &str,
    seq: u64,
    digest: u8,
    m: &str,
    segs: &'a [SegmentRecord],
) -> EnvelopeToCommit<'a> {
    EnvelopeToCommit {
        agent_id: agent.into(),
        envelope_seq: seq,
        digest: [digest; 32],
        meeting: meeting(m, agent),
        segments: segs,
        events: &[],
        ended: false,
        received_at_ms: 1,
    }
}

#[test]
fn envelopes_apply_once_in_order_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        store.put_agent(&agent("a")).expect("agent");
        let s01 = [seg(0), seg(1)];
        assert_eq!(
            store
                .commit_envelope(&env("a", 1, 1, "m", &s01))
                .expect("commit"),
            EnvelopeCommit::Stored {
                new_segments: vec![0, 1],
                new_events: vec![],
                meeting_created: true
            }
        );
        assert_eq!(
            store
                .commit_envelope(&env("a", 1, 1, "m", &s01))
                .expect("c"),
            EnvelopeCommit::Duplicate
        );
        assert_eq!(
            store
                .commit_envelope(&env("a", 1, 9, "m", &s01))
                .expect("c"),
            EnvelopeCommit::Conflict
        );
        assert_eq!(
            store
                .commit_envelope(&env("a", 3, 3, "m", &[seg(2)]))
                .expect("c"),
            EnvelopeCommit::OutOfOrder { expected: 2 }
        );
        // A re-sealed batch carrying an already stored segment stores only the new one.
        assert_eq!(
            store
                .commit_envelope(&env("a", 2, 2, "m", &[seg(1), seg(2)]))
                .expect("c"),
            EnvelopeCommit::Stored {
                new_segments: vec![2],
                new_events: vec![],
                meeting_created: false
            }
        );
        store.put_agent(&agent("b")).expect("agent b");
        assert_eq!(
            store
                .commit_envelope(&env("b", 1, 1, "m", &[seg(3)]))
                .expect("c"),
            EnvelopeCommit::ForeignMeeting
        );
    }
    let store = Store::open(dir.path()).expect("reopen");
    let segs = store.segments("m").expect("segments");
    assert_eq!(
        segs.iter().map(|s| s.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        store
            .meeting("m")
            .expect("m")
            .expect("exists")
            .segment_count,
        3
    );
    assert_eq!(
        store
            .agent("a")
            .expect("a")
            .expect("exists")
            .last_envelope_seq,
        Some(2)
    );
    assert!(store.segments("other").expect("empty").is_empty());
}

#[test]
fn events_are_stored_once_per_number() {
    use roomscribe_protocol::{EventKind, EventSource};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store.put_agent(&agent("a")).expect("agent");
    let ev = |seq, kind| EventRecord {
        seq,
        at: seq as f64,
        kind,
        source: EventSource::Voice,
        received_at_ms: 0,
    };
    let first = [ev(0, EventKind::Start), ev(1, EventKind::Highlight)];
    let mut e = env("a", 1, 1, "m", &[]);
    e.events = &first;
    assert!(matches!(
        store.commit_envelope(&e).expect("commit"),
        EnvelopeCommit::Stored { new_events, .. } if new_events == vec![0, 1]
    ));
    // Re-sealed after a crash: event 1 again (as another kind), and a new event 2.
    let again = [ev(1, EventKind::Pause), ev(2, EventKind::Resume)];
    let mut e = env("a", 2, 2, "m", &[]);
    e.events = &again;
    assert!(matches!(
        store.commit_envelope(&e).expect("commit"),
        EnvelopeCommit::Stored { new_events, .. } if new_events == vec![2]
    ));
    let kinds: Vec<_> = store
        .events("m")
        .expect("events")
        .iter()
        .map(|e| (e.seq, e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (0, EventKind::Start),
            (1, EventKind::Highlight),
            (2, EventKind::Resume)
        ]
    );
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
/// rooms and meetings without teams.
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
    }
    txn.commit().expect("commit");
}

#[test]
fn schema_1_migrates_to_roles_and_one_team_for_everyone() {
    let dir = tempfile::tempdir().expect("tempdir");
    schema_1_fixture(dir.path(), false);
    let store = Store::open(dir.path()).expect("migrates");
    let root = store.user("root").expect("read").expect("root");
    let ann = store.user("ann").expect("read").expect("ann");
    assert_eq!(root.grants[0].role, "admin");
    assert_eq!(ann.grants[0].role, "member");
    assert_eq!(ann.grants[0].granted_by, "migration");
    let teams = store.teams().expect("teams");
    assert_eq!(teams.len(), 1);
    let everyone = &teams[0];
    assert_eq!(everyone.name, "Everyone");
    assert!(everyone.members.contains("ann") && everyone.members.contains("root"));
    let room = store.room("r").expect("read").expect("room");
    assert_eq!(room.team_id.as_ref(), Some(&everyone.id));
    let m = store.meeting("m").expect("read").expect("meeting");
    assert_eq!(m.team_id.as_ref(), Some(&everyone.id));
    drop(store);
    // Opening again changes nothing (the migration ran once).
    let store = Store::open(dir.path()).expect("again");
    assert_eq!(store.teams().expect("teams").len(), 1);
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
