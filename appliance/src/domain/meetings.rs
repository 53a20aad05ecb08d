//! Meetings and transcripts as the console sees them: each meeting belongs to a team,
//! and every read, edit and export is checked against it. Reads and exports are
//! recorded in the audit log before the data is returned (no record, no data).

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::events::EventBus;
use super::live::Captions;
use super::scope::{meeting_for, room_name};
use super::search::Search;
use super::views::{Event, EventView, MeetingView, SegmentView, TranscriptView};
use super::{Actor, DomainError, Permission, Result, SharedClock};
use crate::export::manifest::{self, Manifest};
pub use crate::export::Format as ExportFormat;
use crate::export::{self as files, Transcript};
use crate::store::records::{MeetingRecord, ParticipantRecord};
use crate::store::{Reads, Store};
use std::sync::Arc;

/// What to export: the format, and whether corrected segments carry their original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportRequest {
    pub format: ExportFormat,
    pub original: bool,
}

impl ExportRequest {
    pub fn parse(format: &str, original: bool) -> Result<Self> {
        let format = ExportFormat::parse(format)
            .ok_or_else(|| DomainError::invalid("format", ExportFormat::NAMES))?;
        if original && format == ExportFormat::Srt {
            return Err(DomainError::invalid(
                "original",
                "SRT has no comments to carry originals in: use vtt, or another format",
            ));
        }
        Ok(Self { format, original })
    }
}

/// A change of a meeting's details; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MeetingPatch {
    pub title: Option<String>,
    /// A type from the administrator's list; `""` clears it.
    pub meeting_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub participants: Option<Vec<ParticipantRecord>>,
}

/// Limits on what a meeting's details may hold.
pub const MAX_TITLE: usize = 200;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG: usize = 40;
pub const MAX_PARTICIPANTS: usize = 100;
pub const MAX_TYPES: usize = 50;
const TYPES_KEY: &str = "meeting_types";

/// Trimmed, 1..=max characters, no control characters; else 422 naming `field`.
fn short_text(field: &'static str, s: &str, max: usize) -> Result<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("1 to {max} characters, no control characters"),
        ));
    }
    Ok(s.to_owned())
}

