//! Accepting envelopes: parse, authenticate, verify, decrypt, sequence-check, commit.
//! An envelope is acknowledged only after [`Appliance::accept_envelope`] returns, which
//! is after the store committed it durably.

use super::views::{CaptionView, Event, EventView, SegmentView};
use super::{now_ms, Appliance};
use crate::store::records::{EventRecord, MeetingRecord, MeetingStatus, SegmentRecord, WordRecord};
use crate::store::{EnvelopeCommit, EnvelopeToCommit};
use ed25519_dalek::VerifyingKey;
use roomscribe_protocol::enroll::decode32;
use roomscribe_protocol::frame::{AckStatus, RejectCode};
use roomscribe_protocol::hello::{verify_hello, Hello, EXPORTER_LEN};
use roomscribe_protocol::{AgentId, EnvelopeError, SealedEnvelope};

/// Why an envelope, hello or enrollment was refused; sent back to the agent as-is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRejection {
    pub code: RejectCode,
    pub message: String,
}

impl IngestRejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub(super) fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "ingest storage error");
        Self::new(RejectCode::Internal, "internal error; retry later")
    }
}

impl From<EnvelopeError> for IngestRejection {
    fn from(e: EnvelopeError) -> Self {
        let code = match &e {
            EnvelopeError::UnsupportedVersion(_) => RejectCode::UnsupportedVersion,
            EnvelopeError::BadSignature(_) => RejectCode::BadSignature,
            EnvelopeError::WrongRecipientKey { .. }
            | EnvelopeError::DecryptFailed
            | EnvelopeError::WeakEphemeralKey => RejectCode::WrongKey,
            _ => RejectCode::Malformed,
        };
        Self::new(code, e.to_string())
    }
}

/// An agent proven by its hello on this connection.
#[derive(Debug, Clone, Copy)]
pub struct Verified(AgentId);

impl Verified {
    pub fn agent_id(&self) -> AgentId {
        self.0
    }
}

impl Appliance {
    fn agent_key(&self, agent_id: &AgentId) -> Result<VerifyingKey, IngestRejection> {
        let agent = self
            .store
            .agent(&agent_id.to_string())
            .map_err(|e| IngestRejection::internal(&e))?
            .ok_or_else(|| {
                IngestRejection::new(
                    RejectCode::UnknownAgent,
                    format!("agent {agent_id} is not enrolled"),
                )
            })?;
        if agent.revoked_at_ms.is_some() {
            return Err(IngestRejection::new(
                RejectCode::RevokedAgent,
                format!("agent {agent_id} has been revoked"),
            ));
        }
        let raw =
            decode32(&agent.public_key, "public_key").map_err(|e| IngestRejection::internal(&e))?;
        VerifyingKey::from_bytes(&raw).map_err(|e| IngestRejection::internal(&e))
    }

    /// Authenticates a hello against the keying material exported from its connection.
    pub fn authenticate_hello(
        &self,
        hello: &Hello,
        exporter: &[u8; EXPORTER_LEN],
    ) -> Result<(Verified, Option<u64>), IngestRejection> {
        if hello.protocol_version != roomscribe_protocol::PROTOCOL_VERSION {
            return Err(IngestRejection::new(
                RejectCode::UnsupportedVersion,
                "unsupported protocol version",
            ));
        }
        let key = self.agent_key(&hello.agent_id)?;
        if !verify_hello(&key, exporter, hello) {
            return Err(IngestRejection::new(
                RejectCode::NotAuthenticated,
                "hello signature does not verify",
            ));
        }
        let last = self
            .store
            .agent(&hello.agent_id.to_string())
            .map_err(|e| IngestRejection::internal(&e))?
            .and_then(|a| a.last_envelope_seq);
        self.agent_status(&hello.agent_id, &hello.status);
        Ok((Verified(hello.agent_id), last))
    }

    /// Verifies and decrypts a live caption and shows it on the event stream. Captions
    /// are kept in memory only (the newest per meeting) and dropped once the final
    /// segment they precede is stored.
    pub fn accept_caption(&self, from: Verified, bytes: &[u8]) -> Result<(), IngestRejection> {
        let env = SealedEnvelope::parse(bytes)?;
        if env.header.agent_id != from.0 {
            return Err(IngestRejection::new(
                RejectCode::AgentMismatch,
                "caption names another agent than this connection",
            ));
        }
        env.verify(&self.agent_key(&from.0)?)?;
        let caption = env.open_caption(&self.keys.envelope)?;
        let meeting_id = env.header.meeting_id.to_string();
        if let Ok(Some(m)) = self.store.meeting(&meeting_id) {
            if m.agent_id != from.0.to_string() {
                return Err(IngestRejection::new(
                    RejectCode::AgentMismatch,
                    "meeting belongs to another agent",
                ));
            }
            if caption.segment_seq < m.segment_count {
                return Ok(()); // the final segment is already here
            }
        }
        let view = CaptionView {
            segment_seq: caption.segment_seq,
            text: caption.text.chars().take(2000).collect(),
            heard_until: caption.heard_until,
            received_at_ms: now_ms(),
            speaker: caption
                .speaker
                .map(|x| x.chars().take(40).collect())
                .unwrap_or_else(|| super::views::UNKNOWN_SPEAKER.to_owned()),
        };
        super::lock(&self.captions).insert(meeting_id.clone(), view.clone());
        self.publish(Event::Caption {
            meeting_id,
            caption: view,
        });
        Ok(())
    }

