//! Erasing some of a meeting's segments — a participant withdrew consent, a data
//! subject asked — so that no copy keeps them. Destroying the meeting's key would take
//! the rest of the meeting with them, so the meeting is **re-keyed**: its remaining
//! content is sealed again under a new key without them
//! (`WriteTx::reseal_meeting`), in one transaction with the audit entry, after a
//! tombstone in the key directory's `erased-segments.log`; then the old key is
//! destroyed. A copy of the data directory taken before holds the meeting sealed
//! under that destroyed key: an appliance started on it cannot read any of the
//! meeting and removes it whole ([`Erasure::replay_segments`]) — the remaining
//! segments cannot be told from the erased ones without the old key, and an agent
//! refilling the restored appliance could otherwise bring the erased ones back.

use super::{refuse_if_held, Erasure};
use crate::domain::audit::{AuditAction as A, Record, Who};
use crate::domain::meetings::meeting_view;
use crate::domain::views::Event;
use crate::domain::{DomainError, Result};
use crate::store::records::{ErasureRecord, SegmentErasureRecord};
use crate::store::{Reads, StoreError};
use serde::Serialize;
use std::collections::BTreeSet;

/// What an erasure of segments did, as the API shows it: never their content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentErasureView {
    pub meeting_id: String,
    /// The segment numbers erased.
    pub segments: Vec<u64>,
    pub by: String,
    pub at_ms: i64,
    pub reason: String,
}

impl Erasure {
    /// Erases the meeting's segments `segments` (those it still holds) and forgets
    /// `forget` as one of its participants and speaker names, by `who`, for `why`: 409
    /// under a legal hold, `None` when there was nothing to erase or forget. The
    /// caller has checked who may.
    pub(crate) fn erase_segments_as(
        &self,
        who: &Who,
        meeting_id: &str,
        segments: &BTreeSet<u64>,
        forget: Option<&str>,
        why: &str,
    ) -> Result<Option<SegmentErasureView>> {
        self.erase_segments_inner(who, meeting_id, segments, forget, why, true)
    }

    fn erase_segments_inner(
        &self,
        who: &Who,
        meeting_id: &str,
        segments: &BTreeSet<u64>,
        forget: Option<&str>,
        why: &str,
        tombstone: bool,
    ) -> Result<Option<SegmentErasureView>> {
        let keys = self.store.keys().clone();
        let mut staged = false;
        let done = self.store.write(|tx| {
            let mut m = tx
                .meeting(meeting_id)?
                .ok_or(DomainError::NotFound("meeting"))?;
            refuse_if_held(tx, &m)?;
            let mut present = BTreeSet::new();
            for seq in segments {
                if tx.has_segment(meeting_id, *seq)? {
                    present.insert(*seq);
                }
            }
            let same = |n: &str| forget.is_some_and(|f| f.trim().to_lowercase() == n.trim().to_lowercase());
            let named = m.participants.iter().any(|p| same(&p.name))
                || m.speaker_names.values().any(|n| same(n));
            if present.is_empty() && !named {
                return Ok(None);
            }
            let e = SegmentErasureRecord {
                meeting_id: meeting_id.to_owned(),
                segments: present.iter().copied().collect(),
                by: who.name.clone(),
                at_ms: self.clock.now_ms(),
                reason: why.to_owned(),
            };
            let key = keys.stage_rekey(meeting_id).map_err(StoreError::from)?;
            staged = true;
            if tombstone {
                // First, outside the data directory: should this commit fail, the
                // next start finishes it; a restored copy is purged by it.
                keys.record_segment_erasure(&e).map_err(StoreError::from)?;
            }
            tx.reseal_meeting(&m, key, &present)?;
            m.erased_segments.extend(&present);
            m.segment_count = m.segment_count.saturating_sub(present.len() as u64);
            m.participants.retain(|p| !same(&p.name));
            m.speaker_names.retain(|_, n| !same(n));
            m.revision += 1;
            tx.put_meeting(&m)?;
            self.audit.record(
                tx,
                who,
                Record::ok(A::MeetingEraseSegments, format!("meeting:{meeting_id}")).detail(
                    format!("{} segment(s) erased, the meeting re-keyed: {why}", present.len()),
                ),
            )?;
            let view = meeting_view(tx, m)?;
            // Last: a writer after this commit seals with the new key.
            keys.switch_rekey(meeting_id).map_err(StoreError::from)?;
            let (events, keys) = (self.events.clone(), keys.clone());
            let id = meeting_id.to_owned();
            tx.on_commit(move || {
                // The old key goes once storage no longer needs it.
                if let Err(err) = keys.commit_rekey(&id) {
                    tracing::error!(meeting = %id, error = %err, "the meeting's new key could not replace its old one; the next start does it");
                }
                let team = view.team_id.clone();
                events.publish(Event::Meeting { meeting: view }, team);
            });
            Ok::<_, DomainError>(Some(SegmentErasureView {
                meeting_id: e.meeting_id,
                segments: e.segments,
                by: e.by,
                at_ms: e.at_ms,
                reason: e.reason,
            }))
        });
        if done.is_err() && staged {
            if let Err(err) = keys.abort_rekey(meeting_id) {
                tracing::error!(meeting = %meeting_id, error = %err, "a staged key could not be dropped; the next start does it");
            }
        }
        if matches!(done, Ok(Some(_))) {
            self.search.meeting_changed(meeting_id);
        }
        done
    }

