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
