//! A meeting understood through the service: the demo meeting's summary, action
//! items and insights, read in the caller's reach and audited as a view; statuses
//! kept, validated and audited without content; a correction changing the items.

use super::*;
use crate::domain::understanding::ItemQuery;
use chrono::{Datelike, TimeZone};

const DEMO: [(&str, &str); 8] = [
    (
        "channel 1",
        "good morning everyone let's start the weekly team meeting",
    ),
    (
        "channel 2",
        "could you share how the new discharge checklist is working",
    ),
    (
        "channel 1",
        "the checklist is now used on both floors and the nurses find it helpful",
    ),
    (
        "channel 2",
        "we still need the pharmacy to review the medication section by friday",
    ),
    (
        "channel 1",
        "i will ask the pharmacy team and send everyone an update tomorrow",
    ),
    (
        "channel 2",
        "please add the holiday staffing plan to next week's agenda",
    ),
    (
        "channel 1",
        "are there any other questions before we finish",
    ),
    ("channel 2", "thank you all the meeting is closed"),
];

/// The demo meeting, ended, with channel 1 named Dr. Kim; its id and team.
fn demo(f: &Fixture) -> (String, String) {
    f.search.start().expect("index opens");
    let (agent, key) = f.enroll_in("Ward 4", Some("Cardiology"));
    let id = MeetingId::random();
    let segments = DEMO
        .iter()
        .enumerate()
        .map(|(i, (who, text))| said(i as u64, who, text))
        .collect();
    f.stored(
        agent,
        &key,
        &f.envelope_of(agent, &key, id, 1, segments, true),
    );
    let meeting = id.to_string();
    let view = f
        .meetings
        .name_speaker(&f.admin(), &meeting, "channel 1", "Dr. Kim")
        .expect("name");
    (meeting, view.team_id.unwrap_or_default())
}

/// The day the fixture's meetings were held (they start 1 ms after the epoch), in
/// this machine's time zone.
fn day() -> chrono::NaiveDate {
    chrono::Local
        .timestamp_millis_opt(1)
        .single()
        .expect("time")
        .date_naive()
}

#[test]
fn the_demo_meeting_is_summed_up_with_its_action_items_and_the_read_is_audited() {
    let f = fixture();
    let (m, _) = demo(&f);
    let views = f.audited("meeting.view").len();
    let s = f.understanding.summary(&f.admin(), &m).expect("summary");
    let audited = f.audited("meeting.view");
    assert_eq!(audited.len(), views + 1);
    assert_eq!(audited[0].detail.as_deref(), Some("summary"));

    let items: Vec<(&str, Option<&str>)> = s
        .action_items
        .iter()
        .map(|i| (i.item.text.as_str(), i.item.owner.as_deref()))
        .collect();
    assert_eq!(
        items,
        [
            (
                "The pharmacy to review the medication section by friday",
                Some("pharmacy")
            ),
            (
                "Ask the pharmacy team and send everyone an update tomorrow",
                Some("Dr. Kim")
            ),
            ("Add the holiday staffing plan to next week's agenda", None),
        ]
    );
    assert_eq!(
        s.action_items[1].item.due,
        Some(day() + chrono::Duration::days(1))
    );
    assert_eq!(s.action_items[1].item.at, 40.0);
    assert!(s.action_items.iter().all(|i| i.status == "open"));
    assert!(s.action_items[0].item.due.is_some_and(|d| d > day()));

    assert_eq!(s.sentences.len(), 3, "{:?}", s.sentences);
    assert!(s.summary.contains("pharmacy"));
    assert_eq!(s.generated_by, crate::domain::understanding::EXTRACTIVE);
    let shares: Vec<&String> = s.insights.speaking_share.keys().collect();
    assert_eq!(shares, ["Dr. Kim", "channel 2"]);
    assert_eq!(s.insights.question_count, 2, "{:?}", s.insights.questions);
}