    /// At start, before anything else reads storage: a re-keying a crash cut short
    /// keeps whichever key the stored meeting opens with.
    pub(super) fn finish_rekeys(&self) -> Result<()> {
        let keys = self.store.keys().clone();
        for (id, key) in keys.staged_rekeys().map_err(StoreError::from)? {
            let opens = self.store.read(|tx| tx.meeting_opens_with(&id, &key))?;
            if opens == Some(true) {
                tracing::warn!(meeting = %id, "finishing a re-keying a crash cut short");
                keys.commit_rekey(&id).map_err(StoreError::from)?;
            } else {
                keys.abort_rekey(&id).map_err(StoreError::from)?;
            }
        }
        Ok(())
    }

    /// Replays the log of erased segments at start. A meeting that still holds some
    /// of them (an erasure cut short) has them erased again. A meeting that no longer
    /// opens with its key was restored from a copy taken before its re-keying: it is
    /// removed whole and recorded as erased, so ingest refuses its envelopes should an
    /// agent refill it. Returns how many meetings were changed.
    pub(super) fn replay_segments(&self) -> Result<usize> {
        let keys = self.store.keys().clone();
        let mut changed = 0;
        for t in keys.segment_erasures() {
            let state = self.store.read(|tx| {
                if !tx.has_meeting(&t.meeting_id)? {
                    return Ok::<_, DomainError>(None);
                }
                match tx.meeting(&t.meeting_id) {
                    Ok(_) => {
                        let mut left = BTreeSet::new();
                        for seq in &t.segments {
                            if tx.has_segment(&t.meeting_id, *seq)? {
                                left.insert(*seq);
                            }
                        }
                        Ok(Some(Ok(left)))
                    }
                    Err(StoreError::Unauthentic { .. } | StoreError::KeyMissing { .. }) => {
                        Ok(Some(Err(())))
                    }
                    Err(e) => Err(e.into()),
                }
            })?;
            match state {
                None => {}
                Some(Ok(left)) if left.is_empty() => {}
                Some(Ok(left)) => {
                    tracing::warn!(meeting = %t.meeting_id, "finishing an erasure of segments cut short");
                    self.erase_segments_inner(
                        &Who::system(),
                        &t.meeting_id,
                        &left,
                        None,
                        &t.reason,
                        false,
                    )?;
                    changed += 1;
                }
                Some(Err(())) => {
                    let e = ErasureRecord {
                        meeting_id: t.meeting_id.clone(),
                        room_id: String::new(),
                        team_id: None,
                        by: "system".into(),
                        at_ms: self.clock.now_ms(),
                        reason: format!(
                            "restored from a copy taken before {} of its segments were erased (by {} at {} ms: {}); its rows are sealed with the key destroyed then",
                            t.segments.len(),
                            t.by,
                            t.at_ms,
                            t.reason
                        ),
                    };
                    keys.record_erasure(&e).map_err(StoreError::from)?;
                    self.store.write(|tx| {
                        tx.erase_meeting(&e, None)?;
                        self.audit.record(
                            tx,
                            &Who::system(),
                            Record::ok(
                                A::MeetingEraseReplayed,
                                format!("meeting:{}", t.meeting_id),
                            )
                            .detail(e.reason.clone()),
                        )?;
                        Ok::<_, DomainError>(())
                    })?;
                    keys.destroy(&t.meeting_id).map_err(StoreError::from)?;
                    tracing::warn!(meeting = %t.meeting_id, "a meeting restored from before an erasure of its segments was removed");
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }
}