/// The administrator's meeting types as stored (none when never set).
fn stored_types(tx: &impl Reads) -> Result<Vec<String>> {
    Ok(tx
        .meta(TYPES_KEY)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// An exported transcript: a file name and its bytes.
#[derive(Debug, Clone)]
pub struct Export {
    pub filename: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The transcript state it was made from (the manifest's `transcript_sha256`).
    pub transcript_sha256: String,
}

/// A meeting as shown, with its room's name.
pub fn meeting_view(tx: &impl Reads, m: MeetingRecord) -> Result<MeetingView> {
    let held =
        super::erasure::blocking_hold(tx, &m.id, &m.room_id, m.team_id.as_deref())?.is_some();
    let consent = super::consent::consent_view(&m);
    Ok(MeetingView {
        held,
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
        meeting_type: m.meeting_type,
        tags: m.tags,
        consent,
        participants: m.participants,
        revision: m.revision,
    })
}

pub struct Meetings {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    events: Arc<EventBus>,
    captions: Arc<Captions>,
    search: Arc<Search>,
    clock: SharedClock,
}

impl Meetings {
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        events: Arc<EventBus>,
        captions: Arc<Captions>,
        search: Arc<Search>,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            audit,
            events,
            captions,
            search,
            clock,
        }
    }

    /// The meetings the actor may read, newest first.
    pub fn list(&self, actor: &Actor) -> Result<Vec<MeetingView>> {
        self.list_for(actor, Permission::MeetingsRead)
    }

    /// The meetings the actor may use `p` on, newest first.
    pub(crate) fn list_for(&self, actor: &Actor, p: Permission) -> Result<Vec<MeetingView>> {
        actor.require(p)?;
        let mut v = self.store.read(|tx| {
            tx.meetings()?
                .into_iter()
                .filter(|m| actor.can(p, m.team_id.as_deref()))
                .map(|m| meeting_view(tx, m))
                .collect::<Result<Vec<_>>>()
        })?;
        v.sort_by_key(|m| std::cmp::Reverse(m.started_at_ms));
        Ok(v)
    }

    /// Records a read (`action`) of a meeting the actor may use `p` on, then reads
    /// the transcript: the data is returned only if the record was written.
    pub(crate) fn recorded_read(
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
        self.read_transcript(actor, meeting_id, p)
    }

    /// The transcript read without an audit entry: for a change that records its
    /// own (never returned to the caller as a read).
    pub(crate) fn read_transcript(
        &self,
        actor: &Actor,
        meeting_id: &str,
        p: Permission,
    ) -> Result<TranscriptView> {
        self.store.read(|tx| {
            let m = meeting_for(tx, actor, p, meeting_id)?;
            let segments = tx
                .segments(&m.id)?
                .into_iter()
                .map(SegmentView::from)
                .collect();
            let events = tx.events(&m.id)?.into_iter().map(EventView::from).collect();
            let caption = self.captions.get(&m.id);
            let action_items = m.action_items.clone();
            let trackers = match &m.team_id {
                Some(t) => tx.team(t)?.map(|t| t.trackers).unwrap_or_default(),
                None => vec![],
            };
            Ok(TranscriptView {
                meeting: meeting_view(tx, m)?,
                segments,
                events,
                caption,
                action_items,
                trackers,
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

    /// A meeting's transcript as a file to download; audited before it is returned.
    /// The same transcript state always gives the same bytes; the export names that
    /// state (`transcript_sha256`) so its manifest can be asked for that very state.
    pub fn export(&self, actor: &Actor, meeting_id: &str, req: ExportRequest) -> Result<Export> {
        let (t, _) = self.exported(actor, meeting_id, req, "")?;
        Ok(Export {
            filename: file_name(&t, req.format),
            content_type: req.format.content_type(),
            body: render(&t, req.format)?,
            transcript_sha256: manifest::sha256_hex(&render(&t, ExportFormat::Json)?),
        })
    }

    /// The signed manifest of the file [`Self::export`] gives for the same request
    /// (`?manifest=1`): its SHA-256 and size, the meeting, the transcript's state,
    /// who and when; signed with the appliance's audit key. Audited as an export.
    /// With `pinned` (the `transcript_sha256` of an earlier export) it answers 409
    /// when the transcript has changed since, instead of signing other bytes.
    pub fn export_manifest(
        &self,
        actor: &Actor,
        meeting_id: &str,
        req: ExportRequest,
        pinned: Option<&str>,
    ) -> Result<Manifest> {
        let (t, at_ms) = self.exported(actor, meeting_id, req, ", manifest")?;
        let file = render(&t, req.format)?;
        let state = manifest::sha256_hex(&render(&t, ExportFormat::Json)?);
        if pinned.is_some_and(|p| !p.eq_ignore_ascii_case(&state)) {
            return Err(DomainError::Conflict(
                "the transcript changed since that export (a new segment or a correction): export it again, then ask for its manifest".into(),
            ));
        }
        Ok(self.sign(actor, &t, req, &file, state, at_ms))
    }

    /// The file and its signed manifest together, made from one read of the
    /// transcript (so the manifest is for these very bytes), telling `progress` how
    /// far it is: what a background export ([`super::ExportJobs`]) runs. Audited as
    /// an export when it starts.
    pub fn export_signed(
        &self,
        actor: &Actor,
        meeting_id: &str,
        req: ExportRequest,
        progress: files::Progress,
    ) -> Result<(Export, Manifest)> {
        let (t, at_ms) = self.exported(actor, meeting_id, req, ", in the background")?;
        progress(5);
        let body = files::render_with(&t, req.format, &|p| {
            progress(5 + (u16::from(p.min(100)) * 9 / 10) as u8)
        })
        .map_err(|e| DomainError::Internal(e.to_string()))?;
        let state = manifest::sha256_hex(&render(&t, ExportFormat::Json)?);
        let signed = self.sign(actor, &t, req, &body, state.clone(), at_ms);
        Ok((
            Export {
                filename: file_name(&t, req.format),
                content_type: req.format.content_type(),
                body,
                transcript_sha256: state,
            },
            signed,
        ))
    }

    /// Whether the actor may export the meeting (the check a background export makes
    /// before it is started; the export itself checks and audits again).
    pub fn may_export(&self, actor: &Actor, meeting_id: &str) -> Result<()> {
        self.store
            .read(|tx| meeting_for(tx, actor, Permission::MeetingsExport, meeting_id))
            .map(drop)
    }

    fn sign(
        &self,
        actor: &Actor,
        t: &Transcript,
        req: ExportRequest,
        file: &[u8],
        transcript_sha256: String,
        at_ms: i64,
    ) -> Manifest {
        self.audit.sign_export(manifest::Body {
            kind: String::new(),
            version: 0,
            file_name: file_name(t, req.format),
            format: req.format.extension().into(),
            file_sha256: manifest::sha256_hex(file),
            file_size: file.len() as u64,
            meeting_id: t.meeting.id.clone(),
            transcript_sha256,
            transcript_corrections: t.segments.iter().map(|s| s.version).sum(),
            segments: t.segments.len() as u64,
            exported_by: actor.username.clone(),
            exported_at_ms: at_ms,
            public_key: String::new(),
        })
    }

    /// The transcript as exported, read after its audit entry is written.
    fn exported(
        &self,
        actor: &Actor,
        meeting_id: &str,
        req: ExportRequest,
        what: &str,
    ) -> Result<(Transcript, i64)> {
        let detail = format!(
            "{}{what}{}",
            req.format.extension(),
            if req.original { ", with originals" } else { "" }
        );
        let t = self.recorded_read(
            actor,
            meeting_id,
            Permission::MeetingsExport,
            Record::ok(A::MeetingExport, format!("meeting:{meeting_id}")).detail(detail),
        )?;
        let originals = if req.original {
            self.store.read(|tx| {
                t.segments
                    .iter()
                    .filter(|s| s.edited)
                    .map(|s| {
                        let first = tx.revisions(&t.meeting.id, s.seq)?.into_iter().next();
                        Ok((s.seq, first.map(|r| r.text_before)))
                    })
                    .collect::<Result<std::collections::BTreeMap<_, _>>>()
            })?
        } else {
            Default::default()
        };
        Ok((transcript(t, &originals), self.clock.now_ms()))
    }
    /// Changes a meeting the actor may edit, with its audit entry, in one
    /// transaction; publishes the new view once committed.
    pub(crate) fn edit(
        &self,
        actor: &Actor,
        meeting_id: &str,
        change: impl FnOnce(&crate::store::WriteTx, &mut MeetingRecord) -> Result<Record>,
    ) -> Result<MeetingView> {
        let view = self.store.write(|tx| {
            let mut m = meeting_for(tx, actor, Permission::MeetingsEdit, meeting_id)?;
            let r = change(tx, &mut m)?;
            m.revision += 1;
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

    /// The meeting types the administrator defined, in their order.
    pub fn types(&self, actor: &Actor) -> Result<Vec<String>> {
        actor.require(Permission::MeetingsRead)?;
        self.store.read(stored_types)
    }

    /// Replaces the list of meeting types (`settings.manage`). Meetings keep a type
    /// that leaves the list; it just cannot be chosen anew.
    pub fn set_types(&self, actor: &Actor, types: &[String]) -> Result<Vec<String>> {
        actor.require_all(Permission::SettingsManage)?;
        if types.len() > MAX_TYPES {
            return Err(DomainError::invalid(
                "types",
                format!("at most {MAX_TYPES}"),
            ));
        }
        let mut list: Vec<String> = vec![];
        for t in types {
            let t = short_text("types", t, 60)?;
            if !list
                .iter()
                .any(|x| x.eq_ignore_ascii_case(&t) || x.to_lowercase() == t.to_lowercase())
            {
                list.push(t);
            }
        }
        self.store.write(|tx| {
            tx.put_meta(TYPES_KEY, &serde_json::to_vec(&list).unwrap_or_default())?;
            self.audit
                .record(
                    tx,
                    &Who::from(actor),
                    Record::ok(A::MeetingTypes, Some("meeting-types".to_owned()))
                        .detail(format!("{} types", list.len())),
                )
                .map(drop)
        })?;
        Ok(list)
    }

    /// Sets a meeting's title, type, tags or participants (`meetings.edit`), in one
    /// transaction with its audit entry (which names the fields, not their values);
    /// the type and tags are searchable before the answer.
    pub fn update(
        &self,
        actor: &Actor,
        meeting_id: &str,
        patch: &MeetingPatch,
    ) -> Result<MeetingView> {
        let title = patch
            .title
            .as_deref()
            .map(|t| short_text("title", t, MAX_TITLE))
            .transpose()?;
        let tags = match &patch.tags {
            None => None,
            Some(v) if v.len() > MAX_TAGS => {
                return Err(DomainError::invalid("tags", format!("at most {MAX_TAGS}")))
            }
            Some(v) => {
                let mut tags: Vec<String> = vec![];
                for t in v {
                    let t = short_text("tags", t, MAX_TAG)?;
                    if !tags.iter().any(|x| x.to_lowercase() == t.to_lowercase()) {
                        tags.push(t);
                    }
                }
                Some(tags)
            }
        };
        let participants = match &patch.participants {
            None => None,
            Some(v) if v.len() > MAX_PARTICIPANTS => {
                return Err(DomainError::invalid(
                    "participants",
                    format!("at most {MAX_PARTICIPANTS}"),
                ))
            }
            Some(v) => Some(
                v.iter()
                    .map(|p| {
                        Ok(ParticipantRecord {
                            name: short_text("participants", &p.name, 80)?,
                            username: p.username.clone().filter(|u| !u.trim().is_empty()),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        self.edit(actor, meeting_id, |tx, m| {
            let mut changed = vec![];
            if let Some(t) = title {
                m.title = t;
                changed.push("title");
            }
            if let Some(k) = patch.meeting_type.as_deref().map(str::trim) {
                let current = m.meeting_type.clone();
                m.meeting_type = if k.is_empty() {
                    None
                } else if current
                    .as_deref()
                    .is_some_and(|c| c.to_lowercase() == k.to_lowercase())
                {
                    // Kept as it is, even if it has left the list since.
                    current
                } else {
                    let known = stored_types(tx)?;
                    let canonical = known.iter().find(|t| t.to_lowercase() == k.to_lowercase());
                    match canonical {
                        Some(t) => Some(t.clone()),
                        None => {
                            return Err(DomainError::invalid(
                                "type",
                                format!(
                                    "not one of the meeting types ({})",
                                    if known.is_empty() {
                                        "none are defined".to_owned()
                                    } else {
                                        known.join(", ")
                                    }
                                ),
                            ))
                        }
                    }
                };
                changed.push("type");
            }
            if let Some(t) = tags {
                m.tags = t;
                changed.push("tags");
            }
            if let Some(p) = participants {
                let linked: Vec<&str> = m
                    .participants
                    .iter()
                    .filter_map(|p| p.username.as_deref())
                    .collect();
                // New links only: a link made earlier stays, even to a deleted account.
                // One may link oneself, or a member of the meeting's team; only those
                // who manage users may link anyone else: an editor cannot learn which
                // usernames exist outside the team by trying them.
                let team = match m.team_id.as_deref() {
                    Some(t) => tx.team(t)?,
                    None => None,
                };
                let anyone = actor.can(Permission::UsersManage, None);
                for u in p.iter().filter_map(|p| p.username.as_deref()) {
                    let reachable = u == actor.username
                        || anyone
                        || team.as_ref().is_some_and(|t| t.members.contains(u));
                    if !linked.contains(&u) && (!reachable || tx.user(u)?.is_none()) {
                        return Err(DomainError::invalid(
                            "participants",
                            format!("no user {u:?} in this meeting's team to link to"),
                        ));
                    }
                }
                m.participants = p;
                changed.push("participants");
            }
            if changed.is_empty() {
                return Err(DomainError::invalid(
                    "title",
                    "give at least one of title, type, tags, participants",
                ));
            }
            Ok(Record::ok(A::MeetingEdit, format!("meeting:{meeting_id}"))
                .detail(changed.join(", ")))
        })
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
            Ok(
                Record::ok(A::MeetingEdit, format!("meeting:{meeting_id}")).detail(
                    "a speaker name (the label and name are content: kept sealed with the meeting)"
                        .to_owned(),
                ),
            )
        })
    }
}

fn render(t: &Transcript, format: ExportFormat) -> Result<Vec<u8>> {
    files::render(t, format).map_err(|e| DomainError::Internal(e.to_string()))
}

fn file_name(t: &Transcript, format: ExportFormat) -> String {
    format!("meeting-{}.{}", t.meeting.id, format.extension())
}

/// The export's form of a transcript: speakers by the names given to them.
fn transcript(
    t: TranscriptView,
    originals: &std::collections::BTreeMap<u64, Option<String>>,
) -> Transcript {
    let generated = super::understanding::for_export(&t);
    let m = t.meeting;
    let name = |label: &str| {
        m.speaker_names
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_owned())
    };
    let mut engines: Vec<String> = t
        .segments
        .iter()
        .filter_map(|s| {
            s.engine.as_ref().map(|e| {
                format!("{e} {}", s.model.as_deref().unwrap_or_default())
                    .trim()
                    .to_owned()
            })
        })
        .collect();
    engines.sort();
    engines.dedup();
    Transcript {
        schema: Transcript::SCHEMA,
        schema_version: Transcript::SCHEMA_VERSION,
        segments: t
            .segments
            .into_iter()
            .map(|s| files::Segment {
                seq: s.seq,
                start: s.start,
                end: s.end,
                speaker: name(&s.speaker),
                original: originals.get(&s.seq).cloned().flatten(),
                text: s.text,
                confidence: s.confidence,
                edited: s.edited,
                version: s.version,
                words: s
                    .words
                    .into_iter()
                    .map(|w| files::Word {
                        word: w.word,
                        start: w.start,
                        end: w.end,
                        conf: w.conf,
                    })
                    .collect(),
            })
            .collect(),
        generated,
        events: t
            .events
            .into_iter()
            .map(|e| files::Event {
                at: e.at,
                kind: label(e.kind),
                source: label(e.source),
            })
            .collect(),
        meeting: files::Meeting {
            title: m.title.clone(),
            room: m.room_name.clone(),
            team_id: m.team_id.clone(),
            started_at_ms: m.started_at_corrected_ms,
            duration_s: m.duration_s,
            status: label(m.status),
            engines,
            consent: files::Consent {
                required: m.consent.required,
                notice_at_s: m.consent.notice_at_s,
                participants: m
                    .consent
                    .participants
                    .iter()
                    .map(|p| files::ParticipantConsent {
                        name: p.name.clone(),
                        state: p.state.clone(),
                    })
                    .collect(),
                evidence: m
                    .consent
                    .evidence
                    .iter()
                    .map(|e| files::Evidence {
                        participant: e.participant.clone(),
                        state: e.state.as_str().to_owned(),
                        how: e.how.as_str().to_owned(),
                        by: e.by.clone(),
                        recorded_at_ms: e.at_ms,
                        at_s: e.at_s,
                        note: e.note.clone(),
                    })
                    .collect(),
            },
            id: m.id,
        },
    }
}

/// An enum's name as its JSON says it (`"ended"`, `"action_item"`).
fn label(v: impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