    /// Verifies, decrypts and durably stores one envelope from an authenticated agent.
    pub fn accept_envelope(
        &self,
        from: Verified,
        bytes: &[u8],
    ) -> Result<AckStatus, IngestRejection> {
        let outcome = self.store_envelope(from, bytes);
        match &outcome {
            Ok(AckStatus::Duplicate) => self.metrics.envelope_duplicate(),
            Ok(_) => {}
            Err(r) => self.metrics.envelope_rejected(&format!("{:?}", r.code)),
        }
        outcome
    }

    fn store_envelope(&self, from: Verified, bytes: &[u8]) -> Result<AckStatus, IngestRejection> {
        let env = SealedEnvelope::parse(bytes)?;
        let agent_id = env.header.agent_id;
        if agent_id != from.0 {
            return Err(IngestRejection::new(
                RejectCode::AgentMismatch,
                "envelope names another agent than this connection",
            ));
        }
        let key = self.agent_key(&agent_id)?;
        env.verify(&key)?;
        let batch = env.open(&self.keys.envelope)?;
        let agent = self
            .store
            .agent(&agent_id.to_string())
            .map_err(|e| IngestRejection::internal(&e))?;
        let room_id = agent.map(|a| a.room_id).unwrap_or_default();
        let now = now_ms();
        let segments: Vec<SegmentRecord> = batch
            .segments
            .into_iter()
            .map(|s| SegmentRecord {
                seq: s.seq,
                start: s.start,
                end: s.end,
                text: s.text,
                words: s
                    .words
                    .into_iter()
                    .map(|w| WordRecord {
                        word: w.word,
                        start: w.start,
                        end: w.end,
                        conf: w.conf,
                    })
                    .collect(),
                confidence: s.confidence,
                received_at_ms: now,
                speaker: s.speaker.map(|x| x.chars().take(40).collect()),
                engine: s.engine.map(|x| x.chars().take(20).collect()),
                model: s.model.map(|x| x.chars().take(80).collect()),
            })
            .collect();
        let events: Vec<EventRecord> = batch
            .events
            .into_iter()
            .map(|e| EventRecord {
                seq: e.seq,
                at: e.at.max(0.0),
                kind: e.kind,
                source: e.source,
                received_at_ms: now,
            })
            .collect();
        let meeting_id = env.header.meeting_id.to_string();
        let commit = EnvelopeToCommit {
            agent_id: agent_id.to_string(),
            envelope_seq: env.header.envelope_seq,
            digest: env.digest(),
            meeting: MeetingRecord {
                id: meeting_id.clone(),
                team_id: self
                    .room_team(&room_id)
                    .map_err(|e| IngestRejection::internal(&e))?,
                room_id,
                agent_id: agent_id.to_string(),
                title: batch.meeting.title.chars().take(200).collect(),
                started_at_ms: batch.meeting.started_at_ms,
                clock_skew_ms: super::lock(&self.live)
                    .get(&agent_id.to_string())
                    .filter(|l| l.connected)
                    .map(|l| l.clock_offset_ms),
                status: MeetingStatus::Live,
                segment_count: 0,
                duration_s: 0.0,
                updated_at_ms: now,
                speaker_names: Default::default(),
            },
            segments: &segments,
            events: &events,
            ended: batch.ended,
            received_at_ms: now,
        };
        let seq = env.header.envelope_seq;
        match self
            .store
            .commit_envelope(&commit)
            .map_err(|e| IngestRejection::internal(&e))?
        {
            EnvelopeCommit::Stored {
                new_segments,
                new_events,
                ..
            } => {
                {
                    let mut captions = super::lock(&self.captions);
                    let done = captions.get(&meeting_id).is_some_and(|c| {
                        batch.ended || segments.iter().any(|s| s.seq >= c.segment_seq)
                    });
                    if done {
                        captions.remove(&meeting_id);
                    }
                }
                for s in segments
                    .into_iter()
                    .filter(|s| new_segments.contains(&s.seq))
                {
                    self.publish(Event::Segment {
                        meeting_id: meeting_id.clone(),
                        segment: SegmentView::from(s),
                    });
                }
                for e in events.into_iter().filter(|e| new_events.contains(&e.seq)) {
                    self.publish(Event::MeetingEvent {
                        meeting_id: meeting_id.clone(),
                        event: EventView::from(e),
                    });
                }
                if let Ok(Some(m)) = self.store.meeting(&meeting_id) {
                    self.publish(Event::Meeting {
                        meeting: self.meeting_view(m),
                    });
                }
                self.metrics.envelope_stored(new_segments.len() as u64);
                Ok(AckStatus::Stored)
            }
            EnvelopeCommit::Duplicate => Ok(AckStatus::Duplicate),
            EnvelopeCommit::Conflict => Err(IngestRejection::new(
                RejectCode::Replayed,
                format!("envelope {seq} was already stored with different content"),
            )),
            EnvelopeCommit::OutOfOrder { expected } => Err(IngestRejection::new(
                RejectCode::OutOfOrder,
                format!("expected envelope {expected}, got {seq}"),
            )),
            EnvelopeCommit::ForeignMeeting => Err(IngestRejection::new(
                RejectCode::AgentMismatch,
                "meeting belongs to another agent",
            )),
        }
    }
}
