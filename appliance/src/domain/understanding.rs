//! A meeting understood: its summary, action items and insights, found by
//! [`crate::insights`] in the stored transcript each time it is asked for (so a
//! correction changes them at once, and an erasure leaves nothing of them behind),
//! read in the caller's reach and recorded in the audit log like the transcript.
//! What people decide about an item — done, dismissed — is kept in the meeting's
//! sealed record by item id.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::meetings::Meetings;
use super::views::{EventView, SegmentView, TranscriptView};
use super::{Actor, DomainError, Result};
use crate::insights::{self, ActionItem, Insights, Mark, Moment, Utterance};
use crate::store::records::ActionItemState;
use crate::store::Reads;
use chrono::{NaiveDate, TimeZone};
use roomscribe_protocol::EventKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Who made the summary: the rules here (a local model's name, later, when one
/// wrote it).
pub const EXTRACTIVE: &str = "extractive summary (Roomscribe, on this appliance)";

pub const STATUSES: [&str; 3] = ["open", "done", "dismissed"];

/// An action item as found, with the status people set (its fields side by side in
/// JSON).
#[derive(Debug, Clone, Serialize)]
pub struct ActionItemView {
    #[serde(flatten)]
    pub item: ActionItem,
    /// `open`, `done` or `dismissed`.
    pub status: String,
    /// Who set the status, and when (absent while nobody has).
    pub status_by: Option<String>,
    pub status_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryView {
    pub meeting_id: String,
    /// The summary's sentences as one text.
    pub summary: String,
    /// The same sentences with their times and speakers, in order.
    pub sentences: Vec<Moment>,
    pub generated_by: &'static str,
    pub action_items: Vec<ActionItemView>,
    pub insights: Insights,
}

/// Which action items to list across meetings.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemQuery {
    /// Part of the owner's name, any case.
    pub owner: Option<String>,
    /// `open`, `done` or `dismissed`.
    pub status: Option<String>,
    /// A team's id.
    pub team: Option<String>,
}

/// An action item with the meeting it is from.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRow {
    pub meeting_id: String,
    pub meeting_title: String,
    pub started_at_ms: i64,
    pub team_id: Option<String>,
    pub item: ActionItemView,
}

pub struct Understanding {
    meetings: Arc<Meetings>,
    audit: Arc<AuditLog>,
    clock: SharedClock,
    /// `insights.sentiment`.
    sentiment: bool,
}

impl Understanding {
    pub fn new(
        meetings: Arc<Meetings>,
        audit: Arc<AuditLog>,
        clock: SharedClock,
        sentiment: bool,
    ) -> Self {
        Self {
            meetings,
            audit,
            clock,
            sentiment,
        }
    }

    /// The action items of every meeting the caller may read that match `q`, due
    /// soonest first (those without a date last), then newest meeting first.
    /// Recorded in the audit log (`action_items.read`, the filters and the number of
    /// meetings) before they are returned.
    pub fn action_items(&self, actor: &Actor, q: &ItemQuery) -> Result<Vec<ItemRow>> {
        let meetings: Vec<_> = self
            .meetings
            .list(actor)?
            .into_iter()
            .filter(|m| q.team.is_none() || m.team_id == q.team)
            .collect();
        if let Some(s) = &q.status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(DomainError::Invalid {
                    field: "status",
                    message: format!("{s:?}: one of open, done, dismissed"),
                });
            }
        }
        self.audit.record_alone(
            &Who::from(actor),
            Record::ok(A::ActionItemsRead, None::<String>).detail(format!(
                "{} meeting(s){}{}{}",
                meetings.len(),
                q.status
                    .as_ref()
                    .map_or(String::new(), |s| format!(", status {s}")),
                q.team
                    .as_ref()
                    .map_or(String::new(), |t| format!(", team {t}")),
                if q.owner.is_some() { ", by owner" } else { "" },
            )),
        )?;
        let owner = q.owner.as_ref().map(|o| o.trim().to_lowercase());
        let mut rows = vec![];
        for m in meetings {
            // A meeting erased or moved out of reach meanwhile is skipped.
            let Ok(t) =
                self.meetings
                    .read_transcript(actor, &m.id, super::Permission::MeetingsRead)
            else {
                continue;
            };
            for item in understand(&t).action_items {
                let owner_matches = owner.as_ref().is_none_or(|o| {
                    item.item
                        .owner
                        .as_ref()
                        .is_some_and(|n| n.to_lowercase().contains(o.as_str()))
                });
                if owner_matches && q.status.as_ref().is_none_or(|s| *s == item.status) {
                    rows.push(ItemRow {
                        meeting_id: m.id.clone(),
                        meeting_title: m.title.clone(),
                        started_at_ms: m.started_at_corrected_ms,
                        team_id: m.team_id.clone(),
                        item,
                    });
                }
            }
        }
        rows.sort_by(|a, b| {
            (
                a.item.item.due.is_none(),
                a.item.item.due,
                std::cmp::Reverse(a.started_at_ms),
                a.item.item.at,
            )
                .partial_cmp(&(
                    b.item.item.due.is_none(),
                    b.item.item.due,
                    std::cmp::Reverse(b.started_at_ms),
                    b.item.item.at,
                ))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(rows)
    }

    /// The meeting's summary, action items and insights; recorded in the audit log
    /// (as a view of the meeting, "summary") before they are returned.
    pub fn summary(&self, actor: &Actor, meeting_id: &str) -> Result<SummaryView> {
        let t = self.meetings.recorded_read(
            actor,
            meeting_id,
            super::Permission::MeetingsRead,
            Record::ok(A::MeetingView, format!("meeting:{meeting_id}")).detail("summary"),
        )?;
        let mut s = understand(&t);
        if self.sentiment {
            let said = utterances(&t.segments, &t.meeting.speaker_names);
            s.insights.sentiment = insights::sentiment::sentiment(&said);
        }
        Ok(s)
    }

    /// Sets an action item's status (`open`, `done`, `dismissed`); the item must be
    /// one the transcript yields now.
    pub fn set_status(
        &self,
        actor: &Actor,
        meeting_id: &str,
        item_id: &str,
        status: &str,
    ) -> Result<ActionItemView> {
        let (by, at_ms) = (actor.username.clone(), self.clock.now_ms());
        // The check and the change in one transaction: the item is one the
        // transcript yields at the moment the status is kept.
        self.meetings.edit(actor, meeting_id, |tx, m| {
            if !STATUSES.contains(&status) {
                return Err(DomainError::Invalid {
                    field: "status",
                    message: format!("{status:?}: one of open, done, dismissed"),
                });
            }
            let segments: Vec<SegmentView> = tx
                .segments(&m.id)?
                .into_iter()
                .map(SegmentView::from)
                .collect();
            let events: Vec<EventView> =
                tx.events(&m.id)?.into_iter().map(EventView::from).collect();
            let started = m.started_at_ms.saturating_sub(m.clock_skew_ms.unwrap_or(0));
            let items = found_in(&segments, &events, &m.speaker_names, started);
            if !items.iter().any(|i| i.id == item_id) {
                return Err(DomainError::NotFound("action item"));
            }
            m.action_items.insert(
                item_id.to_owned(),
                ActionItemState {
                    status: status.to_owned(),
                    by,
                    at_ms,
                },
            );
            Ok(
                Record::ok(A::ActionItemUpdate, format!("meeting:{meeting_id}"))
                    .detail(format!("{item_id}: {status}")),
            )
        })?;
        let t =
            self.meetings
                .read_transcript(actor, meeting_id, super::Permission::MeetingsEdit)?;
        understand(&t)
            .action_items
            .into_iter()
            .find(|i| i.item.id == item_id)
            .ok_or(DomainError::NotFound("action item"))
    }
}

