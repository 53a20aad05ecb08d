//! Subject access and portability (GDPR Art. 15 and 20): everything stored about one
//! person, as one signed archive — a ZIP holding `subject.json` (machine-readable) and
//! `subject.html` (to read), with a detached manifest signed by the audit key that
//! `roomscribe export verify` checks offline.
//!
//! What is "about" the person, in the meetings the caller may export:
//! - a meeting where they are named as a participant (by name, or by their linked
//!   username): the meeting's details and all of its segments (they attended it);
//! - any other meeting: the segments whose speaker is them (the speaker's label, or
//!   the name the label was given);
//! - with a username: the audit entries they made, or that were made to their account.
//!
//! The export itself is audited (`subject.export`, with counts, never the content).
//!
//! An erasure request (GDPR Art. 17, `roomscribe subject erase`) erases the segments
//! the person spoke in every meeting the caller may delete from, and their name from
//! those meetings' participants and speaker names (see `Erasure::erase_segments_as`:
//! each meeting is re-keyed, so no older copy keeps them). Consent evidence about them
//! is kept: it is what proves the recording was lawful (Art. 17(3)(e)). Meetings under
//! legal hold are left as they are and named in the answer. Audited as
//! `subject.erase`, with counts and the reason.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::erasure::Erasure;
use super::meetings::meeting_view;
use super::views::MeetingView;
use super::{Actor, DomainError, Permission, Result, SharedClock};
use crate::auditlog::Entry;
use crate::export::manifest::{self, Body, Manifest};
use crate::store::records::SegmentRecord;
use crate::store::{Reads, Store};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::sync::Arc;

/// Who an access request is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub name: String,
    pub username: Option<String>,
}

/// One segment as the archive gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectSegment {
    pub seq: u64,
    pub start: f64,
    pub end: f64,
    /// The speaker as shown: the name the label was given, else the label.
    pub speaker: Option<String>,
    pub text: String,
    /// Corrections it has had.
    pub version: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectMeeting {
    pub meeting: MeetingView,
    /// Why it is in the archive: `participant`, `speaker`, or both.
    pub reasons: Vec<&'static str>,
    pub segments: Vec<SubjectSegment>,
}

/// What the archive's `subject.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectReport {
    pub kind: &'static str,
    pub version: u32,
    pub subject: Subject,
    pub generated_by: String,
    pub generated_at_ms: i64,
    pub meetings: Vec<SubjectMeeting>,
    pub audit_entries: Vec<Entry>,
}

/// The archive and its signed manifest.
pub struct SubjectArchive {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
    pub meetings: usize,
    pub segments: usize,
    pub audit_entries: usize,
}

pub struct Subjects {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    key: Arc<SigningKey>,
    clock: SharedClock,
    erasure: Arc<Erasure>,
}

/// What an erasure request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectErasure {
    /// Meetings changed: segments erased, or the name forgotten.
    pub meetings: usize,
    pub segments: usize,
    /// Meetings about the person left untouched because a legal hold covers them.
    pub held: Vec<String>,
}

/// The longest name searched for.
const MAX_NAME: usize = 200;

fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(DomainError::invalid(
            "name",
            format!("the person's name, 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name)
}

fn same(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Whether `s` spoke the segment: its speaker's label, or the name the label was given.
pub fn spoken_by(view: &MeetingView, seg: &SegmentRecord, s: &Subject) -> bool {
    seg.speaker.as_deref().is_some_and(|l| {
        same(l, &s.name) || view.speaker_names.get(l).is_some_and(|n| same(n, &s.name))
    })
}

/// The segments of a meeting spoken by `name`, and whether they were named as a
/// participant (the pure rule of what is "about" the person).
pub fn about(view: &MeetingView, segments: &[SegmentRecord], s: &Subject) -> SubjectMeeting {
    let participant = view.participants.iter().any(|p| {
        same(&p.name, &s.name)
            || s.username
                .as_deref()
                .is_some_and(|u| p.username.as_deref() == Some(u))
    });
    let shown = |seg: &SegmentRecord| {
        seg.speaker.as_ref().map(|l| {
            view.speaker_names
                .get(l)
                .cloned()
                .unwrap_or_else(|| l.clone())
        })
    };
    let spoke = |seg: &SegmentRecord| spoken_by(view, seg, s);
    let mut reasons = vec![];
    if participant {
        reasons.push("participant");
    }
    if segments.iter().any(spoke) {
        reasons.push("speaker");
    }
    let segments = segments
        .iter()
        .filter(|seg| participant || spoke(seg))
        .map(|seg| SubjectSegment {
            seq: seg.seq,
            start: seg.start,
            end: seg.end,
            speaker: shown(seg),
            text: seg.text.clone(),
            version: seg.version,
        })
        .collect();
    // Their own consent evidence; other people's stays out of their archive.
    let mut meeting = view.clone();
    meeting
        .consent
        .evidence
        .retain(|e| same(&e.participant, &s.name));
    SubjectMeeting {
        meeting,
        reasons,
        segments,
    }
}

impl Subjects {
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        key: Arc<SigningKey>,
        clock: SharedClock,
        erasure: Arc<Erasure>,
    ) -> Self {
        Self {
            store,
            audit,
            key,
            clock,
            erasure,
        }
    }

    /// Erases what `subject` spoke, and their name, from every meeting `actor` may
    /// delete from (`meetings.delete`), for `why`.
    pub fn erase(&self, actor: &Actor, subject: &Subject, why: &str) -> Result<SubjectErasure> {
        actor.require(Permission::MeetingsDelete)?;
        let name = check_name(&subject.name)?;
        let why = why.trim();
        if why.is_empty() || why.chars().count() > 500 || why.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "reason",
                "say why, in 1 to 500 characters without control characters",
            ));
        }
        let found = self.store.read(|tx| {
            let mut out = vec![];
            for m in tx.meetings()? {
                if !actor.can(Permission::MeetingsDelete, m.team_id.as_deref()) {
                    continue;
                }
                let segments = tx.segments(&m.id)?;
                let view = meeting_view(tx, m)?;
                let spoken: std::collections::BTreeSet<u64> = segments
                    .iter()
                    .filter(|s| spoken_by(&view, s, subject))
                    .map(|s| s.seq)
                    .collect();
                let named = view.participants.iter().any(|p| same(&p.name, name))
                    || view.speaker_names.values().any(|n| same(n, name));
                if !spoken.is_empty() || named {
                    out.push((view.id, spoken));
                }
            }
            Ok::<_, DomainError>(out)
        })?;
        let who = Who::from(actor);
        let mut done = SubjectErasure {
            meetings: 0,
            segments: 0,
            held: vec![],
        };
        for (id, spoken) in found {
            match self
                .erasure
                .erase_segments_as(&who, &id, &spoken, Some(name), why)
            {
                Ok(Some(v)) => {
                    done.meetings += 1;
                    done.segments += v.segments.len();
                }
                Ok(None) => {}
                Err(DomainError::Conflict(_)) => done.held.push(id),
                Err(e) => return Err(e),
            }
        }
        self.store.write(|tx| {
            self.audit
                .record(
                    tx,
                    &who,
                    Record::ok(
                        A::SubjectErase,
                        subject.username.as_ref().map(|u| format!("user:{u}")),
                    )
                    .detail(format!(
                        "{} meetings, {} segments erased, {} under legal hold left: {why}",
                        done.meetings,
                        done.segments,
                        done.held.len()
                    )),
                )
                .map(drop)
        })?;
        Ok(done)
    }

    /// Everything about `subject` that `actor` may export (`meetings.export` and
    /// `audit.read`), as a signed archive.
    pub fn export(&self, actor: &Actor, subject: &Subject) -> Result<SubjectArchive> {
        actor.require(Permission::MeetingsExport)?;
        actor.require_all(Permission::AuditRead)?;
        check_name(&subject.name)?;
        let now = self.clock.now_ms();
        let meetings = self.store.read(|tx| {
            let mut out = vec![];
            for m in tx.meetings()? {
                if !actor.can(Permission::MeetingsExport, m.team_id.as_deref()) {
                    continue;
                }
                let segments = tx.segments(&m.id)?;
                let view = meeting_view(tx, m)?;
                let found = about(&view, &segments, subject);
                if !found.reasons.is_empty() {
                    out.push(found);
                }
            }
            Ok::<_, DomainError>(out)
        })?;
        let audit_entries = match &subject.username {
            None => vec![],
            Some(u) => self.audit_about(u)?,
        };
        let report = SubjectReport {
            kind: "roomscribe.subject-access",
            version: 1,
            subject: subject.clone(),
            generated_by: actor.username.clone(),
            generated_at_ms: now,
            meetings,
            audit_entries,
        };
        let segments = report.meetings.iter().map(|m| m.segments.len()).sum();
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| DomainError::Internal(e.to_string()))?;
        let html = crate::export::subject::html(&page(&report));
        let bytes = crate::export::subject::zip(&json, html.as_bytes())
            .map_err(|e| DomainError::Internal(format!("subject archive: {e}")))?;
        let file_name = format!("subject-access-{now}.zip");
        let manifest = manifest::sign(
            Body {
                kind: String::new(),
                version: 0,
                file_name: file_name.clone(),
                format: "subject-access".into(),
                file_sha256: manifest::sha256_hex(&bytes),
                file_size: bytes.len() as u64,
                meeting_id: String::new(),
                transcript_sha256: manifest::sha256_hex(&json),
                transcript_corrections: report
                    .meetings
                    .iter()
                    .flat_map(|m| &m.segments)
                    .map(|s| s.version)
                    .sum(),
                segments: segments as u64,
                exported_by: actor.username.clone(),
                exported_at_ms: now,
                public_key: String::new(),
            },
            &self.key,
        );
        self.store.write(|tx| {
            self.audit
                .record(
                    tx,
                    &Who::from(actor),
                    Record::ok(
                        A::SubjectExport,
                        subject.username.as_ref().map(|u| format!("user:{u}")),
                    )
                    .detail(format!(
                        "{} meetings, {segments} segments, {} audit entries",
                        report.meetings.len(),
                        report.audit_entries.len()
                    )),
                )
                .map(drop)
        })?;
        Ok(SubjectArchive {
            file_name,
            bytes,
            manifest,
            meetings: report.meetings.len(),
            segments,
            audit_entries: report.audit_entries.len(),
        })
    }

    /// Audit entries the user made or that were made to their account, oldest first.
    fn audit_about(&self, username: &str) -> Result<Vec<Entry>> {
        let target = format!("user:{username}");
        self.store.read(|tx| {
            let entries = tx.audit_entries(.., false, usize::MAX)?;
            Ok::<_, DomainError>(
                entries
                    .into_iter()
                    .filter_map(|(_, e)| serde_json::from_slice::<Entry>(&e.bytes).ok())
                    .filter(|e| e.actor == username || e.target.as_deref() == Some(&target))
                    .collect(),
            )
        })
    }
}

