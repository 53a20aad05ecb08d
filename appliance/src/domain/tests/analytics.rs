//! Analytics through the service: the caller's reach, the audit entry, the teams'
//! trackers (validated, audited, counted in summaries and analytics), and cached
//! numbers that follow corrections, names and erasure.

use super::*;
use crate::analytics::{Report, Table};
use crate::domain::analytics::AnalyticsQuery;
use crate::insights::Tracker;
use chrono::TimeZone;

/// The fixture's meetings start 1 ms after the epoch: the week around that day.
fn query() -> AnalyticsQuery {
    let day = chrono::Local
        .timestamp_millis_opt(1)
        .single()
        .expect("time")
        .date_naive();
    AnalyticsQuery {
        from: Some((day - chrono::Duration::days(3)).to_string()),
        to: Some((day + chrono::Duration::days(3)).to_string()),
        ..Default::default()
    }
}

fn table<'a>(r: &'a Report, id: &str) -> &'a Table {
    r.tables.iter().find(|t| t.id == id).expect("table")
}

fn cells(t: &Table, col: usize) -> Vec<String> {
    t.rows.iter().map(|r| r[col].text()).collect()
}

fn tracker(name: &str, phrases: &[&str]) -> Tracker {
    Tracker {
        name: name.into(),
        phrases: phrases.iter().map(|p| (*p).to_owned()).collect(),
    }
}

#[test]
fn a_report_covers_the_callers_teams_only_and_is_audited_without_content() {
    let f = fixture();
    f.meeting_saying("Ward 4", "Cardiology", "we had a complaint today", true);
    f.meeting_saying("Lab", "Pathology", "the reagent order is late", true);
    let cardiology = f.team_id("Cardiology");
    f.user("mia", "manager", std::slice::from_ref(&cardiology));
    f.user("val", "viewer", &[cardiology]);

    let all = f.analytics.report(&f.admin(), &query()).expect("report");
    assert_eq!(all.meetings, 2);
    assert_eq!(
        cells(table(&all, "recorded_by_room"), 0),
        ["Lab", "Ward 4"],
        "equal hours: by name"
    );
    let mine = f
        .analytics
        .report(&f.actor("mia"), &query())
        .expect("report");
    assert_eq!(mine.meetings, 1);
    assert_eq!(cells(table(&mine, "recorded_by_room"), 0), ["Ward 4"]);
    assert_eq!(cells(table(&mine, "recorded_by_team"), 0), ["Cardiology"]);
    // A viewer holds no analytics.read.
    assert!(matches!(
        f.analytics.report(&f.actor("val"), &query()),
        Err(DomainError::Forbidden(_))
    ));
    let entries = f.audited("analytics.read");
    assert_eq!(entries.len(), 2);
    let detail = entries[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("1 meeting(s)"), "{detail}");
    assert!(!detail.contains("complaint"), "{detail}");
}

#[test]
fn a_bad_range_or_table_is_named() {
    let f = fixture();
    let admin = f.admin();
    let invalid = |q: AnalyticsQuery| match f.analytics.report(&admin, &q) {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        invalid(AnalyticsQuery {
            from: Some("2026-13-01".into()),
            ..Default::default()
        }),
        "from"
    );
    assert_eq!(
        invalid(AnalyticsQuery {
            from: Some("2026-12-08".into()),
            to: Some("2026-12-01".into()),
            ..Default::default()
        }),
        "from"
    );
    assert_eq!(
        invalid(AnalyticsQuery {
            from: Some("2020-01-01".into()),
            to: Some("2026-01-01".into()),
            ..Default::default()
        }),
        "from"
    );
    let q = AnalyticsQuery {
        table: Some("secrets".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.analytics.table_csv(&admin, &q),
        Err(DomainError::Invalid { field: "table", .. })
    ));
    // With no range: this week and the eleven before, ending today.
    let r = f
        .analytics
        .report(&admin, &AnalyticsQuery::default())
        .expect("report");
    assert_eq!(table(&r, "recorded_by_week").rows.len(), 12);
}

