//! Consent with evidence.
//!
//! - Each team has a consent rule (`record_without_consent`, `require_all`,
//!   `require_announcement`) and the notice its rooms announce. A change is audited and
//!   pushed, signed, to the agents of the team's rooms, which keep it and enforce it
//!   offline too (see the agent's `meeting::consent`).
//! - Each meeting keeps what its agent did ([`apply_event`]: the consent gate and the
//!   notice, from the agent's sealed events) and evidence per participant: who recorded
//!   which state (notified, consented, declined, withdrawn), how, and when. Evidence is
//!   only ever added to, so a withdrawal keeps the consent it withdrew.
//! - In a meeting the agent holds for everyone's consent, recording evidence tells the
//!   agent: once every participant's latest state is `consented` it transcribes; a
//!   decline or a withdrawal stops it again.
//! - A decline or withdrawal erases what the person said (the segments attributed to
//!   them, by speaker label or the name it was given; with the team's `withdrawal:
//!   meeting`, the whole meeting when none is), through `Erasure` (the meeting is
//!   re-keyed, so no older copy keeps them; a legal hold wins), and ingest never
//!   stores their later segments ([`refused_speaker`]). The evidence is kept.
//!
//! Audit entries name the participant by position, never by name: names are meeting
//! content, sealed with the meeting's key.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::commands::Commands;
use super::erasure::Erasure;
use super::meetings::{meeting_view, Meetings};
use super::scope::{live_agents, room_consent};
use super::subject::{spoken_by, Subject};
use super::views::{CommandResultView, MeetingView, TeamView};
use super::{Actor, DomainError, Permission, Result};
use crate::store::records::{
    ConsentEvidence, ConsentHow, ConsentState, EventRecord, MeetingConsentRecord, MeetingRecord,
    MeetingStatus, WithdrawalScope,
};
use crate::store::{Reads, Store};
use roomscribe_protocol::command::{ConsentRule, MAX_NOTICE_CHARS};
use roomscribe_protocol::EventKind;
use serde::Serialize;
use std::sync::Arc;

/// Longest note on a piece of evidence (a form's reference, a remark).
pub const MAX_NOTE_CHARS: usize = 500;
/// Most pieces of evidence one meeting keeps.
pub const MAX_EVIDENCE: usize = 2000;

/// Takes one of the meeting's events into what it knows of consent. Events of the gate
/// may arrive out of order (a late envelope): only a newer one moves it.
pub fn apply_event(c: &mut MeetingConsentRecord, e: &EventRecord) {
    let newer = c.gate_event_seq.is_none_or(|s| e.seq > s);
    match e.kind {
        EventKind::ConsentPending => {
            c.required = true;
            if newer {
                c.awaiting = true;
                c.gate_event_seq = Some(e.seq);
            }
        }
        EventKind::ConsentGiven if newer => {
            c.awaiting = false;
            c.gate_event_seq = Some(e.seq);
        }
        EventKind::Notice => {
            c.notice_at_s = Some(c.notice_at_s.map_or(e.at, |t| t.min(e.at)));
        }
        _ => {}
    }
}

/// A participant's consent as it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantConsentView {
    pub name: String,
    pub username: Option<String>,
    /// `notified`, `consented`, `declined`, `withdrawn`, or `none` when nothing says
    /// anything about them.
    pub state: String,
    /// How the latest state came about (`announced` for the room's notice).
    pub how: Option<ConsentHow>,
    pub at_ms: Option<i64>,
}

/// What the meeting page and the exports show of consent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentView {
    /// The agent held the meeting for everyone's consent (`require_all`).
    pub required: bool,
    /// It holds it now: nothing is being transcribed.
    pub awaiting: bool,
    /// When the room announced its notice (seconds from the start).
    pub notice_at_s: Option<f64>,
    pub participants: Vec<ParticipantConsentView>,
    /// Every piece of evidence, oldest first.
    pub evidence: Vec<ConsentEvidence>,
}

/// Whether a segment with this speaker label was said by someone whose latest word is
/// a decline or a withdrawal (by the label, or the name it was given).
pub fn refused_speaker(m: &MeetingRecord, label: Option<&str>) -> bool {
    let Some(label) = label else {
        return false;
    };
    let name = m.speaker_names.get(label).map_or(label, String::as_str);
    latest(&m.consent, name)
        .is_some_and(|e| matches!(e.state, ConsentState::Declined | ConsentState::Withdrawn))
}

