//! Search across the meetings a caller may read. The caller's reach (scope `all`, or
//! their teams) is a filter of the index query itself, so no hit, count or ranking
//! reveals a meeting outside it; each search is recorded in the audit log (its
//! filters and hit count, not the words searched for).
//!
//! The index follows storage through one indexer thread: ingest hands it each
//! envelope's new segments after commit (visible within `search::indexer::BATCH`), edits that change
//! who may see a meeting or what it says wait until the index shows them. At start
//! the index is built in memory from storage (progress on `/readyz`): it is never
//! written to disk; `roomscribe search reindex` builds it again.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::views::MeetingView;
use super::{Actor, DomainError, Permission, Result, Scope};
use crate::search::indexer::{Change, Indexer, MeetingFields, Source, IDLE};
use crate::search::{self, Filters, Reach, SegmentDoc, Sort, TranscriptIndex};
use crate::store::records::{MeetingRecord, SegmentRecord};
use crate::store::{Reads, Store};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

/// Default and largest page of hits.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
/// How deep pages may go (a deeper look needs a narrower query).
pub const MAX_OFFSET: usize = 10_000;

/// A search's query-string parameters, as given.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub q: Option<String>,
    pub room: Option<String>,
    pub team: Option<String>,
    pub speaker: Option<String>,
    /// A meeting type (one of the admin's list), any case.
    #[serde(rename = "type")]
    pub meeting_type: Option<String>,
    pub tag: Option<String>,
    /// `YYYY-MM-DD` (UTC, from the start of that day) or ms since the epoch.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC, through the end of that day) or ms since the epoch.
    pub to: Option<String>,
    /// `newest` (default) or `relevance`.
    pub sort: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl SearchParams {
    pub fn into_request(self) -> Result<SearchRequest> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let from_ms = match nonempty(self.from) {
            Some(s) => Some(parse_time(&s, false).ok_or_else(|| bad_time("from"))?),
            None => None,
        };
        let to_ms = match nonempty(self.to) {
            Some(s) => Some(parse_time(&s, true).ok_or_else(|| bad_time("to"))?),
            None => None,
        };
        let sort = match self.sort.as_deref() {
            None | Some("" | "newest") => Sort::Newest,
            Some("relevance") => Sort::Relevance,
            Some(_) => return Err(DomainError::invalid("sort", "newest or relevance")),
        };
        Ok(SearchRequest {
            q: self.q.unwrap_or_default(),
            filters: Filters {
                room: nonempty(self.room),
                team: nonempty(self.team),
                speaker: nonempty(self.speaker),
                from_ms,
                to_ms,
                meeting_type: nonempty(self.meeting_type),
                tag: nonempty(self.tag),
            },
            sort,
            limit: self.limit,
            cursor: nonempty(self.cursor),
        })
    }
}

fn bad_time(field: &'static str) -> DomainError {
    DomainError::invalid(field, "a date YYYY-MM-DD or milliseconds since 1970")
}

/// `YYYY-MM-DD` as the ms of that UTC day's start (of the next day's, for an end),
/// or plain milliseconds.
pub fn parse_time(s: &str, end_of_day: bool) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > days_in[m as usize - 1] {
        return None;
    }
    // Days from 1970-01-01 (the civil-from-days algorithm, inverted).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * i64::from(m2) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468 + i64::from(end_of_day);
    Some(days * 86_400_000)
}

/// What a search asks for, as parsed from a request.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub q: String,
    pub filters: Filters,
    pub sort: Sort,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub meeting_id: String,
    pub meeting_title: String,
    pub room_name: String,
    /// The meeting's start (appliance clock), ms.
    pub meeting_started_at_ms: i64,
    pub segment: u64,
    pub start: f64,
    pub end: f64,
    pub speaker: Option<String>,
    pub snippet: String,
    /// `[from, to)` character offsets of the matched words in `snippet`.
    pub highlights: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    pub total: usize,
    pub next_cursor: Option<String>,
    /// While the index is being built: how far (results may be missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexing_percent: Option<u8>,
}

