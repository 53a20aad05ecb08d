//! The transcript index (tantivy): one document per segment. The appliance keeps it
//! in memory only ([`TranscriptIndex::in_memory`], built from storage at start), so no
//! transcript text is at rest in it; an index in a directory ([`TranscriptIndex::open`])
//! is for the benchmarks. It is derived data: anything wrong with it (missing,
//! unreadable, another version's layout) is answered by building it again.

use super::query::Expr;
use super::text::{TranscriptTokenizer, TOKENIZER};
use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, EmptyQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    STRING,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};

/// Bumped whenever the schema or the tokenizer changes: an index of another version
/// is built again.
pub const INDEX_VERSION: u32 = 3;
const VERSION_FILE: &str = "roomscribe-index-version";
/// How many words one prefix may stand for.
const PREFIX_EXPANSIONS: u32 = 256;
const WRITER_MEMORY: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, IndexError>;

/// One segment as indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDoc {
    pub meeting_id: String,
    pub seq: u64,
    pub start: f64,
    pub end: f64,
    /// The agent's label (`channel 2`).
    pub speaker_label: Option<String>,
    /// The name given to that label in the console.
    pub speaker_name: Option<String>,
    pub room_id: String,
    pub team_id: Option<String>,
    /// The meeting's start (appliance clock), ms since the epoch.
    pub meeting_start_ms: i64,
    /// The meeting's type and tags (matched without regard to case).
    pub meeting_type: Option<String>,
    pub tags: Vec<String>,
    pub text: String,
    /// The meeting's revision when this was indexed (see `MeetingRecord::revision`).
    pub meeting_revision: u64,
}

/// Filters of a search (all must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub room: Option<String>,
    pub team: Option<String>,
    /// A speaker label or name, any case.
    pub speaker: Option<String>,
    /// Meetings starting at or after, ms.
    pub from_ms: Option<i64>,
    /// Meetings starting before, ms.
    pub to_ms: Option<i64>,
    /// A meeting type, any case.
    pub meeting_type: Option<String>,
    /// A tag, any case.
    pub tag: Option<String>,
}

/// Whose meetings a search may find: part of the query itself, so nothing outside
/// it is counted, ranked or scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    All,
    Teams(BTreeSet<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Newest,
    Relevance,
}

/// One matching segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub meeting_id: String,
    pub seq: u64,
    pub start: f64,
    pub end: f64,
    pub speaker: Option<String>,
    pub snippet: crate::search::snippet::Snippet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub hits: Vec<Hit>,
    pub total: usize,
}

#[derive(Clone, Copy)]
struct Fields {
    meeting: Field,
    /// `meeting/seq`: adding a segment again replaces it.
    key: Field,
    seq: Field,
    start: Field,
    end: Field,
    speaker: Field,
    speaker_key: Field,
    room: Field,
    team: Field,
    kind: Field,
    tag: Field,
    meeting_at: Field,
    at: Field,
    text: Field,
    /// The meeting's revision the document was made at.
    revision: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        meeting: b.add_text_field("meeting", STRING | STORED),
        key: b.add_text_field("key", STRING),
        seq: b.add_u64_field("seq", STORED),
        start: b.add_f64_field("start", STORED),
        end: b.add_f64_field("end", STORED),
        speaker: b.add_text_field("speaker", STORED),
        speaker_key: b.add_text_field("speaker_key", STRING),
        room: b.add_text_field("room", STRING),
        team: b.add_text_field("team", STRING),
        kind: b.add_text_field("type", STRING),
        tag: b.add_text_field("tag", STRING),
        meeting_at: b.add_i64_field("meeting_at", INDEXED | FAST),
        at: b.add_i64_field("at", FAST),
        text: b.add_text_field("text", text_options),
        revision: b.add_u64_field("revision", FAST),
    };
    (b.build(), fields)
}

/// How the index was found when opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// As left (the benchmarks reuse one).
    Existing,
    /// New and empty (the reason: missing, unreadable, another version): to be built.
    Created(String),
}

pub struct TranscriptIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    f: Fields,
}

