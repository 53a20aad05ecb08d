//! Analytics across the meetings in the caller's reach (`analytics.read`, scoped to
//! their teams like meetings), and the teams' keyword trackers they count.
//!
//! Each meeting's numbers ([`crate::analytics::facts`]) are computed from its
//! stored transcript and kept in memory by meeting, beside the meeting's revision,
//! segment count and its team's trackers: a meeting read once is not decrypted
//! again until it changes. The cache holds numbers and speaker names, never text,
//! and forgets meetings that no longer exist (erased) at the next report.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::meetings::Meetings;
use super::understanding::{day_of, items_of};
use super::views::{MeetingView, TeamView, TranscriptView};
use super::{Actor, DomainError, Permission, Result};
use crate::analytics::facts::{self, ItemFact, Meta, Scored, UNNAMED};
use crate::analytics::report::{week_of, TABLES};
use crate::analytics::{chart, csv, MeetingFacts, Range, Report, Table};
use crate::insights::{text::tokens, Tracker, Utterance};
use crate::store::{Reads, Store};
use chrono::{Duration, NaiveDate};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

pub const MAX_TRACKERS: usize = 20;
pub const MAX_PHRASES: usize = 20;
pub const MAX_NAME_CHARS: usize = 60;
pub const MAX_PHRASE_CHARS: usize = 80;
/// The longest range a report covers.
pub const MAX_DAYS: i64 = 731;
/// Weeks a report covers when no range is given (this week and the eleven before).
pub const DEFAULT_WEEKS: i64 = 12;

/// Which meetings and days to report on.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// First day, `YYYY-MM-DD` (default: the Monday eleven weeks before this week's).
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today).
    pub to: Option<String>,
    /// A team's id.
    pub team: Option<String>,
    /// A room's id.
    pub room: Option<String>,
    /// One table's id (for its CSV or chart).
    pub table: Option<String>,
    /// Each table's chart drawn in the report as well (`svg`), as the console shows
    /// them: one request, one audit entry.
    pub charts: Option<bool>,
}

/// A table as a file: its name and its bytes.
#[derive(Debug, Clone)]
pub struct TableFile {
    pub file_name: String,
    pub body: String,
}

/// What a meeting's cached numbers were computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    revision: u64,
    segments: u64,
    live: bool,
    trackers: u64,
}

pub struct Analytics {
    store: Arc<Store>,
    meetings: Arc<Meetings>,
    audit: Arc<AuditLog>,
    clock: SharedClock,
    cache: Mutex<HashMap<String, (Key, Arc<MeetingFacts>)>>,
}

fn trackers_hash(t: &[Tracker]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

fn day(field: &'static str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| DomainError::invalid(field, format!("{s:?}: a date as YYYY-MM-DD")))
}

/// A team's trackers as given, checked: names unique and short, each phrase has a
/// word in it.
fn checked(trackers: Vec<Tracker>) -> Result<Vec<Tracker>> {
    if trackers.len() > MAX_TRACKERS {
        return Err(DomainError::invalid(
            "trackers",
            format!("at most {MAX_TRACKERS} trackers a team"),
        ));
    }
    let bad = |s: &str, max: usize| {
        s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control)
    };
    let mut names = HashSet::new();
    let mut out = vec![];
    for t in trackers {
        let name = t.name.trim().to_owned();
        if bad(&name, MAX_NAME_CHARS) {
            return Err(DomainError::invalid(
                "trackers.name",
                format!("1 to {MAX_NAME_CHARS} characters, no control characters"),
            ));
        }
        if !names.insert(name.to_lowercase()) {
            return Err(DomainError::invalid(
                "trackers.name",
                format!("{name:?} twice: each tracker's name is its own"),
            ));
        }
        let phrases: Vec<String> = t
            .phrases
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if phrases.is_empty() || phrases.len() > MAX_PHRASES {
            return Err(DomainError::invalid(
                "trackers.phrases",
                format!("{name:?}: 1 to {MAX_PHRASES} phrases"),
            ));
        }
        if let Some(p) = phrases
            .iter()
            .find(|p| bad(p, MAX_PHRASE_CHARS) || tokens(p).is_empty())
        {
            return Err(DomainError::invalid(
                "trackers.phrases",
                format!("{p:?}: a word or words, at most {MAX_PHRASE_CHARS} characters"),
            ));
        }
        out.push(Tracker { name, phrases });
    }
    Ok(out)
}