#[test]
fn a_status_is_kept_validated_audited_without_content_and_needs_edit_rights() {
    let f = fixture();
    let (m, team) = demo(&f);
    let admin = f.admin();
    let done = f
        .understanding
        .set_status(&admin, &m, "s4-0", "done")
        .expect("done");
    assert_eq!(done.status, "done");
    assert_eq!(done.status_by.as_deref(), Some(admin.username.as_str()));
    let s = f.understanding.summary(&admin, &m).expect("summary");
    let status: Vec<&str> = s.action_items.iter().map(|i| i.status.as_str()).collect();
    assert_eq!(status, ["open", "done", "open"]);
    let audited = f.audited("action_item.update");
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].detail.as_deref(), Some("s4-0: done"));

    assert!(matches!(
        f.understanding.set_status(&admin, &m, "s4-0", "finished"),
        Err(DomainError::Invalid {
            field: "status",
            ..
        })
    ));
    assert!(matches!(
        f.understanding.set_status(&admin, &m, "s2-0", "done"),
        Err(DomainError::NotFound(_))
    ));
    f.user("vi", "viewer", std::slice::from_ref(&team));
    let vi = f.actor("vi");
    assert!(
        f.understanding.summary(&vi, &m).is_ok(),
        "a viewer reads it"
    );
    assert!(matches!(
        f.understanding.set_status(&vi, &m, "s4-0", "dismissed"),
        Err(DomainError::Forbidden(_))
    ));
    f.user("out", "member", &[]);
    assert!(matches!(
        f.understanding.summary(&f.actor("out"), &m),
        Err(DomainError::OutOfScope(_))
    ));
    assert_eq!(f.audited("action_item.update").len(), 1);
}

#[test]
fn a_correction_changes_the_action_items_at_once() {
    let f = fixture();
    let (m, _) = demo(&f);
    f.corrections
        .correct(
            &f.admin(),
            &m,
            4,
            &crate::domain::SegmentPatch {
                text: Some("i will call the pharmacy on monday".into()),
                speaker: None,
                expected_version: 0,
            },
        )
        .expect("correct");
    let s = f.understanding.summary(&f.admin(), &m).expect("summary");
    let item = s
        .action_items
        .iter()
        .find(|i| i.item.id == "s4-0")
        .expect("item");
    assert_eq!(item.item.text, "Call the pharmacy on monday");
    assert_eq!(
        item.item.due.map(|d| d.weekday()),
        Some(chrono::Weekday::Mon)
    );
}

#[test]
fn statuses_set_at_the_same_moment_are_both_kept() {
    let f = fixture();
    let (m, _) = demo(&f);
    let admin = f.admin();
    for _ in 0..5 {
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for (item, status) in [("s3-0", "done"), ("s5-0", "dismissed")] {
                let (start, admin, m, f) = (&start, &admin, &m, &f);
                s.spawn(move || {
                    start.wait();
                    f.understanding
                        .set_status(admin, m, item, status)
                        .expect("status");
                });
            }
        });
        let s = f.understanding.summary(&admin, &m).expect("summary");
        let status: Vec<&str> = s.action_items.iter().map(|i| i.status.as_str()).collect();
        assert_eq!(status, ["done", "open", "dismissed"]);
        for item in ["s3-0", "s5-0"] {
            f.understanding
                .set_status(&admin, &m, item, "open")
                .expect("reopen");
        }
    }
}

