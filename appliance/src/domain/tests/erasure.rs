//! Legal holds and erasure through the real services: what a hold blocks, who may
//! place, lift and erase, what erasure leaves behind (only that the meeting was
//! erased), and that an erased meeting's envelopes never bring it back.

use super::*;
use crate::store::Reads;
use roomscribe_protocol::frame::AckStatus;

struct Recorded {
    meeting: String,
    agent: AgentId,
    key: SigningKey,
    id: MeetingId,
    room: String,
    team: String,
}

/// One meeting of room "Ward 4" (team Cardiology), corrected once.
fn recorded(f: &Fixture) -> Recorded {
    f.search.start().expect("index opens");
    let (agent, key, id) =
        f.meeting_saying("Ward 4", "Cardiology", "the canary quokka spoke", false);
    let meeting = id.to_string();
    f.corrections
        .correct(
            &f.admin(),
            &meeting,
            0,
            &SegmentPatch {
                text: Some("the canary quokka spoke twice".into()),
                speaker: None,
                expected_version: 0,
            },
        )
        .expect("correct");
    let m = f.meetings.list(&f.admin()).expect("list").remove(0);
    Recorded {
        meeting,
        agent,
        key,
        id,
        room: m.room_id,
        team: m.team_id.unwrap_or_default(),
    }
}

#[test]
fn holds_block_erasure_until_lifted_and_only_holders_of_retention_manage_place_them() {
    let f = fixture();
    let r = recorded(&f);
    let admin = f.admin();
    f.user("mo", "manager", std::slice::from_ref(&r.team));
    let mo = f.actor("mo");
    for (target, id) in [
        (HoldTarget::Meeting, &r.meeting),
        (HoldTarget::Room, &r.room),
        (HoldTarget::Team, &r.team),
    ] {
        // A manager may not place holds; a bad reason is refused; an unknown target
        // is not found.
        assert!(matches!(
            f.erasure.hold(&mo, target, id, "litigation"),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            f.erasure.hold(&admin, target, id, " "),
            Err(DomainError::Invalid {
                field: "reason",
                ..
            })
        ));
        assert!(matches!(
            f.erasure.hold(&admin, target, "no-such-id", "x"),
            Err(DomainError::NotFound(_))
        ));
        let h = f
            .erasure
            .hold(&admin, target, id, "Smith v. Ward 4")
            .expect("hold");
        assert_eq!(h.by, admin.username);
        // Nobody erases what it covers, the administrator included: 409 with why.
        match f.erasure.erase(&admin, &r.meeting, "a request") {
            Err(DomainError::Conflict(why)) => assert!(why.contains("Smith v. Ward 4"), "{why}"),
            other => panic!("{target:?}: {other:?}"),
        }
        assert_eq!(f.erasure.holds(&admin).expect("holds").len(), 1);
        f.erasure.lift(&admin, target, id).expect("lift");
        assert!(matches!(
            f.erasure.lift(&admin, target, id),
            Err(DomainError::NotFound("hold"))
        ));
    }
    assert_eq!(f.audited("hold.place").len(), 3);
    assert_eq!(f.audited("hold.lift").len(), 3);
    // Still all there.
    assert_eq!(f.hits("quokka"), 1);
}