/// The transcript as the rules read it: speakers by the names given to them.
fn utterances(segments: &[SegmentView], names: &BTreeMap<String, String>) -> Vec<Utterance> {
    segments
        .iter()
        .map(|s| Utterance {
            seq: s.seq,
            start: s.start,
            end: s.end,
            speaker: names
                .get(&s.speaker)
                .cloned()
                .unwrap_or_else(|| s.speaker.clone()),
            text: s.text.clone(),
        })
        .collect()
}

/// The day of `started_ms` in the appliance's time zone.
pub(crate) fn day_of(started_ms: i64) -> NaiveDate {
    chrono::Local
        .timestamp_millis_opt(started_ms)
        .single()
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

/// The action items of a meeting's segments and events.
fn found_in(
    segments: &[SegmentView],
    events: &[EventView],
    names: &BTreeMap<String, String>,
    started_ms: i64,
) -> Vec<ActionItem> {
    let marks: Vec<Mark> = events
        .iter()
        .filter(|e| e.kind == EventKind::ActionItem)
        .map(|e| Mark {
            seq: e.seq,
            at: e.at,
        })
        .collect();
    insights::actions::extract(&utterances(segments, names), &marks, day_of(started_ms))
}

/// The meeting's action items with the statuses people set.
pub(crate) fn items_of(t: &TranscriptView) -> Vec<ActionItemView> {
    let states = &t.action_items;
    found_in(
        &t.segments,
        &t.events,
        &t.meeting.speaker_names,
        t.meeting.started_at_corrected_ms,
    )
    .into_iter()
    .map(|i| {
        let state = states.get(&i.id);
        ActionItemView {
            status: state.map_or_else(|| "open".to_owned(), |s| s.status.clone()),
            status_by: state.map(|s| s.by.clone()),
            status_at_ms: state.map(|s| s.at_ms),
            item: i,
        }
    })
    .collect()
}

/// The summary and action items as an export carries them, marked as generated
/// (none when the transcript yields neither).
pub(crate) fn for_export(t: &TranscriptView) -> Option<crate::export::Generated> {
    use crate::export::{Generated, GeneratedItem, SummaryLine};
    let said = utterances(&t.segments, &t.meeting.speaker_names);
    let summary: Vec<SummaryLine> = insights::summary::extractive(&said)
        .into_iter()
        .map(|m| SummaryLine {
            at: m.at,
            speaker: m.speaker,
            text: m.text,
        })
        .collect();
    let action_items: Vec<GeneratedItem> = items_of(t)
        .into_iter()
        .map(|i| GeneratedItem {
            text: i.item.text,
            owner: i.item.owner,
            due: i.item.due.map(|d| d.to_string()),
            at: i.item.at,
            status: i.status,
        })
        .collect();
    (!summary.is_empty() || !action_items.is_empty()).then(|| Generated {
        generated: true,
        generated_by: EXTRACTIVE.to_owned(),
        summary,
        action_items,
    })
}

fn understand(t: &TranscriptView) -> SummaryView {
    let said = utterances(&t.segments, &t.meeting.speaker_names);
    let sentences = insights::summary::extractive(&said);
    SummaryView {
        meeting_id: t.meeting.id.clone(),
        summary: sentences
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        sentences,
        generated_by: EXTRACTIVE,
        action_items: items_of(t),
        insights: insights::stats::insights(&said, t.meeting.duration_s, &t.trackers),
    }
}
