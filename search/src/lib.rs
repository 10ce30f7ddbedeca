#![doc = include_str!("../README.md")]

/// Seeded, realistic product catalogues and query workloads (benchmark, demo, seeding).
pub mod catalog;
/// Opaque keyset cursors and the query fingerprint they are bound to.
mod cursor;
/// `SearchError`, the crate's one error type.
mod error;
/// Prefix and typo expansion of query words over the title vocabulary.
mod expand;
/// Highlighted snippets of titles and descriptions.
mod highlight;
/// `ProductIndex`: generations on disk, the near-real-time reader, the checkpoint.
mod index;
/// `Indexer`: applies product and review events to the index, commits with the checkpoint.
mod indexer;
/// `ProductQuery` and its filters; free text to words; words to engine queries.
mod query;
/// Rebuilding the index in a new generation and switching to it.
mod rebuild;
/// The live indexer loop: follows the log from the checkpoint.
mod runner;
/// The tantivy schema and the stored form of a product.
mod schema;
/// Executing a query: fallback chain, facets, sorting, pagination, hits.
mod search;

pub use error::SearchError;
pub use highlight::{SNIPPET_CHARS, Snippet};
pub use index::{ProductIndex, REFRESH_EVERY};
pub use indexer::{CommitPolicy, Indexer};
pub use query::{
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_WORDS, MIN_PREFIX_CHARS, MatchMode, ProductFilter, ProductQuery, SortOrder,
};
pub use rebuild::{RebuildOptions, RebuildReport, generation_dir, rebuild, rebuild_with};
pub use runner::{run, run_with};
pub use search::{
    FEW_MATCHES, FacetCount, Facets, MAX_BRAND_FACETS, PRICE_BUCKETS_CENTS, PriceBucket, ProductHit, SearchResult,
};

pub type Result<T, E = SearchError> = std::result::Result<T, E>;