#[test]
fn action_items_across_meetings_follow_the_filters_and_the_callers_reach() {
    let f = fixture();
    let (m, team) = demo(&f);
    let admin = f.admin();
    f.understanding
        .set_status(&admin, &m, "s5-0", "done")
        .expect("done");
    // A second meeting, of another team.
    let (_, _, other) = f.meeting_saying(
        "Lab",
        "Pathology",
        "i will order more reagent by monday",
        true,
    );
    let all = |q: ItemQuery| f.understanding.action_items(&admin, &q).expect("items");

    let rows = all(ItemQuery::default());
    assert_eq!(rows.len(), 4, "{rows:?}");
    // Due soonest first: tomorrow's (the update) before Friday's and Monday's.
    assert!(rows
        .windows(2)
        .all(|w| w[0].item.item.due <= w[1].item.item.due || w[1].item.item.due.is_none()));
    let open = all(ItemQuery {
        status: Some("open".into()),
        ..Default::default()
    });
    assert_eq!(open.len(), 3);
    let kim = all(ItemQuery {
        owner: Some("kim".into()),
        ..Default::default()
    });
    assert_eq!(kim.len(), 1);
    assert_eq!(kim[0].item.item.owner.as_deref(), Some("Dr. Kim"));
    assert_eq!(kim[0].meeting_id, m);
    let cardiology = all(ItemQuery {
        team: Some(team.clone()),
        ..Default::default()
    });
    assert_eq!(cardiology.len(), 3);
    assert!(matches!(
        f.understanding.action_items(
            &admin,
            &ItemQuery {
                status: Some("late".into()),
                ..Default::default()
            }
        ),
        Err(DomainError::Invalid {
            field: "status",
            ..
        })
    ));

    // Someone in Cardiology sees its three, not Pathology's; the read is audited
    // without content.
    f.user("cy", "viewer", std::slice::from_ref(&team));
    let cy = f
        .understanding
        .action_items(&f.actor("cy"), &ItemQuery::default())
        .expect("items");
    assert_eq!(cy.len(), 3);
    assert!(cy.iter().all(|r| r.meeting_id != other.to_string()));
    let audited = f.audited("action_items.read");
    assert_eq!(audited[0].detail.as_deref(), Some("1 meeting(s)"));
    assert!(audited
        .iter()
        .all(|e| !e.detail.as_deref().unwrap_or_default().contains("pharmacy")));
}

#[test]
fn exports_carry_the_summary_and_items_marked_generated_with_their_status() {
    let f = fixture();
    let (m, _) = demo(&f);
    let admin = f.admin();
    f.understanding
        .set_status(&admin, &m, "s5-0", "done")
        .expect("done");
    let req = crate::domain::ExportRequest::parse("txt", false).expect("txt");
    let file = f.meetings.export(&admin, &m, req).expect("export");
    let text = String::from_utf8(file.body).expect("utf-8");
    let tomorrow = day() + chrono::Duration::days(1);
    assert!(
        text.contains("Summary — generated (extractive summary (Roomscribe, on this appliance)); check it against the transcript"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "[00:40] Ask the pharmacy team and send everyone an update tomorrow · owner Dr. Kim · due {tomorrow} · open"
        )),
        "{text}"
    );
    assert!(
        text.contains("Add the holiday staffing plan to next week's agenda")
            && text.contains(" · done\n"),
        "{text}"
    );
    // The JSON says what is generated, apart from what was said.
    let req = crate::domain::ExportRequest::parse("json", false).expect("json");
    let file = f.meetings.export(&admin, &m, req).expect("export");
    let v: serde_json::Value = serde_json::from_slice(&file.body).expect("json");
    assert_eq!(v["generated"]["generated"], true);
    assert_eq!(
        v["generated"]["action_items"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn sentiment_is_shown_only_when_the_appliance_is_set_to_and_says_its_method() {
    let f = fixture();
    let (m, _) = demo(&f);
    let s = f.understanding.summary(&f.admin(), &m).expect("summary");
    assert!(s.insights.sentiment.is_none(), "off by default");
    let json = serde_json::to_value(&s).expect("json");
    assert!(json["insights"].get("sentiment").is_none());

    let f = fixture_with(
        |c| c.insights.sentiment = true,
        Passwords::for_tests(std::time::Duration::ZERO),
    );
    let (m, _) = demo(&f);
    let s = f.understanding.summary(&f.admin(), &m).expect("summary");
    let t = s.insights.sentiment.expect("on");
    assert_eq!(t.method, "VADER lexicon, English segments only");
    assert_eq!(t.segments.len(), DEMO.len());
    // "the nurses find it helpful" reads positive; "thank you all" too.
    assert!(t.segments[2].label == "positive", "{:?}", t.segments[2]);
    assert!(t.by_speaker.contains_key("Dr. Kim"));
}