impl TranscriptIndex {
    /// Opens the index in `dir`, or creates it empty there when it is missing,
    /// unreadable or of another version.
    pub fn open(dir: &Path) -> Result<(Self, Opened)> {
        let version = std::fs::read_to_string(dir.join(VERSION_FILE)).ok();
        let reason = match version.as_deref().map(str::trim) {
            None if !dir.exists() => Some("no index yet".to_owned()),
            None => Some("no version mark (an interrupted build)".to_owned()),
            Some(v) if v != INDEX_VERSION.to_string() => Some(format!(
                "index version {v}, this appliance uses {INDEX_VERSION}"
            )),
            Some(_) => match Self::open_existing(dir) {
                Ok(ix) => return Ok((ix, Opened::Existing)),
                Err(e) => Some(format!("unreadable ({e})")),
            },
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let (schema, _) = schema();
        let index = Index::create_in_dir(dir, schema)?;
        let ix = Self::with(index)?;
        ix.commit()?;
        write_version(dir)?;
        Ok((ix, Opened::Created(reason.unwrap_or_default())))
    }

    fn open_existing(dir: &Path) -> Result<Self> {
        let index = Index::open_in_dir(dir)?;
        let (schema, _) = schema();
        if index.schema() != schema {
            return Err(tantivy::TantivyError::SchemaError("schema differs".into()).into());
        }
        let ix = Self::with(index)?;
        // Read every segment's files now, so damage shows here and not in a search.
        let searcher = ix.reader.searcher();
        for segment in searcher.segment_readers() {
            segment.get_store_reader(0)?;
            segment.inverted_index(ix.f.text)?;
        }
        Ok(ix)
    }

    /// An index in memory (tests).
    pub fn in_memory() -> Result<Self> {
        let (schema, _) = schema();
        Self::with(Index::create_in_ram(schema))
    }

    fn with(index: Index) -> Result<Self> {
        index.tokenizers().register(TOKENIZER, TranscriptTokenizer);
        let (_, f) = schema();
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            f,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        // A panic inside tantivy while adding leaves nothing half-applied that a
        // commit would publish; the next rebuild repairs the rest.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn document(&self, d: &SegmentDoc) -> TantivyDocument {
        let f = self.f;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.meeting, &d.meeting_id);
        doc.add_text(f.key, key(&d.meeting_id, d.seq));
        doc.add_u64(f.seq, d.seq);
        doc.add_f64(f.start, d.start);
        doc.add_f64(f.end, d.end);
        if let Some(shown) = d.speaker_name.as_ref().or(d.speaker_label.as_ref()) {
            doc.add_text(f.speaker, shown);
        }
        for key in [&d.speaker_label, &d.speaker_name].into_iter().flatten() {
            doc.add_text(f.speaker_key, key.to_lowercase());
        }
        doc.add_text(f.room, &d.room_id);
        if let Some(t) = &d.team_id {
            doc.add_text(f.team, t);
        }
        if let Some(k) = &d.meeting_type {
            doc.add_text(f.kind, k.to_lowercase());
        }
        for t in &d.tags {
            doc.add_text(f.tag, t.to_lowercase());
        }
        doc.add_i64(f.meeting_at, d.meeting_start_ms);
        doc.add_i64(
            f.at,
            d.meeting_start_ms
                .saturating_add((d.start.max(0.0) * 1000.0) as i64),
        );
        doc.add_text(f.text, &d.text);
        doc.add_u64(f.revision, d.meeting_revision);
        doc
    }

    /// Adds segments, each replacing any copy the index holds (not yet visible: see
    /// [`commit`](Self::commit)).
    pub fn add(&self, docs: &[SegmentDoc]) -> Result<()> {
        let w = self.writer();
        for d in docs {
            w.delete_term(Term::from_field_text(
                self.f.key,
                &key(&d.meeting_id, d.seq),
            ));
            w.add_document(self.document(d))?;
        }
        Ok(())
    }

    /// Adds segments the index cannot hold yet (a build after [`clear`](Self::clear)):
    /// no lookup for an older copy.
    pub fn insert(&self, docs: &[SegmentDoc]) -> Result<()> {
        let w = self.writer();
        for d in docs {
            w.add_document(self.document(d))?;
        }
        Ok(())
    }

