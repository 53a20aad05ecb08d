//! Meetings and transcripts as the console sees them.

use super::views::{EventView, MeetingView, SegmentView, TranscriptView};
use super::{lock, Actor, Appliance, DomainError, Result};
use crate::store::records::MeetingRecord;

impl Appliance {
    pub(super) fn meeting_view(&self, m: MeetingRecord) -> MeetingView {
        MeetingView {
            room_name: self.room_name(&m.room_id),
            id: m.id,
            room_id: m.room_id,
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

    /// All meetings, newest first.
    pub fn meetings(&self, actor: &Actor) -> Result<Vec<MeetingView>> {
        actor.require_active()?;
        let mut v: Vec<MeetingView> = self
            .store
            .meetings()?
            .into_iter()
            .map(|m| self.meeting_view(m))
            .collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.started_at_ms));
        Ok(v)
    }

    pub fn transcript(&self, actor: &Actor, meeting_id: &str) -> Result<TranscriptView> {
        actor.require_active()?;
        let m = self
            .store
            .meeting(meeting_id)?
            .ok_or(DomainError::NotFound("meeting"))?;
        let segments = self
            .store
            .segments(meeting_id)?
            .into_iter()
            .map(SegmentView::from)
            .collect();
        let events = self
            .store
            .events(meeting_id)?
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

    /// Names a speaker label of a meeting (an empty name removes it). Only labels that
    /// occur in the meeting can be named; "unknown" cannot.
    pub fn name_speaker(
        &self,
        actor: &Actor,
        meeting_id: &str,
        speaker: &str,
        name: &str,
    ) -> Result<MeetingView> {
        actor.require_active()?;
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
            self.store
                .meeting(meeting_id)?
                .ok_or(DomainError::NotFound("meeting"))?;
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
        let view = self.meeting_view(m);
        self.publish(super::views::Event::Meeting {
            meeting: view.clone(),
        });
        Ok(view)
    }
}