/// The numbers of a meeting's transcript.
fn facts_of(t: &TranscriptView) -> MeetingFacts {
    let names = &t.meeting.speaker_names;
    let said: Vec<Utterance> = t
        .segments
        .iter()
        .map(|s| Utterance {
            seq: s.seq,
            start: s.start,
            end: s.end,
            speaker: names
                .get(&s.speaker)
                .cloned()
                .unwrap_or_else(|| UNNAMED.to_owned()),
            text: s.text.clone(),
        })
        .collect();
    let scored: Vec<Scored> = t
        .segments
        .iter()
        .map(|s| Scored {
            engine: s.engine.clone().unwrap_or_else(|| "unknown".to_owned()),
            confidence: s.confidence,
        })
        .collect();
    let items = items_of(t)
        .into_iter()
        .map(|i| ItemFact {
            status: i.status,
            changed: i.status_at_ms.map(day_of),
        })
        .collect();
    facts::facts(
        Meta {
            meeting_id: t.meeting.id.clone(),
            day: day_of(t.meeting.started_at_corrected_ms),
            room: t.meeting.room_name.clone(),
            team_id: t.meeting.team_id.clone(),
            duration_s: t.meeting.duration_s,
        },
        &said,
        &scored,
        &t.trackers,
        items,
    )
}

