//! Many meetings' facts as the analytics tables over a range of days. Weeks start
//! on Monday and are named by that day (ISO 8601). A meeting counts in the range by
//! its day; an action item's status change by the day it was set (so an item from
//! an earlier meeting closed this week counts as closed this week).

use super::facts::{MeetingFacts, BANDS};
use super::{Cell, ChartSpec, Series, Unit};
use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;
use std::collections::BTreeMap;

/// Days from `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The Monday of `d`'s week.
pub fn week_of(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

impl Range {
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }

    /// The Mondays of the weeks the range touches.
    pub fn weeks(&self) -> Vec<NaiveDate> {
        let mut w = week_of(self.from);
        let mut out = vec![];
        while w <= self.to {
            out.push(w);
            w += Duration::days(7);
        }
        out
    }
}

/// A table of numbers, how to chart it, and (by `id`) where its CSV and SVG are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub id: &'static str,
    pub title: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    pub chart: ChartSpec,
    /// The chart drawn ([`super::chart::svg`]), when asked for.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub svg: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub range: Range,
    /// Meetings in the range, and their hours.
    pub meetings: usize,
    pub hours: f64,
    pub tables: Vec<Table>,
}

/// The ids of the tables, in the order a report has them.
pub const TABLES: [&str; 7] = [
    "recorded_by_week",
    "recorded_by_room",
    "recorded_by_team",
    "speaking_by_week",
    "tracker_hits_by_week",
    "action_items_by_week",
    "confidence_by_room",
];

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn num(n: f64) -> Cell {
    Cell::Number(n)
}

fn count(n: usize) -> Cell {
    Cell::Count(n as u64)
}

/// Rounded for people: hours and shares to three decimals.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn hours(f: &MeetingFacts) -> f64 {
    f.meta.duration_s.max(0.0) / 3600.0
}