/// The report as the HTML page shows it.
fn page(r: &SubjectReport) -> crate::export::subject::Page<'_> {
    use crate::export::subject::{Page, PageEntry, PageMeeting};
    Page {
        name: &r.subject.name,
        username: r.subject.username.as_deref(),
        generated_by: &r.generated_by,
        generated_at_ms: r.generated_at_ms,
        meetings: r
            .meetings
            .iter()
            .map(|m| PageMeeting {
                id: &m.meeting.id,
                title: &m.meeting.title,
                room: &m.meeting.room_name,
                started_at_ms: m.meeting.started_at_corrected_ms,
                reasons: m.reasons.join(", "),
                participants: m
                    .meeting
                    .participants
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                consent: m
                    .meeting
                    .consent
                    .evidence
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {} ({}) recorded by {} on {}",
                            e.participant,
                            e.state.as_str(),
                            e.how.as_str(),
                            e.by,
                            crate::export::date(e.at_ms),
                        )
                    })
                    .collect(),
                segments: m
                    .segments
                    .iter()
                    .map(|s| {
                        (
                            s.start,
                            s.speaker.as_deref().unwrap_or("unknown"),
                            s.text.as_str(),
                        )
                    })
                    .collect(),
            })
            .collect(),
        audit: r
            .audit_entries
            .iter()
            .map(|e| PageEntry {
                at_ms: e.at_ms,
                actor: &e.actor,
                action: &e.action,
                target: e.target.as_deref().unwrap_or(""),
                outcome: format!("{:?}", e.outcome).to_lowercase(),
            })
            .collect(),
    }
}