#[test]
fn trackers_are_checked_audited_and_counted_in_summaries_and_analytics() {
    let f = fixture();
    let (_, _, m) = f.meeting_saying(
        "Ward 4",
        "Cardiology",
        "a complaint and another Complaint about an adverse event",
        true,
    );
    let m = m.to_string();
    let team = f.team_id("Cardiology");
    let admin = f.admin();
    let bad = |t: Vec<Tracker>| match f.analytics.set_trackers(&admin, &team, t) {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bad(vec![tracker("Issues", &["x"]), tracker("issues", &["y"])]),
        "trackers.name"
    );
    assert_eq!(bad(vec![tracker("Issues", &[" "])]), "trackers.phrases");
    assert_eq!(bad(vec![tracker("Issues", &["?!"])]), "trackers.phrases");
    assert_eq!(bad(vec![tracker("", &["x"])]), "trackers.name");
    f.user("mia", "manager", std::slice::from_ref(&team));
    assert!(matches!(
        f.analytics
            .set_trackers(&f.actor("mia"), &team, vec![tracker("Issues", &["x"])]),
        Err(DomainError::Forbidden(_))
    ));

    let view = f
        .analytics
        .set_trackers(
            &admin,
            &team,
            vec![
                tracker("Complaints", &["complaint", "adverse event"]),
                tracker("Competitor", &["Acme"]),
            ],
        )
        .expect("trackers");
    assert_eq!(view.trackers.len(), 2);
    let entries = f.audited("team.trackers");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].detail.as_deref(), Some("2 tracker(s)"));

    let s = f.understanding.summary(&admin, &m).expect("summary");
    let hits: Vec<(String, usize)> = s
        .insights
        .trackers
        .iter()
        .map(|t| (t.name.clone(), t.count))
        .collect();
    assert_eq!(
        hits,
        [("Complaints".to_owned(), 3), ("Competitor".to_owned(), 0)]
    );
    let r = f.analytics.report(&admin, &query()).expect("report");
    let t = table(&r, "tracker_hits_by_week");
    assert_eq!(cells(t, 2), ["Complaints"]);
    assert_eq!(cells(t, 3), ["3"]);
    // Trackers changed: the cached numbers are not used.
    f.analytics
        .set_trackers(&admin, &team, vec![tracker("Events", &["adverse event"])])
        .expect("trackers");
    let r = f.analytics.report(&admin, &query()).expect("report");
    let t = table(&r, "tracker_hits_by_week");
    assert_eq!(cells(t, 2), ["Events"]);
    assert_eq!(cells(t, 3), ["1"]);
}

#[test]
fn cached_numbers_follow_names_corrections_and_erasure() {
    let f = fixture();
    let (agent, key) = f.enroll_in("Ward 4", Some("Cardiology"));
    let id = MeetingId::random();
    let segments = vec![said(0, "channel 1", "one two three four")];
    f.stored(
        agent,
        &key,
        &f.envelope_of(agent, &key, id, 1, segments, true),
    );
    let m = id.to_string();
    let admin = f.admin();
    let speakers = |f: &Fixture| {
        let r = f.analytics.report(&admin, &query()).expect("report");
        cells(table(&r, "speaking_by_week"), 1)
    };
    assert_eq!(speakers(&f), ["Unnamed speakers"]);
    assert_eq!(f.analytics.cached(), 1);
    f.meetings
        .name_speaker(&admin, &m, "channel 1", "Dr. Kim")
        .expect("name");
    assert_eq!(speakers(&f), ["Dr. Kim"], "a new revision is read again");
    f.erasure.erase(&admin, &m, "request").expect("erase");
    assert!(speakers(&f).is_empty());
    assert_eq!(
        f.analytics.cached(),
        0,
        "nothing of an erased meeting is kept"
    );
}

#[test]
fn a_table_comes_as_csv_and_as_an_svg_chart() {
    let f = fixture();
    f.meeting_saying("Ward 4", "Cardiology", "one two three", true);
    let q = AnalyticsQuery {
        table: Some("recorded_by_room".into()),
        ..query()
    };
    let csv = f.analytics.table_csv(&f.admin(), &q).expect("csv");
    assert!(csv.file_name.starts_with("roomscribe-recorded_by_room-"));
    assert!(csv.file_name.ends_with(".csv"));
    let mut lines = csv.body.lines();
    assert_eq!(lines.next(), Some("Room,Team,Meetings,Hours"));
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("Ward 4,Cardiology,1,")),
        "{}",
        csv.body
    );
    let svg = f.analytics.table_svg(&f.admin(), &q).expect("svg");
    assert!(svg.body.starts_with("<svg "));
    assert!(svg.body.contains("Ward 4"));
    assert_eq!(f.audited("analytics.read").len(), 2);
}
