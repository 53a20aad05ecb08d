//! Full-text search over transcripts: the query language ([`query`]), how text
//! becomes terms ([`text`]), snippets ([`snippet`]) and the tantivy index under
//! `<data_dir>/search/` ([`index`]). No permission logic lives here: the domain's
//! `Search` service turns the caller's reach into [`index::Reach`].

pub mod index;
pub mod indexer;
pub mod query;
pub mod snippet;
pub mod text;

pub use index::{Filters, Hit, IndexError, Opened, Page, Reach, SegmentDoc, Sort, TranscriptIndex};
pub use query::{parse, Expr, QueryError};
pub use snippet::Snippet;

/// Where the index lives inside the data directory.
pub const DIR: &str = "search";