fn latest<'a>(c: &'a MeetingConsentRecord, name: &str) -> Option<&'a ConsentEvidence> {
    c.evidence
        .iter()
        .rev()
        .find(|e| e.participant.to_lowercase() == name.to_lowercase())
}

pub fn consent_view(m: &MeetingRecord) -> ConsentView {
    let c = &m.consent;
    let announced_at = c.notice_at_s.map(|s| {
        m.started_at_ms.saturating_sub(m.clock_skew_ms.unwrap_or(0)) + (s * 1000.0) as i64
    });
    let participants = m
        .participants
        .iter()
        .map(|p| {
            let (state, how, at_ms) = match latest(c, &p.name) {
                Some(e) => (e.state.as_str(), Some(e.how), Some(e.at_ms)),
                // The room's announcement reached everyone present.
                None if announced_at.is_some() => {
                    ("notified", Some(ConsentHow::Announced), announced_at)
                }
                None => ("none", None, None),
            };
            ParticipantConsentView {
                name: p.name.clone(),
                username: p.username.clone(),
                state: state.to_owned(),
                how,
                at_ms,
            }
        })
        .collect();
    ConsentView {
        required: c.required,
        awaiting: c.awaiting,
        notice_at_s: c.notice_at_s,
        participants,
        evidence: c.evidence.clone(),
    }
}

fn parse_state(s: &str) -> Result<ConsentState> {
    Ok(match s {
        "notified" => ConsentState::Notified,
        "consented" => ConsentState::Consented,
        "declined" => ConsentState::Declined,
        "withdrawn" => ConsentState::Withdrawn,
        _ => {
            return Err(DomainError::invalid(
                "state",
                "one of notified, consented, declined, withdrawn",
            ))
        }
    })
}

fn parse_how(s: &str) -> Result<ConsentHow> {
    Ok(match s {
        "announced" => ConsentHow::Announced,
        "console" => ConsentHow::Console,
        "form" => ConsentHow::Form,
        "spoken" => ConsentHow::Spoken,
        "policy" => ConsentHow::Policy,
        _ => {
            return Err(DomainError::invalid(
                "how",
                "one of announced, console, form, spoken, policy",
            ))
        }
    })
}

/// What the gate of a meeting held for consent should do after new evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    Close,
    Leave,
}

/// The pure rule: a decline or withdrawal closes the gate; the gate opens when every
/// participant (at least one) has consented, as their latest word.
pub fn gate_after(m: &MeetingRecord, new: ConsentState) -> Gate {
    if !m.consent.required || m.status != MeetingStatus::Live {
        return Gate::Leave;
    }
    match new {
        ConsentState::Declined | ConsentState::Withdrawn => Gate::Close,
        ConsentState::Notified => Gate::Leave,
        ConsentState::Consented => {
            let all = !m.participants.is_empty()
                && m.participants.iter().all(|p| {
                    latest(&m.consent, &p.name).is_some_and(|e| e.state == ConsentState::Consented)
                });
            if all && m.consent.awaiting {
                Gate::Open
            } else {
                Gate::Leave
            }
        }
    }
}

/// Evidence as the API takes it.
#[derive(Debug, Clone, Default)]
pub struct EvidenceInput {
    pub participant: String,
    pub state: String,
    pub how: String,
    pub note: Option<String>,
    /// For spoken consent: seconds from the meeting's start.
    pub at_s: Option<f64>,
}

/// What a decline or withdrawal erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WithdrawalErasure {
    /// The segments attributed to them (numbers), the meeting re-keyed.
    Segments { segments: Vec<u64> },
    /// No segment is attributed to them and the team's policy erases the meeting.
    Meeting,
    /// No segment is attributed to them; the policy keeps the meeting.
    NothingAttributed,
    /// A legal hold keeps everything as it is.
    Held { reason: String },
}

/// The meeting after new evidence, and what its agent answered when told.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentResultView {
    pub meeting: MeetingView,
    /// After a decline or withdrawal: what was erased.
    pub erasure: Option<WithdrawalErasure>,
    /// `null` when the agent was not told (no gate to move) or is not connected.
    pub agent: Option<CommandResultView>,
    /// Whether the agent was to be told (`open`, `close`) and was not reachable.
    pub agent_unreachable: bool,
}

pub struct Consent {
    store: Arc<Store>,
    clock: SharedClock,
    audit: Arc<AuditLog>,
    meetings: Arc<Meetings>,
    commands: Arc<Commands>,
    erasure: Arc<Erasure>,
}

