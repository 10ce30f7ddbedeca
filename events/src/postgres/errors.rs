//! What a failed append or read means, from PostgreSQL's error codes.

use sqlx::error::DatabaseError;

use crate::store::{AppendRequest, Appended, StoreError};

/// How `append` goes on after a failed call.
pub enum Failure {
    /// The events were already stored: the earlier result.
    Replayed(Appended),
    /// A definite version conflict.
    Conflict(StoreError),
    /// A race or transient error: call again (the next call gives a definite answer).
    Retry,
    Error(StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `event_store.append` found a stream at another version (SQLSTATE AG001).
    VersionMismatch,
    /// Another append took the same stream version first.
    StreamRace,
    /// An event id is already stored.
    EventIdExists,
    /// Another request stored the same idempotency key first.
    IdempotencyKeyTaken,
    /// Deadlock or serialisation failure.
    Transient,
    /// The database cannot be reached or is shutting down.
    Unavailable,
    Other,
}

impl Kind {
    pub fn may_be_replay(self) -> bool {
        matches!(self, Kind::VersionMismatch | Kind::StreamRace | Kind::EventIdExists)
    }

    pub fn into_failure(self, error: sqlx::Error, request: &AppendRequest) -> Failure {
        match self {
            Kind::VersionMismatch => {
                Failure::Conflict(version_conflict(&error, request).unwrap_or_else(|| backend(error)))
            }
            Kind::StreamRace | Kind::EventIdExists | Kind::Transient => Failure::Retry,
            Kind::IdempotencyKeyTaken => Failure::Error(StoreError::IdempotencyKeyTaken {
                key: request.idempotency.as_ref().map(|r| r.key.clone()).unwrap_or_default(),
            }),
            Kind::Unavailable => Failure::Error(StoreError::Unavailable(Box::new(error))),
            Kind::Other => Failure::Error(backend(error)),
        }
    }
}

fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// The conflict that `event_store.append` described in its error detail.
fn version_conflict(error: &sqlx::Error, request: &AppendRequest) -> Option<StoreError> {
    #[derive(serde::Deserialize)]
    struct Detail {
        stream: usize,
        actual: i64,
    }
    let pg = error.as_database_error()?.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    let detail: Detail = serde_json::from_str(pg.detail()?).ok()?;
    let stream = request.streams.get(detail.stream.checked_sub(1)?)?;
    Some(StoreError::Conflict {
        stream: stream.stream_id.clone(),
        expected: stream.expected,
        actual: u64::try_from(detail.actual).ok()?,
    })
}

pub fn classify(error: &sqlx::Error) -> Kind {
    match error {
        sqlx::Error::Database(db) => classify_database(db.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Kind::Unavailable,
        _ => Kind::Other,
    }
}

fn classify_database(db: &dyn DatabaseError) -> Kind {
    let code = db.code();
    let code = code.as_deref().unwrap_or("");
    match code {
        "AG001" => Kind::VersionMismatch,
        "23505" => match db.constraint() {
            Some("event_stream_version_key") => Kind::StreamRace,
            Some("event_event_id_key") => Kind::EventIdExists,
            Some("idempotency_key_pkey") => Kind::IdempotencyKeyTaken,
            _ => Kind::Other,
        },
        "40001" | "40P01" => Kind::Transient,
        // Class 08: connection exceptions; 57P01-57P03: shutting down / cannot connect now;
        // 53300: too many connections.
        c if c.starts_with("08") => Kind::Unavailable,
        "57P01" | "57P02" | "57P03" | "53300" => Kind::Unavailable,
        _ => Kind::Other,
    }
}

/// A failed read: unavailable (retryable) or a backend error.
pub fn store_error(error: sqlx::Error) -> StoreError {
    match classify(&error) {
        Kind::Unavailable => StoreError::Unavailable(Box::new(error)),
        _ => backend(error),
    }
}
