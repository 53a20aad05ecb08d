//! A meeting's details: title, a type from the administrator's list, tags and
//! participants; who may set them, what is refused, and search filtering by them.

use super::*;
use crate::store::records::ParticipantRecord;

fn found(f: &Fixture, q: &str, meeting_type: Option<&str>, tag: Option<&str>) -> usize {
    f.search.flush();
    f.search
        .search(
            &f.admin(),
            &SearchRequest {
                q: q.into(),
                filters: crate::search::Filters {
                    meeting_type: meeting_type.map(Into::into),
                    tag: tag.map(Into::into),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect("search")
        .total
}

#[test]
fn details_are_checked_audited_and_searchable() {
    let f = fixture();
    f.search.start().expect("index");
    let (agent, key) = f.enroll_in("Ward 4", Some("Cardiology"));
    let meeting = MeetingId::random();
    let e = f.envelope_saying(
        agent,
        &key,
        meeting,
        1,
        0,
        false,
        "warfarin levels are fine",
    );
    f.stored(agent, &key, &e);
    let id = meeting.to_string();
    let cardiology = f.team_id("Cardiology");
    f.user("cara", "member", std::slice::from_ref(&cardiology));
    f.user("vera", "viewer", std::slice::from_ref(&cardiology));
    let (admin, cara, vera) = (f.admin(), f.actor("cara"), f.actor("vera"));

    // Only settings.manage defines the types; duplicates (any case) fold.
    assert!(matches!(
        f.meetings.set_types(&cara, &["Ward round".into()]),
        Err(DomainError::Forbidden(_))
    ));
    let types = f
        .meetings
        .set_types(
            &admin,
            &[
                "Ward round".into(),
                "Board meeting".into(),
                "ward ROUND".into(),
            ],
        )
        .expect("types");
    assert_eq!(types, ["Ward round", "Board meeting"]);
    assert_eq!(f.meetings.types(&vera).expect("readers see them"), types);

    let patch = MeetingPatch {
        title: Some("  Thursday ward round ".into()),
        meeting_type: Some("WARD round".into()),
        tags: Some(vec!["Warfarin".into(), "warfarin".into(), "audit".into()]),
        participants: Some(vec![
            ParticipantRecord {
                name: "Dr. Kim".into(),
                username: Some("cara".into()),
            },
            ParticipantRecord {
                name: "Nurse Lee".into(),
                username: None,
            },
        ]),
    };
    assert!(matches!(
        f.meetings.update(&vera, &id, &patch),
        Err(DomainError::Forbidden(_))
    ));
    let v = f.meetings.update(&cara, &id, &patch).expect("update");
    assert_eq!(v.title, "Thursday ward round");
    assert_eq!(v.meeting_type.as_deref(), Some("Ward round"));
    assert_eq!(v.tags, ["Warfarin", "audit"]);
    assert_eq!(v.participants.len(), 2);
    let edits = f.audited("meeting.edit");
    assert_eq!(
        edits[0].detail.as_deref(),
        Some("title, type, tags, participants")
    );

    // Searchable by type and tag at once, any case.
    assert_eq!(found(&f, "warfarin", Some("ward round"), None), 1);
    assert_eq!(found(&f, "warfarin", None, Some("AUDIT")), 1);
    assert_eq!(found(&f, "warfarin", Some("Board meeting"), None), 0);
    assert_eq!(found(&f, "warfarin", None, Some("billing")), 0);

    // Bad input is named and changes nothing.
    for (bad, field) in [
        (
            MeetingPatch {
                meeting_type: Some("Lunch".into()),
                ..Default::default()
            },
            "type",
        ),
        (
            MeetingPatch {
                title: Some(" ".into()),
                ..Default::default()
            },
            "title",
        ),
        (
            MeetingPatch {
                tags: Some(vec!["x".repeat(41)]),
                ..Default::default()
            },
            "tags",
        ),
        (
            MeetingPatch {
                tags: Some((0..21).map(|i| i.to_string()).collect()),
                ..Default::default()
            },
            "tags",
        ),
        (
            MeetingPatch {
                participants: Some(vec![ParticipantRecord {
                    name: "Ghost".into(),
                    username: Some("nobody".into()),
                }]),
                ..Default::default()
            },
            "participants",
        ),
        (MeetingPatch::default(), "title"),
    ] {
        match f.meetings.update(&cara, &id, &bad) {
            Err(DomainError::Invalid { field: got, .. }) => assert_eq!(got, field, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // An editor cannot probe which usernames exist beyond the meeting's team: a user
    // outside it is refused in the very words used for one who does not exist. One
    // who manages users may link anyone.
    f.user("otto", "member", &[]);
    let link = |who: &str| MeetingPatch {
        participants: Some(vec![ParticipantRecord {
            name: "Someone".into(),
            username: Some(who.into()),
        }]),
        ..Default::default()
    };
    let refusal = |who: &str| match f.meetings.update(&cara, &id, &link(who)) {
        Err(e @ DomainError::Invalid { .. }) => e.to_string().replace(who, "?"),
        other => panic!("{who}: {other:?}"),
    };
    assert_eq!(refusal("otto"), refusal("nobody"));
    f.meetings
        .update(&cara, &id, &link("cara"))
        .expect("one links oneself");
    f.meetings
        .update(&admin, &id, &link("otto"))
        .expect("a user manager links anyone");

    // A type that left the list stays on the meetings that have it, and may be sent
    // back unchanged with another change.
    f.meetings
        .set_types(&admin, &["Board meeting".into()])
        .expect("types");
    let v = f
        .meetings
        .update(
            &cara,
            &id,
            &MeetingPatch {
                title: Some("Renamed".into()),
                meeting_type: Some("Ward round".into()),
                ..Default::default()
            },
        )
        .expect("an unchanged type is kept");
    assert_eq!(v.meeting_type.as_deref(), Some("Ward round"));
    // Clearing the type.
    let v = f
        .meetings
        .update(
            &cara,
            &id,
            &MeetingPatch {
                meeting_type: Some(String::new()),
                ..Default::default()
            },
        )
        .expect("clear");
    assert_eq!(v.meeting_type, None);
    assert_eq!(found(&f, "warfarin", Some("ward round"), None), 0);
    assert_eq!(f.audited("settings.meeting_types").len(), 2);
}
