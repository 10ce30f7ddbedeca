//! `SearchError`: the one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in the search crate.
///
/// Callers map [`SearchError::is_client_error`] to a 4xx; everything else is a 5xx.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The cursor was not made by this index for this query (tampered, truncated, or from a
    /// different query, filter or sort).
    #[error("invalid cursor: pass back the cursor of a previous page of the same query")]
    InvalidCursor,
    /// A structured part of the query (filters, page size) makes no sense. Free text never
    /// causes this.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Another writer (an indexer or a rebuild, in this or another process) holds the index.
    #[error("index generation {0} is locked by another writer")]
    Locked(PathBuf),
    /// The index directory holds something this crate did not write.
    #[error("index at {path} is unusable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The search engine failed. The engine's own error type stays private (no tantivy type in
    /// the public API); its message and chain are kept.
    #[error("index error: {0}")]
    Index(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("index file system error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading the event log failed.
    #[error(transparent)]
    Store(#[from] events::StoreError),
    /// A blocking task (commit, rebuild step) panicked or was cancelled.
    #[error("background index task failed: {0}")]
    Task(String),
}

impl SearchError {
    /// The caller sent something wrong (a 4xx), as opposed to a server-side failure.
    pub fn is_client_error(&self) -> bool {
        matches!(self, SearchError::InvalidCursor | SearchError::InvalidQuery(_))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SearchError::Io { path: path.into(), source }
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(error: tantivy::TantivyError) -> Self {
        SearchError::Index(Box::new(error))
    }
}

impl From<tokio::task::JoinError> for SearchError {
    fn from(error: tokio::task::JoinError) -> Self {
        SearchError::Task(error.to_string())
    }
}