    /// Removes a meeting's segments (not yet visible).
    pub fn delete_meeting(&self, meeting_id: &str) {
        self.writer()
            .delete_term(Term::from_field_text(self.f.meeting, meeting_id));
    }

    /// Replaces a meeting's segments with `docs` (not yet visible).
    pub fn replace_meeting(&self, meeting_id: &str, docs: &[SegmentDoc]) -> Result<()> {
        self.delete_meeting(meeting_id);
        self.add(docs)
    }

    /// Removes everything (not yet visible).
    pub fn clear(&self) -> Result<()> {
        self.writer().delete_all_documents()?;
        Ok(())
    }

    /// Drops every change since the last commit.
    pub fn rollback(&self) -> Result<()> {
        self.writer().rollback()?;
        Ok(())
    }

    /// Makes every change so far durable and visible to searches.
    pub fn commit(&self) -> Result<()> {
        self.writer().commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// How many segments of `meeting_id` the index holds.
    pub fn count(&self, meeting_id: &str) -> Result<usize> {
        let q = TermQuery::new(
            Term::from_field_text(self.f.meeting, meeting_id),
            IndexRecordOption::Basic,
        );
        Ok(self.reader.searcher().search(&q, &Count)?)
    }

    /// The highest meeting revision among `meeting_id`'s documents (`None`: it has
    /// none).
    pub fn revision(&self, meeting_id: &str) -> Result<Option<u64>> {
        let q = TermQuery::new(
            Term::from_field_text(self.f.meeting, meeting_id),
            IndexRecordOption::Basic,
        );
        let top = TopDocs::with_limit(1).order_by_fast_field::<u64>("revision", Order::Desc);
        let found = self.reader.searcher().search(&q, &top)?;
        Ok(found.first().and_then(|(r, _)| *r))
    }

    /// Every meeting id the index holds segments of.
    pub fn meetings(&self) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.f.meeting)?;
            let mut terms = inverted.terms().stream()?;
            while terms.advance() {
                out.insert(String::from_utf8_lossy(terms.key()).into_owned());
            }
        }
        Ok(out)
    }

    fn text_query(&self, e: &Expr) -> Box<dyn Query> {
        let term = |t: &String| Term::from_field_text(self.f.text, t);
        match e {
            Expr::Phrase(t) if t.len() == 1 => {
                Box::new(TermQuery::new(term(&t[0]), IndexRecordOption::WithFreqs))
            }
            Expr::Phrase(t) => Box::new(PhraseQuery::new(t.iter().map(term).collect())),
            Expr::Prefix(t) => {
                let mut q = PhrasePrefixQuery::new(t.iter().map(term).collect());
                q.set_max_expansions(PREFIX_EXPANSIONS);
                Box::new(q)
            }
            Expr::And(v) => Box::new(BooleanQuery::new(
                v.iter()
                    .map(|e| match e {
                        Expr::Not(inner) => (Occur::MustNot, self.text_query(inner)),
                        e => (Occur::Must, self.text_query(e)),
                    })
                    .collect(),
            )),
            Expr::Or(v) => Box::new(BooleanQuery::new(
                v.iter()
                    .map(|e| (Occur::Should, self.text_query(e)))
                    .collect(),
            )),
            // A lone NOT only occurs under AND (the parser refuses the rest); as a
            // clause of its own it matches nothing.
            Expr::Not(_) => Box::new(EmptyQuery),
        }
    }

    fn exact(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    /// Segments matching `e` within `reach` and `filters`, `limit` of them from
    /// `offset`, with how many match in all.
    pub fn search(
        &self,
        e: &Expr,
        filters: &Filters,
        reach: &Reach,
        sort: Sort,
        offset: usize,
        limit: usize,
    ) -> Result<Page> {
        let f = self.f;
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, self.text_query(e))];
        if let Reach::Teams(teams) = reach {
            if teams.is_empty() {
                return Ok(Page {
                    hits: vec![],
                    total: 0,
                });
            }
            must.push((
                Occur::Must,
                Box::new(BooleanQuery::new(
                    teams
                        .iter()
                        .map(|t| (Occur::Should, self.exact(f.team, t)))
                        .collect(),
                )),
            ));
        }
        if let Some(r) = &filters.room {
            must.push((Occur::Must, self.exact(f.room, r)));
        }
        if let Some(t) = &filters.team {
            must.push((Occur::Must, self.exact(f.team, t)));
        }
        if let Some(s) = &filters.speaker {
            must.push((Occur::Must, self.exact(f.speaker_key, &s.to_lowercase())));
        }
        if let Some(k) = &filters.meeting_type {
            must.push((Occur::Must, self.exact(f.kind, &k.to_lowercase())));
        }
        if let Some(t) = &filters.tag {
            must.push((Occur::Must, self.exact(f.tag, &t.to_lowercase())));
        }
        if filters.from_ms.is_some() || filters.to_ms.is_some() {
            let bound = |v: Option<i64>, inclusive: bool| match v {
                Some(v) if inclusive => Bound::Included(Term::from_field_i64(f.meeting_at, v)),
                Some(v) => Bound::Excluded(Term::from_field_i64(f.meeting_at, v)),
                None => Bound::Unbounded,
            };
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(filters.from_ms, true),
                    bound(filters.to_ms, false),
                )),
            ));
        }
        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        let limit = limit.max(1);
        let (addresses, total) = match sort {
            Sort::Newest => self.newest(&searcher, query, offset, limit)?,
            Sort::Relevance => {
                let top = TopDocs::with_limit(limit).and_offset(offset);
                let (docs, total) = searcher.search(&query, &(top.order_by_score(), Count))?;
                (docs.into_iter().map(|(_, a)| a).collect(), total)
            }
        };
        let marks = super::snippet::Marks::of(e);
        let mut hits = Vec::with_capacity(addresses.len());
        for a in addresses {
            let doc: TantivyDocument = searcher.doc(a)?;
            let s = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            let n = |field| doc.get_first(field).and_then(|v| v.as_f64()).unwrap_or(0.0);
            hits.push(Hit {
                meeting_id: s(f.meeting).unwrap_or_default(),
                seq: doc.get_first(f.seq).and_then(|v| v.as_u64()).unwrap_or(0),
                start: n(f.start),
                end: n(f.end),
                speaker: s(f.speaker),
                snippet: marks.snippet(&s(f.text).unwrap_or_default()),
            });
        }
        Ok(Page { hits, total })
    }
}