impl Consent {
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        audit: Arc<AuditLog>,
        meetings: Arc<Meetings>,
        commands: Arc<Commands>,
        erasure: Arc<Erasure>,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            meetings,
            commands,
            erasure,
        }
    }

    /// Sets a team's consent rule and notice (`teams.manage`), audited, and pushes it to
    /// the agents of the team's rooms. It applies from their next meeting on.
    pub fn set_policy(
        &self,
        actor: &Actor,
        team_id: &str,
        rule: &str,
        notice: &str,
        withdrawal: Option<&str>,
    ) -> Result<TeamView> {
        actor.require_all(Permission::TeamsManage)?;
        let rule = ConsentRule::parse(rule).ok_or_else(|| {
            DomainError::invalid(
                "rule",
                "one of record_without_consent, require_all, require_announcement",
            )
        })?;
        let withdrawal = match withdrawal {
            None | Some("speaker") => WithdrawalScope::Speaker,
            Some("meeting") => WithdrawalScope::Meeting,
            Some(_) => return Err(DomainError::invalid("withdrawal", "speaker or meeting")),
        };
        let notice = notice.trim();
        if notice.chars().count() > MAX_NOTICE_CHARS
            || notice.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(DomainError::invalid(
                "notice",
                format!("at most {MAX_NOTICE_CHARS} characters, no control characters"),
            ));
        }
        if rule == ConsentRule::RequireAnnouncement && notice.is_empty() {
            return Err(DomainError::invalid(
                "notice",
                "require_announcement needs the notice the room announces",
            ));
        }
        let (team, agents) = self.store.write(|tx| {
            let mut t = tx.team(team_id)?.ok_or(DomainError::NotFound("team"))?;
            t.consent.rule = rule;
            t.consent.notice = notice.to_owned();
            t.consent.withdrawal = withdrawal;
            t.consent.version += 1;
            tx.put_team(&t)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::TeamConsentPolicy, format!("team:{team_id}")).detail(format!(
                    "{} · withdrawal erases: {} · version {}",
                    rule.as_str(),
                    withdrawal.as_str(),
                    t.consent.version
                )),
            )?;
            let rooms: Vec<String> = tx
                .rooms()?
                .into_iter()
                .filter(|r| r.team_id.as_deref() == Some(team_id))
                .map(|r| r.id)
                .collect();
            let agents = live_agents(tx, |r| rooms.iter().any(|x| x == r))?;
            Ok::<_, DomainError>((t, agents))
        })?;
        self.commands.push_consent(agents, &team.consent);
        Ok(TeamView::from(team))
    }

    /// Pushes the rule of the room's (new) team to the room's agents: after a room
    /// moves to another team.
    pub fn room_moved(&self, room_id: &str) -> Result<()> {
        let (policy, agents) = self.store.read(|tx| {
            let agents = live_agents(tx, |r| r == room_id)?;
            Ok::<_, DomainError>((room_consent(tx, room_id)?, agents))
        })?;
        self.commands.push_consent(agents, &policy);
        Ok(())
    }

    /// Records a piece of evidence about one of the meeting's participants
    /// (`meetings.edit`), audited without the name; in a meeting held for everyone's
    /// consent, tells its agent when the gate should move (and waits for its answer).
    pub async fn record(
        &self,
        actor: &Actor,
        meeting_id: &str,
        input: &EvidenceInput,
    ) -> Result<ConsentResultView> {
        let state = parse_state(&input.state)?;
        let how = parse_how(&input.how)?;
        let note = input.note.as_deref().unwrap_or("").trim().to_owned();
        if note.chars().count() > MAX_NOTE_CHARS || note.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "note",
                format!("at most {MAX_NOTE_CHARS} characters, no control characters"),
            ));
        }
        if let Some(t) = input.at_s {
            if !t.is_finite() || t < 0.0 {
                return Err(DomainError::invalid("at_s", "seconds from the start, >= 0"));
            }
        }
        if how == ConsentHow::Spoken && input.at_s.is_none() {
            return Err(DomainError::invalid(
                "at_s",
                "spoken consent needs the time it was said (seconds from the start)",
            ));
        }
        let now = self.clock.now_ms();
        let who = Who::from(actor);
        let (meetings, actor, id) = (self.meetings.clone(), actor.clone(), meeting_id.to_owned());
        let participant = input.participant.trim().to_lowercase();
        let how_name = input.how.clone();
        let at_s = input.at_s;
        let (erasure, store) = (self.erasure.clone(), self.store.clone());
        let (view, gate, target, erased) = tokio::task::spawn_blocking(move || {
            let mut gate = Gate::Leave;
            let mut target = None;
            let view = meetings.edit(&actor, &id, |_, m| {
                let Some(i) = m
                    .participants
                    .iter()
                    .position(|p| p.name.to_lowercase() == participant)
                else {
                    return Err(DomainError::invalid(
                        "participant",
                        "not one of the meeting's participants (add them first)",
                    ));
                };
                if m.consent.evidence.len() >= MAX_EVIDENCE {
                    return Err(DomainError::Conflict(format!(
                        "the meeting already holds {MAX_EVIDENCE} pieces of consent evidence"
                    )));
                }
                m.consent.evidence.push(ConsentEvidence {
                    participant: m.participants[i].name.clone(),
                    state,
                    how,
                    by: actor.username.clone(),
                    at_ms: now,
                    at_s,
                    note,
                });
                gate = gate_after(m, state);
                target = Some(m.agent_id.clone());
                Ok(
                    Record::ok(A::MeetingConsent, format!("meeting:{id}")).detail(format!(
                        "participant {}: {} ({how_name})",
                        i + 1,
                        state.as_str(),
                    )),
                )
            })?;
            let erased = match state {
                ConsentState::Declined | ConsentState::Withdrawn => Some(erase_their_part(
                    &store,
                    &erasure,
                    &who,
                    &view,
                    &participant,
                )?),
                ConsentState::Notified | ConsentState::Consented => None,
            };
            Ok::<_, DomainError>((view, gate, target, erased))
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))??;
        let (agent, unreachable) = match (gate, target) {
            (Gate::Leave, _) | (_, None) => (None, false),
            (g, Some(agent)) => {
                let answer = self
                    .commands
                    .consent_gate(&agent, meeting_id, g == Gate::Open)
                    .await;
                let unreachable = answer.is_none();
                (answer, unreachable)
            }
        };
        Ok(ConsentResultView {
            meeting: view,
            erasure: erased,
            agent,
            agent_unreachable: unreachable,
        })
    }
}

