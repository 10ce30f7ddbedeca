//! The crate's error type.

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("projection migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Store(#[from] events::StoreError),
    #[error(transparent)]
    Decode(#[from] events::DecodeError),
    #[error("personal data: {0}")]
    Privacy(#[from] events::privacy::PrivacyError),
    #[error("invalid projection name {0:?}: use lowercase ascii letters, digits and '_'")]
    InvalidName(String),
    #[error("unknown projection or reactor {0:?}")]
    UnknownProjection(String),
    #[error("event {0} is not in the log")]
    EventNotFound(Uuid),
    #[error("a rebuild of {0} is already running")]
    RebuildRunning(String),
    #[error("projection {projection} has no live generation (run its projector or a rebuild)")]
    NoLiveGeneration { projection: String },
    #[error("the live generation of {projection} was built by version {live} of its code, this is version {ours}")]
    NewerGeneration { projection: String, live: u32, ours: u32 },
    #[error("event {event_id} ({event_type} at {stream_id} version {stream_version}): {reason}")]
    InvalidEvent { event_id: Uuid, event_type: String, stream_id: String, stream_version: u64, reason: String },
    #[error("history generator: {0}")]
    History(String),
    #[error("rebuild of {projection}: {reason}")]
    Rebuild { projection: String, reason: String },
    #[error("a runtime task failed: {0}")]
    Task(String),
    #[error("stopped: shutdown requested")]
    Shutdown,
}

impl Error {
    /// Errors of the infrastructure (connection lost, database restarting, lock or
    /// serialisation conflicts) rather than of one event: retried as they are, without
    /// looking for a culprit event.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(error) => transient_sqlx(error),
            Error::Store(error) => error.is_retryable(),
            Error::Privacy(events::privacy::PrivacyError::Database(error)) => transient_sqlx(error),
            _ => false,
        }
    }

    /// An event that cannot be applied, for use by projections.
    pub fn invalid_event(event: &events::RecordedEvent, reason: impl Into<String>) -> Self {
        Error::InvalidEvent {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            stream_id: event.stream_id.to_string(),
            stream_version: event.stream_version,
            reason: reason.into(),
        }
    }
}

fn transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // 08: connection exceptions; 57P0x: shutdown; 53300: too many connections;
            // 40001 / 40P01: serialisation failure / deadlock; 55P03: lock not available.
            code.starts_with("08")
                || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03")
        }
        _ => false,
    }
}
