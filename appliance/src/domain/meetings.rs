//! Meetings and transcripts as the console sees them: each meeting belongs to a team,
//! and every read, edit and export is checked against it. Reads and exports are
//! recorded in the audit log before the data is returned (no record, no data).

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::events::EventBus;
use super::live::Captions;
use super::scope::{meeting_for, room_name};
use super::search::Search;
use super::views::{Event, EventView, MeetingView, SegmentView, TranscriptView};
use super::{Actor, DomainError, Permission, Result};
use crate::store::records::MeetingRecord;
use crate::store::{Reads, Store};
use std::sync::Arc;

/// What an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The transcript view as JSON.
    Json,
    /// Plain text: one line per segment, `[mm:ss] speaker: text`.
    Text,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "json" => Ok(Self::Json),
            "txt" | "text" => Ok(Self::Text),
            _ => Err(DomainError::invalid("format", "json or txt")),
        }
    }
}

/// An exported transcript: a file name and its bytes.
#[derive(Debug, Clone)]
pub struct Export {
    pub filename: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A meeting as shown, with its room's name.
pub fn meeting_view(tx: &impl Reads, m: MeetingRecord) -> Result<MeetingView> {
    Ok(MeetingView {
        room_name: room_name(tx, &m.room_id)?,
        started_at_corrected_ms: m.started_at_ms.saturating_sub(m.clock_skew_ms.unwrap_or(0)),
        id: m.id,
        room_id: m.room_id,
        team_id: m.team_id,
        agent_id: m.agent_id,
        title: m.title,
        started_at_ms: m.started_at_ms,
        clock_skew_ms: m.clock_skew_ms,
        status: m.status,
        segment_count: m.segment_count,
        duration_s: m.duration_s,
        speaker_names: m.speaker_names,
    })
}

pub struct Meetings {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    events: Arc<EventBus>,
    captions: Arc<Captions>,
    search: Arc<Search>,
}

impl Meetings {
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        events: Arc<EventBus>,
        captions: Arc<Captions>,
        search: Arc<Search>,
    ) -> Self {
        Self {
            store,
            audit,
            events,
            captions,
            search,
        }
    }

    /// The meetings the actor may read, newest first.
    pub fn list(&self, actor: &Actor) -> Result<Vec<MeetingView>> {
        actor.require(Permission::MeetingsRead)?;
        let mut v = self.store.read(|tx| {
            tx.meetings()?
                .into_iter()
                .filter(|m| actor.can(Permission::MeetingsRead, m.team_id.as_deref()))
                .map(|m| meeting_view(tx, m))
                .collect::<Result<Vec<_>>>()
        })?;
        v.sort_by_key(|m| std::cmp::Reverse(m.started_at_ms));
        Ok(v)
    }

    /// Records a read (`action`) of a meeting the actor may use `p` on, then reads
    /// the transcript: the data is returned only if the record was written.
    fn recorded_read(
        &self,
        actor: &Actor,
        meeting_id: &str,
        p: Permission,
        r: Record,
    ) -> Result<TranscriptView> {
        self.store.write(|tx| {
            meeting_for(tx, actor, p, meeting_id)?;
            self.audit.record(tx, &Who::from(actor), r).map(drop)
        })?;
        self.store.read(|tx| {
            let m = meeting_for(tx, actor, p, meeting_id)?;
            let segments = tx
                .segments(&m.id)?
                .into_iter()
                .map(SegmentView::from)
                .collect();
            let events = tx.events(&m.id)?.into_iter().map(EventView::from).collect();
            let caption = self.captions.get(&m.id);
            Ok(TranscriptView {
                meeting: meeting_view(tx, m)?,
                segments,
                events,
                caption,
            })
        })
    }

    /// A meeting's transcript; recorded in the audit log before it is returned.
    pub fn transcript(&self, actor: &Actor, meeting_id: &str) -> Result<TranscriptView> {
        self.recorded_read(
            actor,
            meeting_id,
            Permission::MeetingsRead,
            Record::ok(A::MeetingView, format!("meeting:{meeting_id}")),
        )
    }

