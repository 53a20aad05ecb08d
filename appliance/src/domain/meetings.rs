//! Meetings and transcripts as the console sees them: each meeting belongs to a team,
//! and every read, edit and export is checked against it.

use super::views::{EventView, MeetingView, SegmentView, TranscriptView};
use super::{lock, Actor, Appliance, DomainError, Permission, Record, Result};
use crate::store::records::MeetingRecord;

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

impl Appliance {
    pub(super) fn meeting_view(&self, m: MeetingRecord) -> MeetingView {
        MeetingView {
            room_name: self.room_name(&m.room_id),
            id: m.id,
            room_id: m.room_id,
            team_id: m.team_id,
            agent_id: m.agent_id,
            title: m.title,
            started_at_ms: m.started_at_ms,
            clock_skew_ms: m.clock_skew_ms,
            started_at_corrected_ms: m.started_at_ms - m.clock_skew_ms.unwrap_or(0),
            status: m.status,
            segment_count: m.segment_count,
            duration_s: m.duration_s,
            speaker_names: m.speaker_names,
        }
    }

    /// A meeting the actor may use `p` on (404 when the actor cannot see it).
    fn meeting_for(&self, actor: &Actor, p: Permission, id: &str) -> Result<MeetingRecord> {
        let m = self.store.meeting(id)?;
        actor.require_on(p, m.as_ref().and_then(|m| m.team_id.as_deref()), "meeting")?;
        m.ok_or(DomainError::NotFound("meeting"))
    }

    /// The meetings the actor may read, newest first.
    pub fn meetings(&self, actor: &Actor) -> Result<Vec<MeetingView>> {
        actor.require(Permission::MeetingsRead)?;
        let mut v: Vec<MeetingView> = self
            .store
            .meetings()?
            .into_iter()
            .filter(|m| actor.can(Permission::MeetingsRead, m.team_id.as_deref()))
            .map(|m| self.meeting_view(m))
            .collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.started_at_ms));
        Ok(v)
    }

    /// A meeting's transcript; recorded in the audit log before it is returned.
    pub fn transcript(&self, actor: &Actor, meeting_id: &str) -> Result<TranscriptView> {
        let m = self.meeting_for(actor, Permission::MeetingsRead, meeting_id)?;
        self.audit(
            actor,
            Record::ok("meeting.view", format!("meeting:{meeting_id}")),
        )?;
        self.transcript_of(m)
    }

    fn transcript_of(&self, m: MeetingRecord) -> Result<TranscriptView> {
        let segments = self
            .store
            .segments(&m.id)?
            .into_iter()
            .map(SegmentView::from)
            .collect();
        let events = self
            .store
            .events(&m.id)?
            .into_iter()
            .map(EventView::from)
            .collect();
        let caption = lock(&self.captions).get(&m.id).cloned();
        Ok(TranscriptView {
            meeting: self.meeting_view(m),
            segments,
            events,
            caption,
        })
    }

    /// A meeting's transcript as a file to download.
    pub fn export_meeting(
        &self,
        actor: &Actor,
        meeting_id: &str,
        format: ExportFormat,
    ) -> Result<Export> {
        let m = self.meeting_for(actor, Permission::MeetingsExport, meeting_id)?;
        self.audit(
            actor,
            Record::ok("meeting.export", format!("meeting:{meeting_id}"))
                .detail(format!("{format:?}")),
        )?;
        let t = self.transcript_of(m)?;
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

    /// Moves a meeting to another team: the actor must be able to edit it where it is
    /// and where it goes.
    pub fn set_meeting_team(
        &self,
        actor: &Actor,
        meeting_id: &str,
        team_id: &str,
    ) -> Result<MeetingView> {
        self.meeting_for(actor, Permission::MeetingsEdit, meeting_id)?;
        if self.store.team(team_id)?.is_none()
            || !actor.can(Permission::MeetingsEdit, Some(team_id))
        {
            return Err(DomainError::invalid(
                "team_id",
                "no such team, or not one you can edit meetings of",
            ));
        }
        let m = self
            .store
            .update_meeting(meeting_id, |m| m.team_id = Some(team_id.to_owned()))?
            .ok_or(DomainError::NotFound("meeting"))?;
        self.audit(
            actor,
            Record::ok("meeting.move", format!("meeting:{meeting_id}"))
                .detail(format!("team {team_id}")),
        )?;
        let view = self.meeting_view(m);
        self.publish(super::views::Event::Meeting {
            meeting: view.clone(),
        });
        Ok(view)
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
        self.meeting_for(actor, Permission::MeetingsEdit, meeting_id)?;
        let name = name.trim();
        if name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "at most 80 characters, no control characters",
            ));
        }
        let known = self
            .store
            .segments(meeting_id)?
            .iter()
            .any(|s| s.speaker.as_deref() == Some(speaker));
        if !known {
            return Err(DomainError::invalid(
                "speaker",
                format!("no segment of this meeting is attributed to {speaker:?}"),
            ));
        }
        let m = self
            .store
            .update_meeting(meeting_id, |m| {
                if name.is_empty() {
                    m.speaker_names.remove(speaker);
                } else {
                    m.speaker_names.insert(speaker.to_owned(), name.to_owned());
                }
            })?
            .ok_or(DomainError::NotFound("meeting"))?;
        self.audit(
            actor,
            Record::ok("meeting.edit", format!("meeting:{meeting_id}"))
                .detail(format!("speaker name for {speaker}")),
        )?;
        let view = self.meeting_view(m);
        self.publish(super::views::Event::Meeting {
            meeting: view.clone(),
        });
        Ok(view)
    }
}