impl Analytics {
    pub fn new(
        store: Arc<Store>,
        meetings: Arc<Meetings>,
        audit: Arc<AuditLog>,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            meetings,
            audit,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Sets a team's keyword trackers (`teams.manage`), replacing its list; audited.
    /// Summaries and analytics count them from the next read on, in every meeting
    /// of the team (earlier ones too: hits are found in the stored transcripts).
    pub fn set_trackers(
        &self,
        actor: &Actor,
        team_id: &str,
        trackers: Vec<Tracker>,
    ) -> Result<TeamView> {
        actor.require_all(Permission::TeamsManage)?;
        let trackers = checked(trackers)?;
        let team = self.store.write(|tx| {
            let mut t = tx.team(team_id)?.ok_or(DomainError::NotFound("team"))?;
            t.trackers = trackers;
            tx.put_team(&t)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::TeamTrackers, format!("team:{team_id}"))
                    .detail(format!("{} tracker(s)", t.trackers.len())),
            )?;
            Ok::<_, DomainError>(t)
        })?;
        Ok(TeamView::from(team))
    }

    /// The range a query asks for, checked.
    fn range(&self, q: &AnalyticsQuery) -> Result<Range> {
        let to = match &q.to {
            Some(s) => day("to", s)?,
            None => day_of(self.clock.now_ms()),
        };
        let from = match &q.from {
            Some(s) => day("from", s)?,
            None => week_of(to) - Duration::weeks(DEFAULT_WEEKS - 1),
        };
        if from > to {
            return Err(DomainError::invalid("from", "on or before `to`"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(DomainError::invalid(
                "from",
                format!("a range of at most {MAX_DAYS} days"),
            ));
        }
        Ok(Range { from, to })
    }

    /// The analytics of the meetings in the caller's reach (filtered by `q.team`
    /// and `q.room`) over `q`'s days; recorded in the audit log (`analytics.read`,
    /// the range, filters and number of meetings) before it is returned.
    pub fn report(&self, actor: &Actor, q: &AnalyticsQuery) -> Result<Report> {
        actor.require(Permission::AnalyticsRead)?;
        let range = self.range(q)?;
        let meetings: Vec<MeetingView> = self
            .meetings
            .list_for(actor, Permission::AnalyticsRead)?
            .into_iter()
            .filter(|m| q.team.is_none() || m.team_id == q.team)
            .filter(|m| q.room.as_ref().is_none_or(|r| *r == m.room_id))
            .collect();
        let teams = self.store.read(|tx| tx.teams())?;
        self.audit.record_alone(
            &Who::from(actor),
            Record::ok(A::AnalyticsRead, None::<String>).detail(format!(
                "{} to {}, {} meeting(s){}{}{}",
                range.from,
                range.to,
                meetings.len(),
                q.team
                    .as_ref()
                    .map_or(String::new(), |t| format!(", team {t}")),
                q.room
                    .as_ref()
                    .map_or(String::new(), |r| format!(", room {r}")),
                q.table
                    .as_ref()
                    .map_or(String::new(), |t| format!(", table {t}")),
            )),
        )?;
        let tracker_keys: HashMap<&str, u64> = teams
            .iter()
            .map(|t| (t.id.as_str(), trackers_hash(&t.trackers)))
            .collect();
        let mut all = Vec::with_capacity(meetings.len());
        for m in &meetings {
            let key = Key {
                revision: m.revision,
                segments: m.segment_count,
                live: m.status == crate::store::records::MeetingStatus::Live,
                trackers: m
                    .team_id
                    .as_deref()
                    .and_then(|t| tracker_keys.get(t).copied())
                    .unwrap_or(0),
            };
            let cached = self
                .cache
                .lock()
                .map_err(|_| DomainError::Internal("analytics cache poisoned".into()))?
                .get(&m.id)
                .filter(|(k, _)| *k == key)
                .map(|(_, f)| f.clone());
            let f = match cached {
                Some(f) => f,
                None => {
                    // A meeting erased or moved out of reach meanwhile is skipped.
                    let Ok(t) =
                        self.meetings
                            .read_transcript(actor, &m.id, Permission::AnalyticsRead)
                    else {
                        continue;
                    };
                    let f = Arc::new(facts_of(&t));
                    if let Ok(mut c) = self.cache.lock() {
                        c.insert(m.id.clone(), (key, f.clone()));
                    }
                    f
                }
            };
            all.push(f);
        }
        // Erased meetings leave nothing behind here either.
        let existing: HashSet<String> = self
            .store
            .read(|tx| Ok::<_, DomainError>(tx.meetings()?.into_iter().map(|m| m.id).collect()))?;
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|id, _| existing.contains(id));
        }
        let names: BTreeMap<String, String> = teams.into_iter().map(|t| (t.id, t.name)).collect();
        let refs: Vec<&MeetingFacts> = all.iter().map(Arc::as_ref).collect();
        let mut r = crate::analytics::report(&refs, range, &names);
        if q.charts == Some(true) {
            for t in &mut r.tables {
                t.svg = chart::svg(t);
            }
        }
        Ok(r)
    }

    /// Meetings whose numbers are kept.
    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    fn table(&self, actor: &Actor, q: &AnalyticsQuery) -> Result<(Range, Table)> {
        actor.require(Permission::AnalyticsRead)?;
        let id = q
            .table
            .as_deref()
            .filter(|t| TABLES.contains(t))
            .ok_or_else(|| {
                DomainError::invalid("table", format!("one of {}", TABLES.join(", ")))
            })?;
        let r = self.report(actor, q)?;
        let t = r
            .tables
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(DomainError::NotFound("table"))?;
        Ok((r.range, t))
    }

    /// One table as CSV (`q.table`), audited like the report.
    pub fn table_csv(&self, actor: &Actor, q: &AnalyticsQuery) -> Result<TableFile> {
        let (range, t) = self.table(actor, q)?;
        Ok(TableFile {
            file_name: format!("roomscribe-{}-{}-to-{}.csv", t.id, range.from, range.to),
            body: csv(&t),
        })
    }

    /// One table as an SVG chart (`q.table`), audited like the report.
    pub fn table_svg(&self, actor: &Actor, q: &AnalyticsQuery) -> Result<TableFile> {
        let (range, t) = self.table(actor, q)?;
        Ok(TableFile {
            file_name: format!("roomscribe-{}-{}-to-{}.svg", t.id, range.from, range.to),
            body: chart::svg(&t),
        })
    }
}