#[test]
fn erasure_removes_every_stored_piece_keeps_only_the_record_and_refuses_a_refill() {
    let f = fixture();
    let r = recorded(&f);
    let admin = f.admin();
    f.user("vera", "viewer", std::slice::from_ref(&r.team));
    let (segment, envelope) = f
        .store
        .read(|tx| {
            let s = tx.segment(&r.meeting, 0)?.expect("segment");
            let env = s.envelope_seq.expect("envelope");
            Ok::<_, DomainError>((s, env))
        })
        .expect("read");
    assert_eq!(segment.version, 1);

    assert!(matches!(
        f.erasure.erase(&f.actor("vera"), &r.meeting, "asked to"),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        f.erasure.erase(&admin, &r.meeting, ""),
        Err(DomainError::Invalid {
            field: "reason",
            ..
        })
    ));
    let e = f
        .erasure
        .erase(&admin, &r.meeting, "data subject's request #12")
        .expect("erase");
    assert_eq!(e.reason, "data subject's request #12");

    // Nothing of its content is left in storage or search; only the record.
    f.store
        .read(|tx| {
            assert!(tx.meeting(&r.meeting)?.is_none());
            assert!(tx.segments(&r.meeting)?.is_empty());
            assert!(tx.revisions(&r.meeting, 0)?.is_empty());
            assert!(tx.events(&r.meeting)?.is_empty());
            assert!(tx
                .sealed_envelope(&r.meeting, &r.agent.to_string(), envelope)?
                .is_none());
            let kept = tx.erasure(&r.meeting)?.expect("erasure record");
            assert_eq!(kept.by, admin.username);
            Ok::<_, DomainError>(())
        })
        .expect("read");
    assert_eq!(f.hits("quokka"), 0);
    assert!(matches!(
        f.meetings.transcript(&admin, &r.meeting),
        Err(DomainError::NotFound(_))
    ));
    let audited = f.audited("meeting.erase");
    assert_eq!(
        audited[0].detail.as_deref(),
        Some("data subject's request #12")
    );
    assert!(!format!("{audited:?}").contains("quokka"), "no content");
    assert!(matches!(
        f.erasure.erase(&admin, &r.meeting, "again"),
        Err(DomainError::NotFound(_))
    ));

    // The agent sends more of it (or a restored appliance is refilled): acknowledged,
    // dropped and recorded; the meeting does not come back.
    let again = f.envelope_saying(r.agent, &r.key, r.id, 2, 1, true, "the quokka returns");
    assert_eq!(
        f.ingest.accept_envelope(f.hello(r.agent, &r.key), &again),
        Ok(AckStatus::Stored)
    );
    f.search.flush();
    assert!(f
        .store
        .read(|tx| tx.meeting(&r.meeting))
        .expect("read")
        .is_none());
    assert_eq!(f.hits("quokka"), 0);
    assert_eq!(f.audited("agent.envelope_of_erased_meeting").len(), 1);
}

#[test]
fn a_subject_access_export_holds_what_names_the_person_and_nothing_else() {
    use crate::domain::subject::Subject;
    let f = fixture();
    let r = recorded(&f);
    let admin = f.admin();
    let export = |name: &str, username: Option<&str>| {
        f.subjects
            .export(
                &admin,
                &Subject {
                    name: name.into(),
                    username: username.map(str::to_owned),
                },
            )
            .expect("export")
    };
    // Nobody of that name: an empty archive, still signed.
    assert_eq!(export("Dr. Quokka", None).meetings, 0);
    // Named as a participant: the whole meeting.
    f.meetings
        .update(
            &admin,
            &r.meeting,
            &MeetingPatch {
                participants: Some(vec![crate::store::records::ParticipantRecord {
                    name: "Dr. Quokka".into(),
                    username: None,
                }]),
                ..Default::default()
            },
        )
        .expect("participants");
    let a = export("  dr. quokka ", None);
    assert_eq!((a.meetings, a.segments, a.audit_entries), (1, 1, 0));
    let body = crate::export::manifest::verify(
        &a.bytes,
        &serde_json::to_vec(&a.manifest).expect("json"),
        Some(&hex::encode(f.keys.audit.verifying_key().to_bytes())),
    )
    .expect("the manifest verifies");
    assert_eq!(body.format, "subject-access");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(a.bytes)).expect("zip");
    let mut json = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("subject.json").expect("json"), &mut json)
        .expect("read");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        v["meetings"][0]["reasons"],
        serde_json::json!(["participant"])
    );
    assert_eq!(
        v["meetings"][0]["segments"][0]["text"],
        "the canary quokka spoke twice"
    );
    // As a speaker elsewhere: only the segments they spoke, by label or given name.
    f.corrections
        .correct(
            &admin,
            &r.meeting,
            0,
            &SegmentPatch {
                text: None,
                speaker: Some("channel 2".into()),
                expected_version: 1,
            },
        )
        .expect("speaker");
    f.meetings
        .name_speaker(&admin, &r.meeting, "channel 2", "Nurse Lee")
        .expect("name");
    let a = export("Nurse Lee", None);
    assert_eq!((a.meetings, a.segments), (1, 1));
    // With an account: its audit entries; and the export itself is audited.
    f.user("lee", "member", std::slice::from_ref(&r.team));
    let a = export("Nurse Lee", Some("lee"));
    assert!(a.audit_entries >= 1, "the account's creation");
    let audited = f.audited("subject.export");
    assert_eq!(audited.len(), 4);
    assert_eq!(audited[0].target.as_deref(), Some("user:lee"));
    // A member may not (no audit.read), and a name is required.
    let lee = f.actor("lee");
    let subject = Subject {
        name: "Nurse Lee".into(),
        username: None,
    };
    assert!(matches!(
        f.subjects.export(&lee, &subject),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        f.subjects.export(
            &admin,
            &Subject {
                name: " ".into(),
                username: None
            }
        ),
        Err(DomainError::Invalid { .. })
    ));
}
