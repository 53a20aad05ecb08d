//! The one thread that writes the index: it builds the (in-memory) index at start,
//! then applies changes in batches (one commit per [`BATCH`]), reading storage
//! through a [`Source`] so that it knows nothing of the domain.
//!
//! What a document says about its meeting (team, room, start, speaker names) is read
//! from storage when the document is written, not when ingest handed it over, so a
//! meeting moved to another team in between is indexed under its new team.

use super::{SegmentDoc, TranscriptIndex};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long the indexer gathers changes before one commit.
pub const BATCH: Duration = Duration::from_millis(100);
/// The progress value meaning no build is under way.
pub const IDLE: u8 = u8::MAX;

/// What the indexer is handed.
pub enum Change {
    /// New segments of one meeting, just committed to storage.
    Segments(Vec<SegmentDoc>),
    /// Index this meeting again from storage (or drop it, if gone).
    Meeting(String),
    Rebuild,
    /// Answered once everything before it is searchable.
    Flush(mpsc::Sender<()>),
}

/// A meeting's fields every one of its documents carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingFields {
    pub room_id: String,
    pub team_id: Option<String>,
    pub meeting_start_ms: i64,
    pub speaker_names: BTreeMap<String, String>,
    pub meeting_type: Option<String>,
    pub tags: Vec<String>,
    pub revision: u64,
}

impl SegmentDoc {
    /// Takes the meeting's current fields.
    pub fn refresh(&mut self, m: &MeetingFields) {
        self.room_id.clone_from(&m.room_id);
        self.team_id.clone_from(&m.team_id);
        self.meeting_start_ms = m.meeting_start_ms;
        self.meeting_type.clone_from(&m.meeting_type);
        self.tags.clone_from(&m.tags);
        self.meeting_revision = m.revision;
        self.speaker_name = self
            .speaker_label
            .as_ref()
            .and_then(|l| m.speaker_names.get(l))
            .cloned();
    }
}

/// What the indexer reads storage through.
pub trait Source: Send + 'static {
    /// Every meeting with its segment count and revision.
    fn meetings(&self) -> anyhow::Result<Vec<(String, u64, u64)>>;
    /// A meeting's segments as indexed; `None` if storage no longer holds it.
    fn docs(&self, meeting_id: &str) -> anyhow::Result<Option<Vec<SegmentDoc>>>;
    /// A meeting's current fields; `None` if storage no longer holds it.
    fn meeting(&self, meeting_id: &str) -> anyhow::Result<Option<MeetingFields>>;
}

#[derive(Debug, thiserror::Error)]
#[error("the build was stopped: the appliance is shutting down")]
struct Cancelled;

/// The indexer thread's work.
pub struct Indexer<S> {
    source: S,
    index: Arc<TranscriptIndex>,
    progress: Arc<AtomicU8>,
    cancel: Arc<AtomicBool>,
}

impl<S: Source> Indexer<S> {
    pub fn new(
        source: S,
        index: Arc<TranscriptIndex>,
        progress: Arc<AtomicU8>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Self {
            source,
            index,
            progress,
            cancel,
        }
    }

    fn progress(&self, done: usize, of: usize) -> anyhow::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Cancelled.into());
        }
        let p = (done * 100).checked_div(of).unwrap_or(100);
        self.progress.store(p.min(99) as u8, Ordering::Relaxed);
        Ok(())
    }

    /// Builds the index from storage (it is kept in memory only, so every start).
    pub fn first(&self) {
        tracing::info!("search index: building it from storage");
        if let Err(e) = self.rebuild() {
            tracing::error!(error = %e, "search index: could not bring it up to date; it is tried again at the next start, or run `roomscribe search reindex`");
        }
        self.progress.store(IDLE, Ordering::Relaxed);
    }

    /// Every meeting in storage, indexed anew, in one commit: a build that fails or
    /// is stopped leaves the index as it was.
    pub fn rebuild(&self) -> anyhow::Result<()> {
        // What came before is committed first: a clear drops only committed documents.
        self.index.commit()?;
        let outcome = self.build();
        if outcome.is_err() {
            self.index.rollback()?;
        }
        self.progress.store(IDLE, Ordering::Relaxed);
        outcome
    }

    fn build(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let ids: Vec<String> = self
            .source
            .meetings()?
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        self.index.clear()?;
        let mut segments = 0;
        let mut last_log = Instant::now();
        for (i, id) in ids.iter().enumerate() {
            self.progress(i, ids.len())?;
            let docs = self.source.docs(id)?.unwrap_or_default();
            segments += docs.len();
            self.index.insert(&docs)?;
            if last_log.elapsed() > Duration::from_secs(5) {
                tracing::info!(done = i, of = ids.len(), "search index: building");
                last_log = Instant::now();
            }
        }
        self.index.commit()?;
        tracing::info!(
            meetings = ids.len(),
            segments,
            secs = started.elapsed().as_secs_f64(),
            "search index: built"
        );
        Ok(())
    }

    fn reindex_meeting(&self, id: &str) -> anyhow::Result<()> {
        match self.source.docs(id)? {
            Some(d) => self.index.replace_meeting(id, &d)?,
            None => self.index.delete_meeting(id),
        }
        Ok(())
    }

    /// New segments, with their meeting's fields as storage has them now.
    fn add_segments(&self, mut docs: Vec<SegmentDoc>) -> anyhow::Result<()> {
        let Some(first) = docs.first() else {
            return Ok(());
        };
        // A meeting storage no longer holds is not indexed again.
        if let Some(m) = self.source.meeting(&first.meeting_id)? {
            docs.iter_mut().for_each(|d| d.refresh(&m));
            self.index.add(&docs)?;
        }
        Ok(())
    }

    /// Applies changes as they come, one commit per batch, until the appliance stops.
    /// A change that fails is logged and the others are still committed (the next
    /// start's build repairs what was missed).
    pub fn follow(&self, rx: mpsc::Receiver<Change>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            let deadline = Instant::now() + BATCH;
            while !matches!(batch.last(), Some(Change::Flush(_) | Change::Rebuild)) {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            let mut acks = vec![];
            for c in batch {
                let r = match c {
                    Change::Segments(docs) => self.add_segments(docs),
                    Change::Meeting(id) => self.reindex_meeting(&id),
                    // Always last in its batch; commits (or rolls back) by itself.
                    Change::Rebuild => self.rebuild(),
                    Change::Flush(ack) => {
                        acks.push(ack);
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "search index: a change could not be applied; it is repaired at the next start or by `roomscribe search reindex`");
                }
            }
            if let Err(e) = self.index.commit() {
                tracing::error!(error = %e, "search index: commit");
            }
            for a in acks {
                let _ = a.send(());
            }
            if self.cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        if let Err(e) = self.index.commit() {
            tracing::error!(error = %e, "search index: final commit");
        }
    }
}