impl TranscriptIndex {
    /// The matches of `query` newest first, `limit` of them from `offset`, and how
    /// many there are. Ranking every match by time costs as many look-ups as there
    /// are matches (a common word: half the index). Matches in a recent window of
    /// time (`at` at or after a cut-off) all come before every match outside it, so
    /// once a window holds `offset + limit` matches nothing older need be looked at.
    /// The first window is twice the share of the time span the page would take were
    /// matches spread evenly; it widens fourfold until it holds the page or is all.
    fn newest(
        &self,
        searcher: &Searcher,
        query: BooleanQuery,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<DocAddress>, usize)> {
        let top = || {
            TopDocs::with_limit(limit)
                .and_offset(offset)
                .order_by_fast_field::<i64>("at", Order::Desc)
        };
        let addresses = |docs: Vec<(Option<i64>, DocAddress)>| docs.into_iter().map(|(_, a)| a);
        let total = searcher.search(&query, &Count)?;
        let wanted = offset.saturating_add(limit);
        let span = time_span(searcher, self.f.at)?;
        let Some((oldest, newest)) = span.filter(|_| total > wanted.saturating_mul(4)) else {
            return Ok((addresses(searcher.search(&query, &top())?).collect(), total));
        };
        let width = (newest as f64 - oldest as f64) + 1.0;
        let mut share = 2.0 * wanted as f64 / total as f64;
        let query: Box<dyn Query> = Box::new(query);
        loop {
            let cut = newest as f64 - width * share;
            if share >= 1.0 || cut <= oldest as f64 {
                return Ok((addresses(searcher.search(&query, &top())?).collect(), total));
            }
            let cut = Term::from_field_i64(self.f.at, cut.ceil() as i64);
            let window = BooleanQuery::new(vec![
                (Occur::Must, query.box_clone()),
                (
                    Occur::Must,
                    Box::new(RangeQuery::new(Bound::Included(cut), Bound::Unbounded)),
                ),
            ]);
            let (docs, inside) = searcher.search(&window, &(top(), Count))?;
            if inside >= wanted {
                return Ok((addresses(docs).collect(), total));
            }
            share *= 4.0;
        }
    }
}