    /// A meeting's transcript as a file to download.
    pub fn export(&self, actor: &Actor, meeting_id: &str, format: ExportFormat) -> Result<Export> {
        let t = self.recorded_read(
            actor,
            meeting_id,
            Permission::MeetingsExport,
            Record::ok(A::MeetingExport, format!("meeting:{meeting_id}"))
                .detail(format!("{format:?}")),
        )?;
        let stem = format!("meeting-{}", t.meeting.id);
        Ok(match format {
            ExportFormat::Json => Export {
                filename: format!("{stem}.json"),
                content_type: "application/json",
                body: serde_json::to_vec_pretty(&t)
                    .map_err(|e| DomainError::Internal(e.to_string()))?,
            },
            ExportFormat::Text => {
                let mut out = format!(
                    "{}\nroom: {}\nmeeting: {}\n\n",
                    t.meeting.title, t.meeting.room_name, t.meeting.id
                );
                for s in &t.segments {
                    let who = t
                        .meeting
                        .speaker_names
                        .get(&s.speaker)
                        .unwrap_or(&s.speaker);
                    let secs = s.start.max(0.0) as u64;
                    out.push_str(&format!(
                        "[{:02}:{:02}] {who}: {}\n",
                        secs / 60,
                        secs % 60,
                        s.text
                    ));
                }
                Export {
                    filename: format!("{stem}.txt"),
                    content_type: "text/plain; charset=utf-8",
                    body: out.into_bytes(),
                }
            }
        })
    }

    /// Changes a meeting the actor may edit, with its audit entry, in one
    /// transaction; publishes the new view once committed.
    fn edit(
        &self,
        actor: &Actor,
        meeting_id: &str,
        change: impl FnOnce(&crate::store::WriteTx, &mut MeetingRecord) -> Result<Record>,
    ) -> Result<MeetingView> {
        let view = self.store.write(|tx| {
            let mut m = meeting_for(tx, actor, Permission::MeetingsEdit, meeting_id)?;
            let r = change(tx, &mut m)?;
            tx.put_meeting(&m)?;
            self.audit.record(tx, &Who::from(actor), r)?;
            let view = meeting_view(tx, m)?;
            let (events, published) = (self.events.clone(), view.clone());
            tx.on_commit(move || {
                let team = published.team_id.clone();
                events.publish(Event::Meeting { meeting: published }, team);
            });
            Ok::<_, DomainError>(view)
        })?;
        // Who may find it, and the speaker names it is found by, are searchable
        // before the edit is answered.
        self.search.meeting_changed(meeting_id);
        Ok(view)
    }

    /// Moves a meeting to another team: the actor must be able to edit it where it is
    /// and where it goes.
    pub fn set_team(&self, actor: &Actor, meeting_id: &str, team_id: &str) -> Result<MeetingView> {
        self.edit(actor, meeting_id, |tx, m| {
            if tx.team(team_id)?.is_none() || !actor.can(Permission::MeetingsEdit, Some(team_id)) {
                return Err(DomainError::invalid(
                    "team_id",
                    "no such team, or not one you can edit meetings of",
                ));
            }
            m.team_id = Some(team_id.to_owned());
            Ok(Record::ok(A::MeetingMove, format!("meeting:{meeting_id}"))
                .detail(format!("team {team_id}")))
        })
    }

    /// Names a speaker label of a meeting (an empty name removes it). Only labels that
    /// occur in the meeting can be named; "unknown" cannot.
    pub fn name_speaker(
        &self,
        actor: &Actor,
        meeting_id: &str,
        speaker: &str,
        name: &str,
    ) -> Result<MeetingView> {
        let name = name.trim();
        if name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "at most 80 characters, no control characters",
            ));
        }
        self.edit(actor, meeting_id, |tx, m| {
            let known = tx
                .segments(meeting_id)?
                .iter()
                .any(|s| s.speaker.as_deref() == Some(speaker));
            if !known {
                return Err(DomainError::invalid(
                    "speaker",
                    format!("no segment of this meeting is attributed to {speaker:?}"),
                ));
            }
            if name.is_empty() {
                m.speaker_names.remove(speaker);
            } else {
                m.speaker_names.insert(speaker.to_owned(), name.to_owned());
            }
            Ok(Record::ok(A::MeetingEdit, format!("meeting:{meeting_id}"))
                .detail(format!("speaker name for {speaker}")))
        })
    }
}
