//! Meetings and transcripts as the console sees them.

use super::views::{MeetingView, SegmentView, TranscriptView};
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
        let caption = lock(&self.captions).get(&m.id).cloned();
        Ok(TranscriptView {
            meeting: self.meeting_view(m),
            segments,
            caption,
        })
    }
}
