//! SQL over the bookkeeping tables of schema `projection`: checkpoints, parked events and
//! current failures.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use events::{LogPosition, RecordedEvent};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::Result;

/// The row of one generation of a projection (or of a reactor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub projection: String,
    pub generation: i32,
    pub version: u32,
    pub live: bool,
    pub position: LogPosition,
    pub events_processed: u64,
    pub tables: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

/// A checkpoint row locked `for update` in the caller's transaction, with the events
/// parked for its projection.
#[derive(Debug, Clone)]
pub struct Locked {
    pub checkpoint: Checkpoint,
    pub parked: HashSet<Uuid>,
}

pub(crate) fn position(commit: i64, prepare: i64) -> LogPosition {
    LogPosition::new(u64::try_from(commit).unwrap_or(0), u64::try_from(prepare).unwrap_or(0))
}

pub(crate) fn commit_of(position: LogPosition) -> i64 {
    i64::try_from(position.commit()).unwrap_or(i64::MAX)
}

pub(crate) fn prepare_of(position: LogPosition) -> i64 {
    i64::try_from(position.prepare()).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "projection, generation, version, live, commit_position, prepare_position, events_processed, \
                       tables, updated_at";

fn checkpoint_row(row: &PgRow) -> sqlx::Result<Checkpoint> {
    let version: i32 = row.try_get(2)?;
    let processed: i64 = row.try_get(6)?;
    Ok(Checkpoint {
        projection: row.try_get(0)?,
        generation: row.try_get(1)?,
        version: u32::try_from(version).unwrap_or(0),
        live: row.try_get(3)?,
        position: position(row.try_get(4)?, row.try_get(5)?),
        events_processed: u64::try_from(processed).unwrap_or(0),
        tables: row.try_get(7)?,
        updated_at: row.try_get(8)?,
    })
}

/// Every generation of a projection, oldest first.
pub async fn generations<'c>(executor: impl PgExecutor<'c>, projection: &str) -> Result<Vec<Checkpoint>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("select {COLUMNS} from projection.checkpoint where projection = $1 order by generation")
    });
    let rows = sqlx::query(SQL.as_str()).bind(projection).fetch_all(executor).await?;
    Ok(rows.iter().map(checkpoint_row).collect::<sqlx::Result<_>>()?)
}

/// Every row of every projection and reactor.
pub async fn all<'c>(executor: impl PgExecutor<'c>) -> Result<Vec<(Checkpoint, String)>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("select {COLUMNS}, kind from projection.checkpoint order by projection, generation")
    });
    let rows = sqlx::query(SQL.as_str()).fetch_all(executor).await?;
    let mut all = Vec::with_capacity(rows.len());
    for row in &rows {
        all.push((checkpoint_row(row)?, row.try_get(9)?));
    }
    Ok(all)
}

/// The live generation of a projection, if it has one.
pub async fn live<'c>(executor: impl PgExecutor<'c>, projection: &str) -> Result<Option<Checkpoint>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("select {COLUMNS} from projection.checkpoint where projection = $1 and live")
    });
    let row = sqlx::query(SQL.as_str()).bind(projection).fetch_optional(executor).await?;
    Ok(row.as_ref().map(checkpoint_row).transpose()?)
}

/// Lock the live row (`for update`): the first statement of every live batch. A rebuild's
/// swap holds the same lock, so a batch and a swap never overlap.
pub async fn lock_live<'c>(executor: impl PgExecutor<'c>, projection: &str) -> Result<Option<Locked>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {COLUMNS}, array(select p.event_id from projection.parked_event p where p.projection = $1) \
               from projection.checkpoint where projection = $1 and live for update"
        )
    });
    lock(executor, SQL.as_str(), projection, None).await
}

/// Lock the row of one generation (`for update`).
pub async fn lock_generation<'c>(
    executor: impl PgExecutor<'c>,
    projection: &str,
    generation: i32,
) -> Result<Option<Locked>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {COLUMNS}, array(select p.event_id from projection.parked_event p where p.projection = $1) \
               from projection.checkpoint where projection = $1 and generation = $2 for update"
        )
    });
    lock(executor, SQL.as_str(), projection, Some(generation)).await
}

async fn lock<'c>(
    executor: impl PgExecutor<'c>,
    sql: &'static str,
    projection: &str,
    generation: Option<i32>,
) -> Result<Option<Locked>> {
    let mut query = sqlx::query(sql).bind(projection);
    if let Some(generation) = generation {
        query = query.bind(generation);
    }
    let Some(row) = query.fetch_optional(executor).await? else {
        return Ok(None);
    };
    let parked: Vec<Uuid> = row.try_get(9)?;
    Ok(Some(Locked { checkpoint: checkpoint_row(&row)?, parked: parked.into_iter().collect() }))
}

/// Move a generation's checkpoint (inside the batch transaction that locked it).
pub async fn advance<'c>(
    executor: impl PgExecutor<'c>,
    projection: &str,
    generation: i32,
    to: LogPosition,
    processed: u64,
) -> Result<()> {
    sqlx::query(
        "update projection.checkpoint \
            set commit_position = $3, prepare_position = $4, events_processed = events_processed + $5, \
                updated_at = now() \
          where projection = $1 and generation = $2",
    )
    .bind(projection)
    .bind(generation)
    .bind(commit_of(to))
    .bind(prepare_of(to))
    .bind(i64::try_from(processed).unwrap_or(i64::MAX))
    .execute(executor)
    .await?;
    Ok(())
}

/// The events parked for a projection or reactor.
pub async fn parked_ids<'c>(executor: impl PgExecutor<'c>, projection: &str) -> Result<HashSet<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar("select event_id from projection.parked_event where projection = $1")
        .bind(projection)
        .fetch_all(executor)
        .await?;
    Ok(ids.into_iter().collect())
}

/// Record (or update) the event a projection or reactor is stopped at.
pub async fn record_failure<'c>(
    executor: impl PgExecutor<'c>,
    projection: &str,
    event: &RecordedEvent,
    error: &str,
    attempts: u32,
) -> Result<()> {
    sqlx::query(
        "insert into projection.failure (projection, event_id, stream_id, stream_version, event_type, \
                                         commit_position, prepare_position, error, attempts) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         on conflict (projection) do update \
            set error = excluded.error, attempts = excluded.attempts, last_failed_at = now(), \
                first_failed_at = case when projection.failure.event_id = excluded.event_id \
                                       then projection.failure.first_failed_at else now() end, \
                event_id = excluded.event_id, stream_id = excluded.stream_id, \
                stream_version = excluded.stream_version, event_type = excluded.event_type, \
                commit_position = excluded.commit_position, prepare_position = excluded.prepare_position",
    )
    .bind(projection)
    .bind(event.event_id)
    .bind(event.stream_id.as_str())
    .bind(i64::try_from(event.stream_version).unwrap_or(i64::MAX))
    .bind(event.event_type.as_str())
    .bind(commit_of(event.position))
    .bind(prepare_of(event.position))
    .bind(error)
    .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
    .execute(executor)
    .await?;
    Ok(())
}

/// The projection or reactor got past its failing event.
pub async fn clear_failure<'c>(executor: impl PgExecutor<'c>, projection: &str) -> Result<()> {
    sqlx::query("delete from projection.failure where projection = $1").bind(projection).execute(executor).await?;
    Ok(())
}
