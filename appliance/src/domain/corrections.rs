//! Corrections of a segment's text or speaker, with every revision kept: who, when,
//! before and after. The agent's original stays verifiable against its signature (the
//! sealed envelope is kept as it arrived). A correction names the version it read; a
//! stale one is refused (409), so two editors never overwrite each other unseen.

use super::align::{align, mean_confidence};
use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::events::EventBus;
use super::scope::meeting_for;
use super::search::Search;
use super::views::{
    Event, OriginalView, RevisionView, SegmentHistoryView, SegmentView, SignatureCheck,
};
use super::{Actor, DomainError, Permission, Result, SharedClock};
use crate::store::records::{RevisionRecord, SegmentRecord};
use crate::store::{Reads, Store};
use roomscribe_protocol::enroll::decode32;
use roomscribe_protocol::{RecipientKey, SealedEnvelope};
use std::sync::Arc;

/// Longest corrected text, in characters.
pub const MAX_TEXT: usize = 5000;
/// Longest speaker label, in characters (as ingest keeps them).
pub const MAX_SPEAKER: usize = 40;

/// What a correction changes, and the version it was made on.
#[derive(Debug, Clone, Default)]
pub struct SegmentPatch {
    pub text: Option<String>,
    /// A speaker label; "unknown" (or empty) makes it unknown.
    pub speaker: Option<String>,
    pub expected_version: u64,
}

impl SegmentPatch {
    /// The new text and speaker, checked; `None` where unchanged.
    fn checked(&self) -> Result<(Option<String>, Option<Option<String>>)> {
        if self.text.is_none() && self.speaker.is_none() {
            return Err(DomainError::invalid(
                "text",
                "give the new text, the new speaker, or both",
            ));
        }
        let text = match &self.text {
            None => None,
            Some(t) => {
                let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
                if t.is_empty() || t.chars().count() > MAX_TEXT {
                    return Err(DomainError::invalid(
                        "text",
                        format!("1 to {MAX_TEXT} characters"),
                    ));
                }
                Some(t)
            }
        };
        let speaker = match self.speaker.as_deref().map(str::trim) {
            None => None,
            Some("" | "unknown") => Some(None),
            Some(s) if s.chars().count() > MAX_SPEAKER || s.chars().any(char::is_control) => {
                return Err(DomainError::invalid(
                    "speaker",
                    format!("at most {MAX_SPEAKER} characters, no control characters"),
                ))
            }
            Some(s) => Some(Some(s.to_owned())),
        };
        Ok((text, speaker))
    }
}

pub struct Corrections {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    clock: SharedClock,
    events: Arc<EventBus>,
    search: Arc<Search>,
    envelope_key: Arc<RecipientKey>,
}