struct Shared {
    index: RwLock<Option<Arc<TranscriptIndex>>>,
    progress: Arc<AtomicU8>,
    /// Raised at shutdown: a build under way stops (and is rolled back).
    cancel: Arc<AtomicBool>,
    changes: Mutex<Option<mpsc::Sender<Change>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub struct Search {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    dir: PathBuf,
    shared: Arc<Shared>,
}

/// A segment as the index holds it.
pub fn segment_doc(m: &MeetingView, s: &SegmentRecord) -> SegmentDoc {
    SegmentDoc {
        meeting_id: m.id.clone(),
        seq: s.seq,
        start: s.start,
        end: s.end,
        speaker_name: s
            .speaker
            .as_ref()
            .and_then(|l| m.speaker_names.get(l))
            .cloned(),
        speaker_label: s.speaker.clone(),
        room_id: m.room_id.clone(),
        team_id: m.team_id.clone(),
        meeting_start_ms: m.started_at_corrected_ms,
        meeting_type: m.meeting_type.clone(),
        tags: m.tags.clone(),
        text: s.text.clone(),
        meeting_revision: m.revision,
    }
}

fn meeting_docs(tx: &impl Reads, m: MeetingRecord) -> Result<Vec<SegmentDoc>> {
    let segments = tx.segments(&m.id)?;
    let view = super::meetings::meeting_view(tx, m)?;
    Ok(segments.iter().map(|s| segment_doc(&view, s)).collect())
}

fn index_error(e: search::IndexError) -> DomainError {
    DomainError::Internal(e.to_string())
}

impl Search {
    pub fn new(store: Arc<Store>, audit: Arc<AuditLog>, data_dir: &std::path::Path) -> Self {
        Self {
            store,
            audit,
            dir: data_dir.join(search::DIR),
            shared: Arc::new(Shared {
                index: RwLock::new(None),
                progress: Arc::new(AtomicU8::new(IDLE)),
                cancel: Arc::new(AtomicBool::new(false)),
                changes: Mutex::new(None),
                worker: Mutex::new(None),
            }),
        }
    }

    /// Creates the index in memory and starts the indexer: it builds the index from
    /// storage in the background, then follows changes. Until it is built, searches
    /// may miss meetings and `/readyz` shows the progress.
    pub fn start(&self) -> anyhow::Result<()> {
        self.shared.cancel.store(false, Ordering::Relaxed);
        // The index holds meeting text, and is kept in memory only: nothing of it is
        // at rest, in a copy of the data directory or a backup. An index an earlier
        // version kept on disk is removed.
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
            tracing::info!(dir = %self.dir.display(), "the search index on disk was removed (it is kept in memory now)");
        }
        let index = TranscriptIndex::in_memory()?;
        let index = Arc::new(index);
        let (tx, rx) = mpsc::channel();
        *super::lock(&self.shared.changes) = Some(tx);
        *self.shared.index.write().unwrap_or_else(|p| p.into_inner()) = Some(index.clone());
        // With meetings in storage, progress shows from now until the worker has
        // built the index (a search before then may miss some); a new,
        // empty appliance is ready at once.
        if self.store.read(|tx| tx.meeting_count())? > 0 {
            self.shared.progress.store(0, Ordering::Relaxed);
        }
        let w = Indexer::new(
            StoreSource(self.store.clone()),
            index,
            self.shared.progress.clone(),
            self.shared.cancel.clone(),
        );
        let worker = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || {
                w.first();
                w.follow(rx);
            })?;
        *super::lock(&self.shared.worker) = Some(worker);
        Ok(())
    }

    /// Stops following changes: the indexer commits what it has and ends, and the
    /// index is closed (its writer lock released). Blocks until then.
    pub fn stop(&self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
        super::lock(&self.shared.changes).take();
        self.shared
            .index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = super::lock(&self.shared.worker).take() {
            if w.join().is_err() {
                tracing::error!("search index: the indexer panicked");
            }
        }
    }

    fn send(&self, c: Change) -> bool {
        super::lock(&self.shared.changes)
            .as_ref()
            .is_some_and(|tx| tx.send(c).is_ok())
    }

    /// New segments of a meeting, just committed.
    pub fn segments_stored(&self, meeting: &MeetingView, segments: &[SegmentRecord]) {
        if !segments.is_empty() {
            self.send(Change::Segments(
                segments.iter().map(|s| segment_doc(meeting, s)).collect(),
            ));
        }
    }

    /// A meeting changed (team, speaker names, text): returns once the index shows it.
    pub fn meeting_changed(&self, meeting_id: &str) {
        self.send(Change::Meeting(meeting_id.to_owned()));
        self.flush();
    }

    /// Waits until every change handed over so far is searchable.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Change::Flush(tx)) {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
    }

    /// How far a build of the index is, while one runs.
    pub fn indexing_percent(&self) -> Option<u8> {
        Some(self.shared.progress.load(Ordering::Relaxed)).filter(|p| *p != IDLE)
    }

    /// Builds the index again from storage in the background when the appliance runs
    /// (stopped, there is nothing to do: the index lives in memory and is built at
    /// every start). Returns how many meetings storage holds, and whether a build runs.
    pub fn reindex(&self, actor: &Actor) -> Result<(usize, bool)> {
        actor.require_all(Permission::SettingsManage)?;
        let meetings = self
            .store
            .read(|tx| Ok::<_, DomainError>(tx.meetings()?.len()))?;
        self.store.write(|tx| {
            self.audit
                .record(
                    tx,
                    &Who::from(actor),
                    Record::ok(A::SearchReindex, Some("search-index".to_owned()))
                        .detail(format!("{meetings} meetings")),
                )
                .map(drop)
        })?;
        // Stopped, there is no index to build: it is built at every start.
        let running = self.send(Change::Rebuild);
        Ok((meetings, running))
    }

    /// Segments matching `req` in the meetings `actor` may read.
    pub fn search(&self, actor: &Actor, req: &SearchRequest) -> Result<SearchResults> {
        let reach = match actor.require(Permission::MeetingsRead)? {
            Scope::All => Reach::All,
            Scope::Teams => Reach::Teams(actor.teams.clone()),
        };
        let expr = search::parse(&req.q).map_err(|e| DomainError::invalid("q", e.to_string()))?;
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("from 1 to {MAX_LIMIT}"),
            ));
        }
        let offset = match &req.cursor {
            None => 0,
            Some(c) => decode_cursor(c)?,
        };
        let index = self
            .shared
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| DomainError::Unavailable("the search index is not open yet".into()))?;
        let page = index
            .search(&expr, &req.filters, &reach, req.sort, offset, limit)
            .map_err(index_error)?;
        let hits = self.store.read(|tx| {
            let mut out = Vec::with_capacity(page.hits.len());
            for h in page.hits {
                let Some(m) = tx.meeting(&h.meeting_id)? else {
                    continue;
                };
                // The index and storage agree on who may see a meeting (edits wait
                // for the index); this holds even in the moment between.
                if !actor.can(Permission::MeetingsRead, m.team_id.as_deref()) {
                    continue;
                }
                let view = super::meetings::meeting_view(tx, m)?;
                out.push(SearchHit {
                    meeting_title: view.title,
                    room_name: view.room_name,
                    meeting_started_at_ms: view.started_at_corrected_ms,
                    meeting_id: h.meeting_id,
                    segment: h.seq,
                    start: h.start,
                    end: h.end,
                    speaker: h.speaker,
                    snippet: h.snippet.text,
                    highlights: h.snippet.highlights,
                });
            }
            Ok::<_, DomainError>(out)
        })?;
        let next = offset + limit;
        let next_cursor = (next < page.total && next <= MAX_OFFSET).then(|| encode_cursor(next));
        self.store.write(|tx| {
            self.audit
                .record(
                    tx,
                    &Who::from(actor),
                    Record::ok(A::SearchQuery, None).detail(describe(&req.filters, page.total)),
                )
                .map(drop)
        })?;
        Ok(SearchResults {
            hits,
            total: page.total,
            next_cursor,
            indexing_percent: self.indexing_percent(),
        })
    }
}

