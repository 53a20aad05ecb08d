//! Retention through the real services with the injected clock: which policy wins,
//! holds keeping what is due, the preview for a moment equalling what the job then
//! erases, and the policies' validation.

use super::*;
use crate::domain::retention::{Policy, PolicyScope};
use crate::store::Reads;

const DAY: i64 = 86_400_000;

/// A meeting of `room` (created in `team`) with `meeting_type`; returns its id.
fn meeting(f: &Fixture, room: &str, team: &str, meeting_type: Option<&str>) -> String {
    let (_, _, id) = f.meeting_saying(room, team, "minutes of the meeting", true);
    let id = id.to_string();
    // The fixture's agent clock says 1 ms after the epoch: the meeting starts now.
    f.store
        .write(|tx| {
            let mut m = tx.meeting(&id)?.expect("stored");
            m.started_at_ms = f.clock.now_ms();
            m.clock_skew_ms = Some(0);
            tx.put_meeting(&m)
        })
        .expect("start now");
    if let Some(t) = meeting_type {
        f.meetings
            .update(
                &f.admin(),
                &id,
                &MeetingPatch {
                    meeting_type: Some(t.into()),
                    ..Default::default()
                },
            )
            .expect("type");
    }
    id
}

fn team(id: &str, days: Option<u32>) -> Policy {
    Policy {
        scope: PolicyScope::Team(id.into()),
        keep_days: days,
    }
}

fn kind(name: &str, days: Option<u32>) -> Policy {
    Policy {
        scope: PolicyScope::Type(name.into()),
        keep_days: days,
    }
}

fn stored(f: &Fixture, id: &str) -> bool {
    f.store.read(|tx| tx.meeting(id)).expect("read").is_some()
}

#[test]
fn the_strictest_policy_wins_holds_keep_and_the_job_erases_what_the_preview_said() {
    let f = fixture();
    f.search.start().expect("index opens");
    let admin = f.admin();
    f.meetings
        .set_types(&admin, &["Ward round".into(), "Board meeting".into()])
        .expect("types");
    let ward = meeting(&f, "Ward 4", "Cardiology", Some("Ward round"));
    let plain = meeting(&f, "Ward 5", "Cardiology", None);
    let board = meeting(&f, "Boardroom", "Oncology", Some("Board meeting"));
    let untouched = meeting(&f, "Clinic", "Oncology", None);
    let cardiology = f.team_id("Cardiology");

    // Validation, and who may.
    f.user("mo", "manager", std::slice::from_ref(&cardiology));
    assert!(matches!(
        f.retention
            .set_policies(&f.actor("mo"), &[team(&cardiology, Some(30))]),
        Err(DomainError::Forbidden(_))
    ));
    for bad in [
        vec![team(&cardiology, Some(0))],
        vec![team("no-such-team", Some(30))],
        vec![kind("Ward round", Some(7)), kind("WARD ROUND", Some(9))],
        vec![kind(" ", Some(7))],
    ] {
        assert!(
            matches!(
                f.retention.set_policies(&admin, &bad),
                Err(DomainError::Invalid {
                    field: "policies",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    let policies = vec![
        team(&cardiology, Some(30)),
        kind("ward round", Some(7)),
        kind("Board meeting", None),
    ];
    let set = f.retention.set_policies(&admin, &policies).expect("set");
    assert_eq!(f.retention.policies(&admin).expect("read"), set);
    // The JSON the API speaks.
    assert_eq!(
        serde_json::to_value(&set[0]).expect("json"),
        serde_json::json!({"scope": "team", "value": cardiology, "keep_days": 30})
    );
    f.erasure
        .hold(&admin, HoldTarget::Meeting, &plain, "Audit 2026")
        .expect("hold");

    // Nothing is due yet.
    assert_eq!(f.retention.preview(&admin, None).expect("preview"), vec![]);
    // A week and a day on: the ward round (7 days beat its team's 30).
    let now = f.clock.now_ms();
    let week = f
        .retention
        .preview(&admin, Some(now + 8 * DAY))
        .expect("preview");
    assert_eq!(
        week.iter()
            .map(|d| d.meeting_id.as_str())
            .collect::<Vec<_>>(),
        [ward.as_str()]
    );
    assert_eq!(week[0].policy, "type \"ward round\": 7 days");
    // A month on: the plain meeting too, but a hold keeps it.
    let month = f
        .retention
        .preview(&admin, Some(now + 31 * DAY))
        .expect("preview");
    assert_eq!(month.len(), 2);
    assert!(month[1].held && month[1].meeting_id == plain);

    // The job at the week's mark erases exactly what the preview listed.
    f.clock.advance_ms(8 * DAY);
    let listed = f.retention.preview(&admin, None).expect("preview");
    assert_eq!(f.retention.apply().expect("apply"), 1);
    for d in &listed {
        assert_eq!(stored(&f, &d.meeting_id), d.held, "{d:?}");
    }
    assert!(stored(&f, &plain) && stored(&f, &board) && stored(&f, &untouched));
    let entry = &f.audited("meeting.erase")[0];
    assert_eq!(entry.actor, "system");
    assert_eq!(
        entry.detail.as_deref(),
        Some("retention policy type \"ward round\": 7 days")
    );

    // The held meeting goes only once its hold is lifted.
    f.clock.advance_ms(30 * DAY);
    assert_eq!(f.retention.apply().expect("apply"), 0);
    assert!(stored(&f, &plain));
    f.erasure
        .lift(&admin, HoldTarget::Meeting, &plain)
        .expect("lift");
    assert_eq!(f.retention.apply().expect("apply"), 1);
    assert!(!stored(&f, &plain));

    // "For ever", and no policy at all, keep a meeting for ever.
    f.clock.advance_ms(3650 * DAY);
    assert_eq!(f.retention.apply().expect("apply"), 0);
    assert!(stored(&f, &board) && stored(&f, &untouched));
    assert!(f
        .monitoring
        .render_metrics()
        .contains("roomscribe_retention_erased_total 2"));
}