impl Corrections {
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        clock: SharedClock,
        events: Arc<EventBus>,
        search: Arc<Search>,
        envelope_key: Arc<RecipientKey>,
    ) -> Self {
        Self {
            store,
            audit,
            clock,
            events,
            search,
            envelope_key,
        }
    }

    /// Corrects segment `seq` of a meeting the actor may edit: one revision and one
    /// audit entry in one transaction, published to open consoles, searchable before
    /// the answer. A correction that changes nothing is answered with the segment as
    /// it is, and recorded nowhere.
    pub fn correct(
        &self,
        actor: &Actor,
        meeting_id: &str,
        seq: u64,
        patch: &SegmentPatch,
    ) -> Result<SegmentView> {
        let (text, speaker) = patch.checked()?;
        let (view, changed) = self.store.write(|tx| {
            let mut m = meeting_for(tx, actor, Permission::MeetingsEdit, meeting_id)?;
            let mut s = tx
                .segment(&m.id, seq)?
                .ok_or(DomainError::NotFound("segment"))?;
            if s.version != patch.expected_version {
                return Err(DomainError::Conflict(format!(
                    "segment {seq} is at version {}, not {}: someone corrected it meanwhile; reload it and apply your change again",
                    s.version, patch.expected_version
                )));
            }
            let before = s.clone();
            if let Some(t) = text.as_ref().filter(|t| **t != s.text) {
                s.words = align(&s.words, t, s.start, s.end);
                s.confidence = mean_confidence(&s.words);
                s.text = t.clone();
            }
            if let Some(sp) = speaker.clone() {
                s.speaker = sp;
            }
            if s.text == before.text && s.speaker == before.speaker {
                return Ok((SegmentView::from(s), false));
            }
            s.version += 1;
            let what = match (s.text != before.text, s.speaker != before.speaker) {
                (true, true) => "text and speaker",
                (true, false) => "text",
                _ => "speaker",
            };
            tx.put_revision(
                &m.id,
                seq,
                &RevisionRecord {
                    version: s.version,
                    at_ms: self.clock.now_ms(),
                    by: actor.username.clone(),
                    text_before: before.text,
                    text_after: s.text.clone(),
                    speaker_before: before.speaker,
                    speaker_after: s.speaker.clone(),
                    words_before: before.words,
                },
            )?;
            tx.put_segment(&m.id, &s)?;
            m.revision += 1;
            tx.put_meeting(&m)?;
            // The entry says what changed, never the words (the revision holds them).
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::SegmentEdit, format!("meeting:{}", m.id))
                    .detail(format!("segment {seq} {what}, version {}", s.version)),
            )?;
            let view = SegmentView::from(s);
            let (events, published, team) = (self.events.clone(), view.clone(), m.team_id);
            let mid = m.id;
            tx.on_commit(move || {
                events.publish(
                    Event::Segment {
                        meeting_id: mid,
                        segment: published,
                    },
                    team,
                );
            });
            Ok::<_, DomainError>((view, true))
        })?;
        if changed {
            self.search.meeting_changed(meeting_id);
        }
        Ok(view)
    }

    /// A segment's revisions, oldest first, and its original as the agent sent it,
    /// checked against the agent's signature. A read of transcript text: audited first.
    pub fn history(&self, actor: &Actor, meeting_id: &str, seq: u64) -> Result<SegmentHistoryView> {
        self.store.write(|tx| {
            let m = meeting_for(tx, actor, Permission::MeetingsRead, meeting_id)?;
            if !tx.has_segment(&m.id, seq)? {
                return Err(DomainError::NotFound("segment"));
            }
            self.audit
                .record(
                    tx,
                    &Who::from(actor),
                    Record::ok(A::MeetingView, format!("meeting:{}", m.id))
                        .detail(format!("history of segment {seq}")),
                )
                .map(drop)
        })?;
        self.store.read(|tx| {
            let m = meeting_for(tx, actor, Permission::MeetingsRead, meeting_id)?;
            let s = tx
                .segment(&m.id, seq)?
                .ok_or(DomainError::NotFound("segment"))?;
            let revisions = tx.revisions(&m.id, seq)?;
            let (text, speaker) = revisions.first().map_or_else(
                || (s.text.clone(), s.speaker.clone()),
                |r| (r.text_before.clone(), r.speaker_before.clone()),
            );
            let signature = self.check_original(tx, &m.agent_id, &m.id, &s, &text, &speaker)?;
            Ok(SegmentHistoryView {
                meeting_id: m.id,
                segment: SegmentView::from(s),
                revisions: revisions.into_iter().map(RevisionView::from).collect(),
                original: OriginalView {
                    text,
                    speaker: speaker.unwrap_or_else(|| super::views::UNKNOWN_SPEAKER.to_owned()),
                    signature,
                },
            })
        })
    }

    /// Opens the sealed envelope the segment came in (signature first) and compares
    /// what the agent signed with the original kept here.
    fn check_original(
        &self,
        tx: &impl Reads,
        agent_id: &str,
        meeting_id: &str,
        s: &SegmentRecord,
        text: &str,
        speaker: &Option<String>,
    ) -> Result<SignatureCheck> {
        let Some(envelope_seq) = s.envelope_seq else {
            return Ok(SignatureCheck::NotKept {
                reason: "stored before this appliance kept sealed envelopes".into(),
            });
        };
        let Some(bytes) = tx.sealed_envelope(meeting_id, agent_id, envelope_seq)? else {
            return Ok(SignatureCheck::NotKept {
                reason: format!("envelope {envelope_seq} is not kept"),
            });
        };
        let Some(agent) = tx.agent(agent_id)? else {
            return Ok(SignatureCheck::NotKept {
                reason: format!("agent {agent_id} is no longer known"),
            });
        };
        let invalid = |reason: String| SignatureCheck::Invalid { reason };
        let key = match decode32(&agent.public_key, "public_key")
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        {
            Some(k) => k,
            None => return Ok(invalid("the agent's public key is not readable".into())),
        };
        let batch = match SealedEnvelope::parse(&bytes).and_then(|e| {
            if e.header.meeting_id.to_string() != meeting_id {
                return Err(roomscribe_protocol::EnvelopeError::PayloadMismatch(
                    "envelope of another meeting",
                ));
            }
            e.verify(&key)?.open(&self.envelope_key)
        }) {
            Ok(b) => b,
            Err(e) => return Ok(invalid(e.to_string())),
        };
        let Some(signed) = batch.segments.into_iter().find(|x| x.seq == s.seq) else {
            return Ok(invalid(format!(
                "envelope {envelope_seq} holds no segment {}",
                s.seq
            )));
        };
        let signed_speaker: Option<String> = signed
            .speaker
            .map(|x| x.chars().take(MAX_SPEAKER).collect());
        Ok(if signed.text == text && signed_speaker == *speaker {
            SignatureCheck::Verified {
                agent_id: agent_id.to_owned(),
                envelope_seq,
            }
        } else {
            SignatureCheck::Mismatch {
                signed_text: signed.text,
            }
        })
    }
}