/// The audit detail of a search: its filters and hit count (never the words).
fn describe(f: &Filters, total: usize) -> String {
    let mut parts = vec![format!("{total} hits")];
    for (k, v) in [
        ("room", &f.room),
        ("team", &f.team),
        ("speaker", &f.speaker),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k} {v}"));
        }
    }
    if let Some(v) = f.from_ms {
        parts.push(format!("from {v}"));
    }
    if let Some(v) = f.to_ms {
        parts.push(format!("to {v}"));
    }
    parts.join(", ")
}

fn encode_cursor(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

fn decode_cursor(c: &str) -> Result<usize> {
    use base64::Engine;
    let bad = || DomainError::invalid("cursor", "not a cursor this appliance gave out");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let n: usize = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.strip_prefix('o'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    if n > MAX_OFFSET {
        return Err(bad());
    }
    Ok(n)
}

/// Storage as the indexer reads it.
struct StoreSource(Arc<Store>);

impl Source for StoreSource {
    fn meetings(&self) -> anyhow::Result<Vec<(String, u64, u64)>> {
        Ok(self.0.read(|tx| {
            Ok::<_, DomainError>(
                tx.meetings()?
                    .into_iter()
                    .map(|m| (m.id, m.segment_count, m.revision))
                    .collect(),
            )
        })?)
    }

    fn meeting(&self, meeting_id: &str) -> anyhow::Result<Option<MeetingFields>> {
        Ok(self.0.read(|tx| match tx.meeting(meeting_id)? {
            Some(m) => {
                let v = super::meetings::meeting_view(tx, m)?;
                Ok::<_, DomainError>(Some(MeetingFields {
                    room_id: v.room_id,
                    team_id: v.team_id,
                    meeting_start_ms: v.started_at_corrected_ms,
                    speaker_names: v.speaker_names,
                    meeting_type: v.meeting_type,
                    tags: v.tags,
                    revision: v.revision,
                }))
            }
            None => Ok(None),
        })?)
    }

    fn docs(&self, meeting_id: &str) -> anyhow::Result<Option<Vec<SegmentDoc>>> {
        Ok(self.0.read(|tx| match tx.meeting(meeting_id)? {
            Some(m) => meeting_docs(tx, m).map(Some),
            None => Ok::<_, DomainError>(None),
        })?)
    }
}