/// The oldest and newest `at` in the index, or `None` when it is empty.
fn time_span(searcher: &Searcher, at: Field) -> Result<Option<(i64, i64)>> {
    let name = searcher.schema().get_field_name(at).to_owned();
    let mut span: Option<(i64, i64)> = None;
    for segment in searcher.segment_readers() {
        if segment.num_docs() == 0 {
            continue;
        }
        let column = segment.fast_fields().i64(&name)?;
        let (lo, hi) = (column.min_value(), column.max_value());
        span = Some(match span {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
    }
    Ok(span)
}

fn key(meeting_id: &str, seq: u64) -> String {
    format!("{meeting_id}/{seq}")
}

fn write_version(dir: &Path) -> Result<()> {
    let tmp = dir.join(format!("{VERSION_FILE}.tmp"));
    std::fs::write(&tmp, INDEX_VERSION.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(VERSION_FILE))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(n: u64, at: i64, text: &str) -> SegmentDoc {
        SegmentDoc {
            meeting_id: format!("m{n}"),
            seq: n,
            start: 0.0,
            end: 1.0,
            speaker_label: None,
            speaker_name: None,
            room_id: "room".into(),
            team_id: Some("team".into()),
            meeting_start_ms: at,
            meeting_type: None,
            tags: vec![],
            text: text.into(),
            meeting_revision: 0,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Newest first through time windows gives exactly the page a full ranking
        /// gives, whatever the spread of times, the page and the deletions.
        #[test]
        fn newest_first_pages_equal_a_full_ranking(
            times in proptest::collection::vec(0i64..1_000_000, 50..400),
            rare_every in 1usize..40,
            offset in 0usize..60,
            limit in 1usize..30,
            batches in 1usize..4,
            deleted in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let index = TranscriptIndex::in_memory().unwrap();
            // Unique times: a tie would make either order right.
            let mut times = times;
            for (i, t) in times.iter_mut().enumerate() {
                *t = *t * 1000 + i as i64;
            }
            let docs: Vec<SegmentDoc> = times
                .iter()
                .enumerate()
                .map(|(i, &at)| {
                    let text = if i % rare_every == 0 { "common rare" } else { "common" };
                    doc(i as u64, at, text)
                })
                .collect();
            for chunk in docs.chunks(docs.len().div_ceil(batches)) {
                index.insert(chunk).unwrap();
                index.commit().unwrap();
            }
            let mut gone = BTreeSet::new();
            for d in &deleted {
                let victim = &docs[d.index(docs.len())];
                index.delete_meeting(&victim.meeting_id);
                gone.insert(victim.meeting_id.clone());
            }
            index.commit().unwrap();
            for word in ["common", "rare"] {
                let mut expected: Vec<&SegmentDoc> = docs
                    .iter()
                    .filter(|d| d.text.contains(word) && !gone.contains(&d.meeting_id))
                    .collect();
                expected.sort_by_key(|d| std::cmp::Reverse(d.meeting_start_ms));
                let page = index
                    .search(
                        &crate::search::query::parse(word).unwrap(),
                        &Filters::default(),
                        &Reach::Teams(BTreeSet::from(["team".to_owned()])),
                        Sort::Newest,
                        offset,
                        limit,
                    )
                    .unwrap();
                prop_assert_eq!(page.total, expected.len());
                let got: Vec<&str> = page.hits.iter().map(|h| h.meeting_id.as_str()).collect();
                let want: Vec<&str> = expected
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(|d| d.meeting_id.as_str())
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