/// The tables for `range` from the facts of the meetings in the caller's reach
/// (those outside the range too: their items may have been closed in it).
/// `team_names` names the teams by id.
pub fn report(
    facts: &[&MeetingFacts],
    range: Range,
    team_names: &BTreeMap<String, String>,
) -> Report {
    let inside: Vec<&MeetingFacts> = facts
        .iter()
        .copied()
        .filter(|f| range.contains(f.meta.day))
        .collect();
    let weeks = range.weeks();
    let week_labels: Vec<String> = weeks.iter().map(ToString::to_string).collect();
    let team = |f: &MeetingFacts| {
        f.meta.team_id.as_ref().map_or_else(
            || "(no team)".to_owned(),
            |t| team_names.get(t).cloned().unwrap_or_else(|| t.clone()),
        )
    };
    let by_week = |day: NaiveDate| week_of(day);
    let over_weeks = |unit, series, stacked, category: Vec<usize>| ChartSpec {
        stacked,
        category,
        series,
        unit,
        categories: week_labels.clone(),
    };

    // Meetings and hours per week, room and team.
    let mut weekly: BTreeMap<NaiveDate, (usize, f64)> =
        weeks.iter().map(|w| (*w, (0, 0.0))).collect();
    let mut rooms: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    let mut teams: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for f in &inside {
        let h = hours(f);
        for e in [
            weekly.entry(by_week(f.meta.day)).or_default(),
            rooms.entry((f.meta.room.clone(), team(f))).or_default(),
            teams.entry(team(f)).or_default(),
        ] {
            e.0 += 1;
            e.1 += h;
        }
    }
    let recorded_by_week = Table {
        id: TABLES[0],
        title: "Hours recorded per week",
        columns: vec!["Week", "Meetings", "Hours"],
        rows: weekly
            .iter()
            .map(|(w, (n, h))| vec![text(w.to_string()), count(*n), num(round3(*h))])
            .collect(),
        chart: over_weeks(Unit::Hours, Series::Columns(vec![2]), false, vec![0]),
        svg: String::new(),
    };
    let mut room_rows: Vec<_> = rooms.into_iter().collect();
    room_rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1).then(a.0.cmp(&b.0)));
    let recorded_by_room = Table {
        id: TABLES[1],
        title: "Hours recorded per room",
        columns: vec!["Room", "Team", "Meetings", "Hours"],
        rows: room_rows
            .into_iter()
            .map(|((room, team), (n, h))| vec![text(room), text(team), count(n), num(round3(h))])
            .collect(),
        chart: ChartSpec {
            stacked: false,
            category: vec![0],
            series: Series::Columns(vec![3]),
            unit: Unit::Hours,
            categories: vec![],
        },
        svg: String::new(),
    };
    let mut team_rows: Vec<_> = teams.into_iter().collect();
    team_rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1).then(a.0.cmp(&b.0)));
    let recorded_by_team = Table {
        id: TABLES[2],
        title: "Hours recorded per team",
        columns: vec!["Team", "Meetings", "Hours"],
        rows: team_rows
            .into_iter()
            .map(|(team, (n, h))| vec![text(team), count(n), num(round3(h))])
            .collect(),
        chart: ChartSpec {
            stacked: false,
            category: vec![0],
            series: Series::Columns(vec![2]),
            unit: Unit::Hours,
            categories: vec![],
        },
        svg: String::new(),
    };

    // Speaking time per person and week, and their share of the week's speech.
    let mut speaking: BTreeMap<NaiveDate, BTreeMap<String, f64>> = BTreeMap::new();
    for f in &inside {
        let week = speaking.entry(by_week(f.meta.day)).or_default();
        for (who, s) in &f.speaking {
            *week.entry(who.clone()).or_default() += s;
        }
    }
    let mut speaking_rows = vec![];
    for (w, people) in speaking {
        let total: f64 = people.values().sum();
        let mut people: Vec<_> = people.into_iter().filter(|(_, s)| *s > 0.0).collect();
        people.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (who, s) in people {
            speaking_rows.push(vec![
                text(w.to_string()),
                text(who),
                num(round3(s / 3600.0)),
                num(round3(s / total)),
            ]);
        }
    }
    let speaking_by_week = Table {
        id: TABLES[3],
        title: "Share of speaking time per person and week",
        columns: vec!["Week", "Speaker", "Hours", "Share"],
        rows: speaking_rows,
        chart: over_weeks(
            Unit::Share,
            Series::Pivot {
                by: vec![1],
                value: 3,
            },
            true,
            vec![0],
        ),
        svg: String::new(),
    };

    // Trackers' hits per week.
    let mut hits: BTreeMap<(NaiveDate, String, String), usize> = BTreeMap::new();
    for f in &inside {
        for (tracker, n) in f.tracker_hits.iter().filter(|(_, n)| **n > 0) {
            *hits
                .entry((by_week(f.meta.day), team(f), tracker.clone()))
                .or_default() += n;
        }
    }
    let tracker_hits_by_week = Table {
        id: TABLES[4],
        title: "Keyword tracker hits per week",
        columns: vec!["Week", "Team", "Tracker", "Hits"],
        rows: hits
            .into_iter()
            .map(|((w, team, tracker), n)| {
                vec![text(w.to_string()), text(team), text(tracker), count(n)]
            })
            .collect(),
        chart: over_weeks(
            Unit::Count,
            Series::Pivot {
                by: vec![2, 1],
                value: 3,
            },
            false,
            vec![0],
        ),
        svg: String::new(),
    };

    // Action items: found in the week's meetings (and of those, still open), and
    // marked done or dismissed in the week.
    let mut items: BTreeMap<NaiveDate, [usize; 4]> = weeks.iter().map(|w| (*w, [0; 4])).collect();
    for f in &inside {
        let e = items.entry(by_week(f.meta.day)).or_default();
        e[0] += f.items.len();
        e[3] += f.items.iter().filter(|i| i.status == "open").count();
    }
    for f in facts {
        for i in &f.items {
            let Some(day) = i.changed.filter(|d| range.contains(*d)) else {
                continue;
            };
            let e = items.entry(by_week(day)).or_default();
            match i.status.as_str() {
                "done" => e[1] += 1,
                "dismissed" => e[2] += 1,
                _ => {}
            }
        }
    }
    let action_items_by_week = Table {
        id: TABLES[5],
        title: "Action items found and closed per week",
        columns: vec!["Week", "Found", "Done", "Dismissed", "Still open"],
        rows: items
            .into_iter()
            .map(|(w, [found, done, dismissed, open])| {
                vec![
                    text(w.to_string()),
                    count(found),
                    count(done),
                    count(dismissed),
                    count(open),
                ]
            })
            .collect(),
        chart: over_weeks(Unit::Count, Series::Columns(vec![1, 2, 3]), false, vec![0]),
        svg: String::new(),
    };

    // The engines' confidence per room: a bad microphone shows as low bands.
    let mut quality: BTreeMap<(String, String), super::facts::Quality> = BTreeMap::new();
    for f in &inside {
        for (engine, q) in &f.quality {
            let e = quality
                .entry((f.meta.room.clone(), engine.clone()))
                .or_default();
            e.segments += q.segments;
            e.confidence_sum += q.confidence_sum;
            for (b, n) in e.bands.iter_mut().zip(q.bands) {
                *b += n;
            }
        }
    }
    let confidence_by_room = Table {
        id: TABLES[6],
        title: "Recognition confidence per room and engine",
        columns: vec![
            "Room",
            "Engine",
            "Segments",
            "Mean confidence",
            "0.9 and above",
            "0.7 to 0.9",
            "0.5 to 0.7",
            "Below 0.5",
        ],
        rows: quality
            .into_iter()
            .filter(|(_, q)| q.segments > 0)
            .map(|((room, engine), q)| {
                let n = q.segments as f64;
                let mut row = vec![
                    text(room),
                    text(engine),
                    count(q.segments),
                    num(round3(q.confidence_sum / n)),
                ];
                row.extend(q.bands.iter().map(|b| num(round3(*b as f64 / n))));
                row
            })
            .collect(),
        chart: ChartSpec {
            stacked: true,
            category: vec![0, 1],
            series: Series::Columns(vec![4, 5, 6, 7]),
            unit: Unit::Share,
            categories: vec![],
        },
        svg: String::new(),
    };
    debug_assert_eq!(BANDS.len() + 1, 4);

    Report {
        range,
        meetings: inside.len(),
        hours: round3(inside.iter().map(|f| hours(f)).sum()),
        tables: vec![
            recorded_by_week,
            recorded_by_room,
            recorded_by_team,
            speaking_by_week,
            tracker_hits_by_week,
            action_items_by_week,
            confidence_by_room,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::super::facts::{ItemFact, Meta, Quality};
    use super::*;

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    fn meeting(day: NaiveDate, room: &str, team: Option<&str>, minutes: f64) -> MeetingFacts {
        MeetingFacts {
            meta: Meta {
                meeting_id: format!("{room}-{day}"),
                day,
                room: room.into(),
                team_id: team.map(Into::into),
                duration_s: minutes * 60.0,
            },
            speaking: BTreeMap::new(),
            tracker_hits: BTreeMap::new(),
            items: vec![],
            quality: BTreeMap::new(),
        }
    }

    fn table<'a>(r: &'a Report, id: &str) -> &'a Table {
        r.tables.iter().find(|t| t.id == id).unwrap()
    }

    fn rows(t: &Table) -> Vec<Vec<String>> {
        t.rows
            .iter()
            .map(|r| r.iter().map(Cell::text).collect())
            .collect()
    }

    // Mon 2026-11-30 … Sun 2026-12-13: two weeks.
    const RANGE: Range = Range {
        from: match NaiveDate::from_ymd_opt(2026, 11, 30) {
            Some(d) => d,
            None => NaiveDate::MIN,
        },
        to: match NaiveDate::from_ymd_opt(2026, 12, 13) {
            Some(d) => d,
            None => NaiveDate::MIN,
        },
    };

    fn names() -> BTreeMap<String, String> {
        [("t1".to_owned(), "Cardiology".to_owned())].into()
    }

    #[test]
    fn weeks_start_on_monday_and_cover_the_range() {
        assert_eq!(week_of(day(12, 6)), day(11, 30), "a Sunday");
        assert_eq!(week_of(day(12, 7)), day(12, 7), "a Monday");
        let r = Range {
            from: day(12, 2),
            to: day(12, 7),
        };
        assert_eq!(r.weeks(), [day(11, 30), day(12, 7)]);
    }

    #[test]
    fn hours_per_week_room_and_team_count_only_the_range() {
        let facts = [
            meeting(day(11, 30), "Ward", Some("t1"), 90.0),
            meeting(day(12, 9), "Ward", Some("t1"), 30.0),
            meeting(day(12, 9), "Clinic", None, 60.0),
            // Before the range.
            meeting(day(11, 29), "Ward", Some("t1"), 600.0),
        ];
        let refs: Vec<&MeetingFacts> = facts.iter().collect();
        let r = report(&refs, RANGE, &names());
        assert_eq!(r.meetings, 3);
        assert_eq!(r.hours, 3.0);
        assert_eq!(
            rows(table(&r, "recorded_by_week")),
            [["2026-11-30", "1", "1.500"], ["2026-12-07", "2", "1.500"]]
        );
        assert_eq!(
            rows(table(&r, "recorded_by_room")),
            [
                ["Ward", "Cardiology", "2", "2"],
                ["Clinic", "(no team)", "1", "1"]
            ]
        );
        assert_eq!(
            rows(table(&r, "recorded_by_team")),
            [["Cardiology", "2", "2"], ["(no team)", "1", "1"]]
        );
    }

    #[test]
    fn a_week_without_meetings_is_a_row_of_zeros() {
        let facts = [meeting(day(12, 1), "Ward", None, 60.0)];
        let r = report(&[&facts[0]], RANGE, &names());
        assert_eq!(
            rows(table(&r, "recorded_by_week"))[1],
            ["2026-12-07", "0", "0"]
        );
    }

    #[test]
    fn speaking_shares_add_up_to_one_per_week() {
        let mut a = meeting(day(12, 1), "Ward", None, 60.0);
        a.speaking = [("Ana".into(), 1800.0), ("Unnamed speakers".into(), 600.0)].into();
        let mut b = meeting(day(12, 2), "Ward", None, 60.0);
        b.speaking = [("Ben".into(), 1200.0)].into();
        let r = report(&[&a, &b], RANGE, &names());
        let t = table(&r, "speaking_by_week");
        assert_eq!(
            rows(t),
            [
                ["2026-11-30", "Ana", "0.500", "0.500"],
                ["2026-11-30", "Ben", "0.333", "0.333"],
                ["2026-11-30", "Unnamed speakers", "0.167", "0.167"],
            ]
        );
        let sum: f64 = t.rows.iter().map(|r| r[3].number()).sum();
        assert!((sum - 1.0).abs() < 0.002);
    }

    #[test]
    fn tracker_hits_are_per_week_team_and_tracker() {
        let mut a = meeting(day(12, 1), "Ward", Some("t1"), 10.0);
        a.tracker_hits = [("Complaints".into(), 2), ("Competitor".into(), 0)].into();
        let mut b = meeting(day(12, 8), "Ward", Some("t1"), 10.0);
        b.tracker_hits = [("Complaints".into(), 1)].into();
        let r = report(&[&a, &b], RANGE, &names());
        assert_eq!(
            rows(table(&r, "tracker_hits_by_week")),
            [
                ["2026-11-30", "Cardiology", "Complaints", "2"],
                ["2026-12-07", "Cardiology", "Complaints", "1"],
            ]
        );
    }

    #[test]
    fn items_are_found_in_their_meetings_week_and_closed_in_the_week_they_were_set() {
        let mut old = meeting(day(11, 20), "Ward", None, 10.0);
        old.items = vec![ItemFact {
            status: "done".into(),
            changed: Some(day(12, 8)),
        }];
        let mut a = meeting(day(12, 1), "Ward", None, 10.0);
        a.items = vec![
            ItemFact {
                status: "open".into(),
                changed: None,
            },
            ItemFact {
                status: "dismissed".into(),
                changed: Some(day(12, 2)),
            },
            // Set after the range: not counted as closed in it.
            ItemFact {
                status: "done".into(),
                changed: Some(day(12, 20)),
            },
        ];
        let r = report(&[&old, &a], RANGE, &names());
        assert_eq!(
            rows(table(&r, "action_items_by_week")),
            [
                ["2026-11-30", "3", "0", "1", "1"],
                ["2026-12-07", "0", "1", "0", "0"]
            ]
        );
    }

    #[test]
    fn confidence_bands_per_room_and_engine_are_shares() {
        let mut a = meeting(day(12, 1), "Ward", None, 10.0);
        a.quality = [(
            "vosk".into(),
            Quality {
                segments: 4,
                confidence_sum: 2.4,
                bands: [1, 1, 0, 2],
            },
        )]
        .into();
        let r = report(&[&a], RANGE, &names());
        assert_eq!(
            rows(table(&r, "confidence_by_room")),
            [["Ward", "vosk", "4", "0.600", "0.250", "0.250", "0", "0.500"]]
        );
    }

    #[test]
    fn every_table_has_its_id_in_order() {
        let r = report(&[], RANGE, &names());
        assert_eq!(r.tables.iter().map(|t| t.id).collect::<Vec<_>>(), TABLES);
        for t in &r.tables {
            for row in &t.rows {
                assert_eq!(row.len(), t.columns.len(), "{}", t.id);
            }
        }
    }
}