/// Erases what a participant who declined or withdrew said: the segments attributed
/// to them or, when none is and the team's policy says so, the whole meeting.
fn erase_their_part(
    store: &Store,
    erasure: &Erasure,
    who: &Who,
    view: &MeetingView,
    participant: &str,
) -> Result<WithdrawalErasure> {
    let Some(name) = view
        .participants
        .iter()
        .find(|p| p.name.to_lowercase() == participant)
        .map(|p| p.name.clone())
    else {
        return Ok(WithdrawalErasure::NothingAttributed);
    };
    let (spoken, scope) = store.read(|tx| {
        let Some(m) = tx.meeting(&view.id)? else {
            return Ok::<_, DomainError>((Default::default(), WithdrawalScope::Speaker));
        };
        let scope = match m.team_id.as_deref() {
            Some(t) => tx
                .team(t)?
                .map(|t| t.consent.withdrawal)
                .unwrap_or_default(),
            None => WithdrawalScope::Speaker,
        };
        let current = meeting_view(tx, m)?;
        let subject = Subject {
            name: name.clone(),
            username: None,
        };
        let spoken: std::collections::BTreeSet<u64> = tx
            .segments(&view.id)?
            .iter()
            .filter(|s| spoken_by(&current, s, &subject))
            .map(|s| s.seq)
            .collect();
        Ok((spoken, scope))
    })?;
    let position = view
        .participants
        .iter()
        .position(|p| p.name == name)
        .map_or(0, |i| i + 1);
    let why = format!("participant {position} declined or withdrew consent");
    let held = |e: DomainError| match e {
        DomainError::Conflict(reason) => Ok(WithdrawalErasure::Held { reason }),
        e => Err(e),
    };
    if spoken.is_empty() {
        return match scope {
            WithdrawalScope::Speaker => Ok(WithdrawalErasure::NothingAttributed),
            WithdrawalScope::Meeting => erasure
                .erase_as(who, &view.id, &why)
                .map(|_| WithdrawalErasure::Meeting)
                .or_else(held),
        };
    }
    erasure
        .erase_segments_as(who, &view.id, &spoken, None, &why)
        .map(|done| WithdrawalErasure::Segments {
            segments: done.map(|d| d.segments).unwrap_or_default(),
        })
        .or_else(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::ParticipantRecord;
    use roomscribe_protocol::EventSource;

    fn event(seq: u64, kind: EventKind, at: f64) -> EventRecord {
        EventRecord {
            seq,
            at,
            kind,
            source: EventSource::Policy,
            received_at_ms: 0,
        }
    }

    #[test]
    fn the_gate_follows_the_newest_event_whatever_order_they_arrive_in() {
        let mut c = MeetingConsentRecord::default();
        apply_event(&mut c, &event(3, EventKind::ConsentGiven, 30.0));
        apply_event(&mut c, &event(1, EventKind::ConsentPending, 0.0));
        assert!(c.required);
        assert!(
            !c.awaiting,
            "the late pending event is older than the consent"
        );
        apply_event(&mut c, &event(5, EventKind::ConsentPending, 50.0));
        assert!(c.awaiting);
        apply_event(&mut c, &event(2, EventKind::Notice, 4.0));
        apply_event(&mut c, &event(0, EventKind::Notice, 1.0));
        assert_eq!(c.notice_at_s, Some(1.0));
        apply_event(&mut c, &event(6, EventKind::Highlight, 60.0));
        assert_eq!(c.gate_event_seq, Some(5));
    }

    fn meeting(names: &[&str]) -> MeetingRecord {
        let mut m: MeetingRecord = serde_json::from_value(serde_json::json!({
            "id": "m", "room_id": "r", "agent_id": "a", "title": "t", "started_at_ms": 1000,
            "status": "live", "segment_count": 0, "duration_s": 0.0, "updated_at_ms": 0
        }))
        .expect("meeting");
        m.participants = names
            .iter()
            .map(|n| ParticipantRecord {
                name: (*n).into(),
                username: None,
            })
            .collect();
        m
    }

    fn add(m: &mut MeetingRecord, who: &str, state: ConsentState) -> Gate {
        m.consent.evidence.push(ConsentEvidence {
            participant: who.into(),
            state,
            how: ConsentHow::Console,
            by: "u".into(),
            at_ms: 0,
            at_s: None,
            note: String::new(),
        });
        gate_after(m, state)
    }

    #[test]
    fn the_gate_opens_only_when_everyone_has_consented_and_closes_on_a_withdrawal() {
        let mut m = meeting(&["Kim", "Lee"]);
        assert_eq!(
            add(&mut m, "Kim", ConsentState::Consented),
            Gate::Leave,
            "no gate"
        );
        m.consent.required = true;
        m.consent.awaiting = true;
        assert_eq!(
            add(&mut m, "Kim", ConsentState::Consented),
            Gate::Leave,
            "Lee has not"
        );
        assert_eq!(add(&mut m, "lee", ConsentState::Consented), Gate::Open);
        m.consent.awaiting = false;
        assert_eq!(add(&mut m, "Lee", ConsentState::Withdrawn), Gate::Close);
        m.consent.awaiting = true;
        assert_eq!(
            add(&mut m, "Kim", ConsentState::Consented),
            Gate::Leave,
            "Lee's withdrawal is the latest word about Lee"
        );
        assert_eq!(add(&mut m, "Lee", ConsentState::Consented), Gate::Open);
        m.status = MeetingStatus::Ended;
        assert_eq!(add(&mut m, "Lee", ConsentState::Declined), Gate::Leave);
        let mut empty = meeting(&[]);
        empty.consent.required = true;
        empty.consent.awaiting = true;
        assert_eq!(gate_after(&empty, ConsentState::Consented), Gate::Leave);
    }

    #[test]
    fn the_view_derives_notified_from_the_rooms_notice_and_keeps_every_piece() {
        let mut m = meeting(&["Kim", "Lee"]);
        m.consent.notice_at_s = Some(2.0);
        add(&mut m, "Kim", ConsentState::Consented);
        add(&mut m, "Kim", ConsentState::Withdrawn);
        let v = consent_view(&m);
        assert_eq!(v.participants[0].state, "withdrawn");
        assert_eq!(v.participants[1].state, "notified");
        assert_eq!(v.participants[1].how, Some(ConsentHow::Announced));
        assert_eq!(v.participants[1].at_ms, Some(3000));
        assert_eq!(
            v.evidence.len(),
            2,
            "the consent a withdrawal withdrew is kept"
        );
        m.consent.notice_at_s = None;
        assert_eq!(consent_view(&m).participants[1].state, "none");
    }
}
