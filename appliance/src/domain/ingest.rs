//! Accepting what agents send: hellos, envelopes and captions. An envelope is parsed,
//! authenticated, verified and decrypted outside any transaction; then one write
//! transaction applies the sequence rule, the meeting's ownership and the
//! stored-at-most-once rule for segments and events, and stores it. It is
//! acknowledged only after that transaction committed durably.

use super::access::Via;
use super::audit::{AuditAction, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::events::EventBus;
use super::fleet::Fleet;
use super::live::{Captions, LiveAgents};
use super::meetings::meeting_view;
use super::metrics::Metrics;
use super::scope::room_team;
use super::search::Search;
use super::views::{CaptionView, Event, EventView, SegmentView, UNKNOWN_SPEAKER};
use super::DomainError;
use crate::store::records::{EventRecord, MeetingRecord, MeetingStatus, SegmentRecord, WordRecord};
use crate::store::{Reads, Store};
use ed25519_dalek::VerifyingKey;
use roomscribe_protocol::enroll::decode32;
use roomscribe_protocol::frame::{AckStatus, RejectCode};
use roomscribe_protocol::hello::{verify_hello, Hello, EXPORTER_LEN};
use roomscribe_protocol::resync::{self, Notice, NoticeError};
use roomscribe_protocol::{
    check_sequence, AgentId, EnvelopeError, RecipientKey, SealedEnvelope, SequenceVerdict,
};
use std::sync::Arc;

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

impl From<NoticeError> for IngestRejection {
    fn from(e: NoticeError) -> Self {
        match e {
            NoticeError::Inner(e) => e.into(),
            NoticeError::BadSignature(_) => Self::new(RejectCode::BadSignature, e.to_string()),
            NoticeError::UnsupportedVersion(_) => {
                Self::new(RejectCode::UnsupportedVersion, e.to_string())
            }
            e => Self::new(RejectCode::Malformed, e.to_string()),
        }
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

/// What one committed envelope changed (for its events once committed).
enum Applied {
    Stored,
    Duplicate,
    Conflict,
    OutOfOrder { expected: u64 },
    ForeignMeeting,
}

pub struct Ingest {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    clock: SharedClock,
    envelope_key: Arc<RecipientKey>,
    events: Arc<EventBus>,
    metrics: Arc<Metrics>,
    live: Arc<LiveAgents>,
    captions: Arc<Captions>,
    fleet: Arc<Fleet>,
    search: Arc<Search>,
}

impl Ingest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        clock: SharedClock,
        envelope_key: Arc<RecipientKey>,
        events: Arc<EventBus>,
        metrics: Arc<Metrics>,
        live: Arc<LiveAgents>,
        captions: Arc<Captions>,
        fleet: Arc<Fleet>,
        search: Arc<Search>,
    ) -> Self {
        Self {
            store,
            audit,
            clock,
            envelope_key,
            events,
            metrics,
            live,
            captions,
            fleet,
            search,
        }
    }

    fn agent_key(&self, agent_id: &AgentId) -> Result<VerifyingKey, IngestRejection> {
        let agent = self
            .store
            .read(|tx| tx.agent(&agent_id.to_string()))
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

    /// Authenticates a hello against the keying material exported from its
    /// connection; returns the agent and the last envelope number stored from it.
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
            .read(|tx| tx.agent(&hello.agent_id.to_string()))
            .map_err(|e| IngestRejection::internal(&e))?
            .and_then(|a| a.last_envelope_seq);
        self.fleet.agent_connected(&hello.agent_id, &hello.status);
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
        let caption = env
            .verify(&self.agent_key(&from.0)?)?
            .open_caption(&self.envelope_key)?;
        let meeting_id = env.header.meeting_id.to_string();
        let meeting = self
            .store
            .read(|tx| tx.meeting(&meeting_id))
            .map_err(|e| IngestRejection::internal(&e))?;
        let team = match &meeting {
            Some(m) if m.agent_id != from.0.to_string() => {
                return Err(IngestRejection::new(
                    RejectCode::AgentMismatch,
                    "meeting belongs to another agent",
                ))
            }
            Some(m) if caption.segment_seq < m.segment_count => return Ok(()), // final is here
            Some(m) => m.team_id.clone(),
            None => None,
        };
        let view = CaptionView {
            segment_seq: caption.segment_seq,
            text: caption.text.chars().take(2000).collect(),
            heard_until: finite(caption.heard_until),
            received_at_ms: self.clock.now_ms(),
            speaker: caption
                .speaker
                .map(|x| x.chars().take(40).collect())
                .unwrap_or_else(|| UNKNOWN_SPEAKER.to_owned()),
        };
        self.captions.set(&meeting_id, view.clone());
        self.events.publish(
            Event::Caption {
                meeting_id,
                caption: view,
            },
            team,
        );
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
        let mismatch = || {
            IngestRejection::new(
                RejectCode::AgentMismatch,
                "envelope names another agent than this connection",
            )
        };
        // A sealed envelope, or one renumbered by its agent after a restore of the
        // agent's state (docs/PROTOCOL.md, "Resynchronisation"): stored under the
        // notice's number, recognised again by the notice's digest.
        let (seq, env, digest) = if resync::is_notice(bytes) {
            let notice = Notice::parse(bytes)?;
            if notice.agent_id != from.0 {
                return Err(mismatch());
            }
            match notice.verify(&self.agent_key(&from.0)?)? {
                resync::Verified::Lost { first, last } => {
                    return self.apply_notice(
                        from,
                        first,
                        NoticeEffect::Lost { last },
                        notice.digest(),
                    )
                }
                resync::Verified::SetAside {
                    seq,
                    digest,
                    reason,
                } => {
                    return self.apply_notice(
                        from,
                        seq,
                        NoticeEffect::SetAside { digest, reason },
                        notice.digest(),
                    )
                }
                resync::Verified::Discarded {
                    seq,
                    original,
                    digest,
                } => {
                    return self.apply_notice(
                        from,
                        seq,
                        NoticeEffect::Discarded { original, digest },
                        notice.digest(),
                    )
                }
                resync::Verified::Renumbered { seq, envelope } => (seq, envelope, notice.digest()),
            }
        } else {
            let env = SealedEnvelope::parse(bytes)?;
            let digest = env.digest();
            (env.header.envelope_seq, env, digest)
        };
        let agent_id = env.header.agent_id;
        if agent_id != from.0 {
            return Err(mismatch());
        }
        let batch = env
            .verify(&self.agent_key(&agent_id)?)?
            .open(&self.envelope_key)?;
        let now = self.clock.now_ms();
        let segments: Vec<SegmentRecord> = batch
            .segments
            .into_iter()
            .map(|s| SegmentRecord {
                seq: s.seq,
                start: finite(s.start),
                end: finite(s.end),
                text: s.text,
                words: s
                    .words
                    .into_iter()
                    .map(|w| WordRecord {
                        word: w.word,
                        start: finite(w.start),
                        end: finite(w.end),
                        conf: if w.conf.is_finite() { w.conf } else { 0.0 },
                    })
                    .collect(),
                confidence: if s.confidence.is_finite() {
                    s.confidence
                } else {
                    0.0
                },
                received_at_ms: now,
                speaker: s.speaker.map(|x| x.chars().take(40).collect()),
                engine: s.engine.map(|x| x.chars().take(20).collect()),
                model: s.model.map(|x| x.chars().take(80).collect()),
                version: 0,
                envelope_seq: Some(seq),
            })
            .collect();
        let events: Vec<EventRecord> = batch
            .events
            .into_iter()
            .map(|e| EventRecord {
                seq: e.seq,
                at: finite(e.at),
                kind: e.kind,
                source: e.source,
                received_at_ms: now,
            })
            .collect();
        let meeting_id = env.header.meeting_id.to_string();
        let agent_key = agent_id.to_string();
        // Kept as signed: the evidence a corrected segment's original is checked against.
        let sealed = env.to_bytes();
        let inner_seq = env.header.envelope_seq;
        let skew = self.live.clock_offset(&agent_key);
        let applied = self
            .store
            .write(|tx| {
                let Some(mut agent) = tx.agent(&agent_key)? else {
                    return Ok(Applied::ForeignMeeting);
                };
                match check_sequence(agent.last_envelope_seq, seq) {
                    SequenceVerdict::AlreadySeen => {
                        let same = tx
                            .envelope_digest(&agent_key, seq)?
                            .is_some_and(|d| d == digest);
                        return Ok(if same {
                            Applied::Duplicate
                        } else {
                            Applied::Conflict
                        });
                    }
                    SequenceVerdict::Gap { expected } => {
                        return Ok(Applied::OutOfOrder { expected })
                    }
                    SequenceVerdict::Next => {}
                }
                // An erased meeting never comes back (an agent refilling a restored
                // appliance sends its old envelopes again): acknowledged, dropped,
                // recorded.
                if tx.erasure(&meeting_id)?.is_some() {
                    tx.put_envelope_digest(&agent_key, seq, &digest)?;
                    envelope_applied(&mut agent, seq, inner_seq, now);
                    tx.put_agent(&agent)?;
                    let who = Who {
                        name: format!("agent:{agent_key}"),
                        via: Via::AgentKey,
                        client: Default::default(),
                    };
                    self.audit.record(
                        tx,
                        &who,
                        Record::ok(
                            AuditAction::ErasedMeetingEnvelope,
                            format!("meeting:{meeting_id}"),
                        )
                        .detail(format!(
                            "envelope {seq} was for this erased meeting: acknowledged and dropped"
                        )),
                    )?;
                    return Ok(Applied::Stored);
                }
                let mut meeting = match tx.meeting(&meeting_id)? {
                    Some(m) if m.agent_id != agent_key => return Ok(Applied::ForeignMeeting),
                    Some(m) => m,
                    None => MeetingRecord {
                        id: meeting_id.clone(),
                        team_id: room_team(tx, &agent.room_id)?,
                        room_id: agent.room_id.clone(),
                        agent_id: agent_key.clone(),
                        title: batch.meeting.title.chars().take(200).collect(),
                        started_at_ms: batch.meeting.started_at_ms,
                        clock_skew_ms: skew,
                        status: MeetingStatus::Live,
                        segment_count: 0,
                        duration_s: 0.0,
                        updated_at_ms: now,
                        speaker_names: Default::default(),
                        meeting_type: None,
                        tags: vec![],
                        participants: vec![],
                        consent: Default::default(),
                        erased_segments: Default::default(),
                        revision: 0,
                        action_items: Default::default(),
                    },
                };
                let mut new_segments = vec![];
                for s in &segments {
                    if meeting.erased_segments.contains(&s.seq) {
                        continue;
                    }
                    // Said by someone who declined or withdrew: never stored.
                    if super::consent::refused_speaker(&meeting, s.speaker.as_deref()) {
                        meeting.erased_segments.insert(s.seq);
                        continue;
                    }
                    if !tx.has_segment(&meeting_id, s.seq)? {
                        tx.put_segment(&meeting_id, s)?;
                        meeting.segment_count += 1;
                        meeting.duration_s = meeting.duration_s.max(s.end);
                        new_segments.push(s.clone());
                    }
                }
                let mut new_events = vec![];
                for e in &events {
                    if !tx.has_event(&meeting_id, e.seq)? {
                        tx.put_event(&meeting_id, e)?;
                        super::consent::apply_event(&mut meeting.consent, e);
                        new_events.push(e.clone());
                    }
                }
                if batch.ended {
                    meeting.status = MeetingStatus::Ended;
                }
                meeting.updated_at_ms = now;
                tx.put_meeting(&meeting)?;
                tx.put_envelope_digest(&agent_key, seq, &digest)?;
                if !new_segments.is_empty() {
                    tx.put_sealed_envelope(&meeting_id, &agent_key, seq, &sealed)?;
                }
                envelope_applied(&mut agent, seq, inner_seq, now);
                tx.put_agent(&agent)?;
                let view = meeting_view(tx, meeting)?;
                let (events_bus, captions, metrics, search) = (
                    self.events.clone(),
                    self.captions.clone(),
                    self.metrics.clone(),
                    self.search.clone(),
                );
                let (mid, ended) = (meeting_id.clone(), batch.ended);
                tx.on_commit(move || {
                    let newest = segments.iter().map(|s| s.seq).max();
                    captions.settled(&mid, newest, ended);
                    metrics.envelope_stored(new_segments.len() as u64);
                    search.segments_stored(&view, &new_segments);
                    let team = view.team_id.clone();
                    for s in new_segments {
                        events_bus.publish(
                            Event::Segment {
                                meeting_id: mid.clone(),
                                segment: SegmentView::from(s),
                            },
                            team.clone(),
                        );
                    }
                    for e in new_events {
                        events_bus.publish(
                            Event::MeetingEvent {
                                meeting_id: mid.clone(),
                                event: EventView::from(e),
                            },
                            team.clone(),
                        );
                    }
                    events_bus.publish(Event::Meeting { meeting: view }, team);
                });
                Ok::<_, DomainError>(Applied::Stored)
            })
            .map_err(|e| IngestRejection::internal(&e))?;
        applied_reply(applied, seq)
    }

    /// Applies an agent's signed notice numbered `seq` (docs/PROTOCOL.md,
    /// "Resynchronisation" and "Quarantine"): the sequence rule as for envelopes, the
    /// agent's `last` moves on, and the statement is audited.
    fn apply_notice(
        &self,
        from: Verified,
        seq: u64,
        effect: NoticeEffect,
        digest: [u8; 32],
    ) -> Result<AckStatus, IngestRejection> {
        let agent_key = from.0.to_string();
        let applied = self
            .store
            .write(|tx| {
                let Some(mut agent) = tx.agent(&agent_key)? else {
                    return Ok(Applied::ForeignMeeting);
                };
                match check_sequence(agent.last_envelope_seq, seq) {
                    SequenceVerdict::AlreadySeen => {
                        let same = tx
                            .envelope_digest(&agent_key, seq)?
                            .is_some_and(|d| d == digest);
                        return Ok(if same {
                            Applied::Duplicate
                        } else {
                            Applied::Conflict
                        });
                    }
                    SequenceVerdict::Gap { expected } => {
                        return Ok(Applied::OutOfOrder { expected })
                    }
                    SequenceVerdict::Next => {}
                }
                let short = |d: &[u8; 32]| hex::encode(&d[..8]);
                let (last, record) = match &effect {
                    NoticeEffect::Lost { last } => (
                        *last,
                        Record::ok(AuditAction::AgentEnvelopesLost, format!("agent:{agent_key}"))
                            .detail(format!(
                                "envelopes {seq}..={last} ({} in all) are lost: this appliance was restored from a backup older than the agent keeps (queue.keep_acked_days)",
                                last - seq + 1
                            )),
                    ),
                    NoticeEffect::SetAside { digest, reason } => {
                        agent.quarantined.push(seq);
                        agent
                            .quarantine_reasons
                            .insert(seq, reason.chars().take(300).collect());
                        (
                            seq,
                            Record::ok(AuditAction::AgentEnvelopeQuarantined, format!("agent:{agent_key}"))
                                .detail(format!(
                                    "envelope {seq} (sha256 {}…) refused for good and set aside in the agent's quarantine: {}",
                                    short(digest),
                                    reason.chars().take(300).collect::<String>()
                                )),
                        )
                    }
                    NoticeEffect::Discarded { original, digest } => {
                        agent.quarantined.retain(|q| q != original);
                        agent.quarantine_reasons.remove(original);
                        (
                            seq,
                            Record::ok(AuditAction::AgentEnvelopeDiscarded, format!("agent:{agent_key}"))
                                .detail(format!(
                                    "quarantined envelope {original} (sha256 {}…) discarded by an operator on the agent",
                                    short(digest)
                                )),
                        )
                    }
                };
                tx.put_envelope_digest(&agent_key, seq, &digest)?;
                agent.last_envelope_seq = Some(last);
                agent.last_seen_ms = Some(self.clock.now_ms());
                tx.put_agent(&agent)?;
                let who = Who {
                    name: format!("agent:{agent_key}"),
                    via: Via::AgentKey,
                    client: Default::default(),
                };
                self.audit.record(tx, &who, record)?;
                Ok::<_, DomainError>(Applied::Stored)
            })
            .map_err(|e| IngestRejection::internal(&e))?;
        if matches!(applied, Applied::Stored) {
            match &effect {
                NoticeEffect::Lost { last } => {
                    tracing::error!(agent = %agent_key, first = seq, last, "an agent declared envelopes lost after this appliance was restored from an older backup")
                }
                NoticeEffect::SetAside { .. } => {
                    tracing::warn!(agent = %agent_key, seq, "an agent set a refused envelope aside in its quarantine")
                }
                NoticeEffect::Discarded { original, .. } => {
                    tracing::warn!(agent = %agent_key, original, "an operator discarded a quarantined envelope")
                }
            }
            self.fleet.publish_agent(&from.0);
        }
        applied_reply(applied, seq)
    }
}

/// The agent's record once envelope `seq` (sealed as `inner_seq`) is applied: its
/// `last` moves on, and a quarantined envelope requeued by an operator (it arrives
/// renumbered) leaves the quarantine.
fn envelope_applied(
    agent: &mut crate::store::records::AgentRecord,
    seq: u64,
    inner_seq: u64,
    now: i64,
) {
    agent.last_envelope_seq = Some(seq);
    agent.last_seen_ms = Some(now);
    agent.quarantined.retain(|q| *q != inner_seq);
    agent.quarantine_reasons.remove(&inner_seq);
}

/// What a notice does besides moving the agent's `last` on.
enum NoticeEffect {
    Lost { last: u64 },
    SetAside { digest: [u8; 32], reason: String },
    Discarded { original: u64, digest: [u8; 32] },
}

fn applied_reply(applied: Applied, seq: u64) -> Result<AckStatus, IngestRejection> {
    match applied {
        Applied::Stored => Ok(AckStatus::Stored),
        Applied::Duplicate => Ok(AckStatus::Duplicate),
        Applied::Conflict => Err(IngestRejection::new(
            RejectCode::Replayed,
            format!("envelope {seq} was already stored with different content"),
        )),
        Applied::OutOfOrder { expected } => Err(IngestRejection::new(
            RejectCode::OutOfOrder,
            format!("expected envelope {expected}, got {seq}"),
        )),
        Applied::ForeignMeeting => Err(IngestRejection::new(
            RejectCode::AgentMismatch,
            "meeting belongs to another agent",
        )),
    }
}

/// A time from an agent as stored: non-negative and finite (JSON cannot carry NaN,
/// but a negative or absurd value must not break sums and sorting).
fn finite(t: f64) -> f64 {
    if t.is_finite() {
        t.max(0.0)
    } else {
        0.0
    }
}
