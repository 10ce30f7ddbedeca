//! The `EventStore` trait: what every event store backend offers, and its error type.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use uuid::Uuid;

use crate::envelope::{NewEvent, RecordedEvent, StreamId};
use crate::position::LogPosition;

/// What an append expects a stream's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream's last event must have exactly this version (`Exact(0)` = `NoStream`).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

impl ExpectedVersion {
    /// The expectation for a stream last seen at `version` (0 = empty).
    pub fn at(version: u64) -> Self {
        if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) }
    }

    /// Whether a stream at `actual` satisfies this expectation.
    pub fn accepts(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(n) => actual == n,
        }
    }
}

/// Events for one stream within an append. A stream with no events is a pure version check:
/// the append goes through only if that stream is still where the command saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// A command's response, stored in the same transaction as its events, so a retry with the
/// same `Idempotency-Key` gets the first answer and appends nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Already scoped by the caller (e.g. prefixed with the account id).
    pub key: String,
    /// Digest of the request, to tell a retry from a different request reusing the key.
    pub request_hash: String,
    pub response_status: u16,
    pub response_body: serde_json::Value,
}

/// A stored idempotency record, with the log position of the append it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub request_hash: String,
    pub response_status: u16,
    pub response_body: serde_json::Value,
    pub position: LogPosition,
}

/// One atomic append of one or several streams.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub idempotency: Option<IdempotencyRecord>,
}

impl AppendRequest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the events of one stream.
    pub fn stream(mut self, stream_id: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        self.streams.push(StreamAppend { stream_id, expected, events });
        self
    }

    pub fn idempotent(mut self, record: IdempotencyRecord) -> Self {
        self.idempotency = Some(record);
        self
    }

    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }

    /// Checks that hold for every backend: at least one event, each stream named once,
    /// event ids distinct.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.event_count() == 0 {
            return Err(StoreError::InvalidAppend("an append needs at least one event".into()));
        }
        let mut names: Vec<&StreamId> = self.streams.iter().map(|s| &s.stream_id).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(StoreError::InvalidAppend("a stream is named twice in one append".into()));
        }
        let mut ids: Vec<Uuid> = self.streams.iter().flat_map(|s| s.events.iter().map(|e| e.event_id)).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(StoreError::InvalidAppend("an event id appears twice in one append".into()));
        }
        Ok(())
    }
}

/// Where one appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub stream_version: u64,
    pub position: LogPosition,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// In the order of the request.
    pub events: Vec<AppendedEvent>,
    /// `true` when these event ids were already in the log: nothing was appended and this
    /// is the earlier result.
    pub replayed: bool,
}

impl Appended {
    /// The position of the last event: the consistency token of the command.
    pub fn position(&self) -> LogPosition {
        self.events.iter().map(|e| e.position).max().unwrap_or(LogPosition::START)
    }

    /// The version a stream reached with this append.
    pub fn version_of(&self, stream: &StreamId) -> Option<u64> {
        self.events.iter().filter(|e| &e.stream_id == stream).map(|e| e.stream_version).max()
    }
}

/// What a backend can and cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// One append may touch several streams atomically. Without it, checkout takes the
    /// reserve / compensate path (ARCHITECTURE.md, invariant 2).
    pub atomic_multi_stream: bool,
    /// Idempotency records are stored in the same transaction as the events.
    pub transactional_idempotency: bool,
}

/// A live, gap-free feed of the log.
pub type EventStream = BoxStream<'static, Result<RecordedEvent, StoreError>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The optimistic concurrency check failed: nothing was appended.
    #[error("stream {stream} is at version {actual}, the append expected {expected}")]
    Conflict { stream: StreamId, expected: ExpectedVersion, actual: u64 },
    /// A concurrent request with the same idempotency key won; look its response up.
    #[error("idempotency key already used by a concurrent request")]
    IdempotencyKeyTaken { key: String },
    /// The request itself is malformed (a caller bug, not a conflict).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The store cannot be reached right now; nothing was written. Safe to retry.
    #[error("event store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else the backend reported.
    #[error("event store error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An event store: append-only streams plus one global, commit-ordered log.
///
/// Object safe: use it as `Arc<dyn EventStore>`.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    fn capabilities(&self) -> Capabilities;

    /// Append to one or several streams atomically, each with its expected version.
    /// On a version mismatch nothing is appended and the error names the stream.
    /// If the events' ids are already in the log, nothing is appended and the earlier result
    /// comes back with `replayed: true`.
    async fn append(&self, request: AppendRequest) -> Result<Appended>;

    /// The events of one stream with `stream_version >= from_version`, in version order.
    async fn read_stream(&self, stream: &StreamId, from_version: u64) -> Result<Vec<RecordedEvent>>;

    /// Several streams at once (from version 1), in the order asked; one round trip where
    /// the backend allows.
    async fn read_streams(&self, streams: &[StreamId]) -> Result<Vec<Vec<RecordedEvent>>> {
        let mut all = Vec::with_capacity(streams.len());
        for stream in streams {
            all.push(self.read_stream(stream, 1).await?);
        }
        Ok(all)
    }

    /// Up to `limit` events after `after`, in log order. Never returns an event behind one it
    /// has returned before to any reader: a page that ends at position P is final up to P.
    async fn read_all(&self, after: LogPosition, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// Every event after `after`: first the stored ones, then new ones as they commit.
    /// Errors are yielded, not hidden; the stream ends after yielding an error.
    fn subscribe_all(&self, after: LogPosition) -> EventStream;

    /// The position of the last event a reader can see now (`START` for an empty log).
    async fn head(&self) -> Result<LogPosition>;

    /// The stored response of an idempotency key, if any.
    async fn idempotent_response(&self, key: &str) -> Result<Option<StoredResponse>>;
}

/// Tuning shared by backends that poll.
#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    /// Events fetched per page while catching up.
    pub page_size: usize,
    /// How long a live subscription waits for a wake-up before it polls anyway.
    pub poll_interval: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self { page_size: 1000, poll_interval: Duration::from_millis(500) }
    }
}
