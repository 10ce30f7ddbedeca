//! Status of every projection and reactor (for `agora status [--json]`), and parking
//! events an operator decided to skip.

use chrono::{DateTime, Utc};
use events::{EventStore, LogPosition};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use crate::checkpoint::{self, commit_of, position, prepare_of};
use crate::leader::{LOCK_CLASS, lock_key};
use crate::projection::SharedProjection;
use crate::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The last event readers of the log can see.
    pub head: LogPosition,
    pub checked_at: DateTime<Utc>,
    pub projections: Vec<ProjectionStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// `projection` or `reactor`.
    pub kind: String,
    pub live_generation: Option<i32>,
    /// Version that built the live generation.
    pub live_version: Option<u32>,
    /// Version of this build's code (projections given to `status`).
    pub code_version: Option<u32>,
    /// The live generation was built by another version (the projector rebuilds it when it
    /// starts).
    pub needs_rebuild: bool,
    pub checkpoint: LogPosition,
    pub updated_at: Option<DateTime<Utc>>,
    /// Events in the log after the checkpoint (counted; capped at 10,000,000).
    pub lag_events: u64,
    /// Age of the oldest event not applied yet (0 when caught up).
    pub lag_seconds: f64,
    /// The process holding the projection's lock, if one runs.
    pub leader: Option<Leader>,
    /// A rebuild in progress or interrupted (a shadow generation).
    pub rebuild: Option<ShadowStatus>,
    /// The event it is stopped at, if any.
    pub error: Option<Failure>,
    pub parked: Vec<ParkedEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leader {
    pub pid: i32,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub backend_start: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShadowStatus {
    pub generation: i32,
    pub checkpoint: LogPosition,
    /// A rebuild process holds the rebuild lock right now.
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub position: LogPosition,
    pub error: String,
    pub attempts: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParkedEvent {
    pub projection: String,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub position: LogPosition,
    pub reason: String,
    pub parked_at: DateTime<Utc>,
}

const LAG_CAP: i64 = 10_000_000;

/// Status of every projection and reactor with a checkpoint, plus the given projections
/// that have none yet.
pub async fn status(pool: &PgPool, store: &dyn EventStore, projections: &[SharedProjection]) -> Result<Status> {
    let head = store.head().await?;
    // One snapshot for every row read here, so checkpoint, failure and parked events agree.
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    let rows = checkpoint::all(&mut *tx).await?;
    let mut names: Vec<(String, String)> = Vec::new();
    for (row, kind) in &rows {
        if !names.iter().any(|(n, _)| n == &row.projection) {
            names.push((row.projection.clone(), kind.clone()));
        }
    }
    for projection in projections {
        if !names.iter().any(|(n, _)| n == projection.name()) {
            names.push((projection.name().to_owned(), "projection".to_owned()));
        }
    }
    let mut statuses = Vec::with_capacity(names.len());
    for (name, kind) in names {
        let live = rows.iter().map(|(r, _)| r).find(|r| r.projection == name && r.live);
        let shadow = rows
            .iter()
            .map(|(r, _)| r)
            .filter(|r| r.projection == name && !r.live && live.is_none_or(|l| r.generation > l.generation))
            .max_by_key(|r| r.generation);
        let code_version = projections.iter().find(|p| p.name() == name).map(|p| p.version());
        let checkpoint = live.map_or(LogPosition::START, |l| l.position);
        let (lag_events, lag_seconds) = lag(&mut tx, store, checkpoint).await?;
        let lock_kind = if kind == "reactor" { "reactor" } else { "projection" };
        let leader = lock_holder(&mut *tx, lock_key(lock_kind, &name)).await?;
        let rebuild = match shadow {
            Some(s) => Some(ShadowStatus {
                generation: s.generation,
                checkpoint: s.position,
                running: lock_holder(&mut *tx, lock_key("rebuild", &name)).await?.is_some(),
            }),
            None => None,
        };
        statuses.push(ProjectionStatus {
            needs_rebuild: matches!((live, code_version), (Some(l), Some(v)) if kind == "projection" && l.version != v),
            live_generation: live.map(|l| l.generation),
            live_version: live.map(|l| l.version),
            code_version,
            checkpoint,
            updated_at: live.map(|l| l.updated_at),
            lag_events,
            lag_seconds,
            leader,
            rebuild,
            error: failure(&mut *tx, &name).await?,
            parked: parked(&mut *tx, &name).await?,
            name,
            kind,
        });
    }
    tx.commit().await?;
    Ok(Status { head, checked_at: Utc::now(), projections: statuses })
}

/// Events after `checkpoint`, and the age of the first of them.
async fn lag(conn: &mut sqlx::PgConnection, store: &dyn EventStore, checkpoint: LogPosition) -> Result<(u64, f64)> {
    let next = store.read_all(checkpoint, 1).await?;
    let Some(first) = next.first() else { return Ok((0, 0.0)) };
    let seconds = (Utc::now() - first.recorded_at).num_milliseconds().max(0) as f64 / 1000.0;
    let count: std::result::Result<i64, sqlx::Error> = sqlx::query_scalar(
        "select count(*) from (select 1 from event_store.event \
          where (transaction_id, position) > ($1, $2) \
            and transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint limit $3) as pending",
    )
    .bind(commit_of(checkpoint))
    .bind(prepare_of(checkpoint))
    .bind(LAG_CAP)
    .fetch_one(&mut *conn)
    .await;
    // A store without that table: estimate from positions.
    let events = match count {
        Ok(n) => u64::try_from(n).unwrap_or(0),
        Err(_) => store.head().await?.prepare().saturating_sub(checkpoint.prepare()),
    };
    Ok((events, seconds))
}

/// The session holding advisory lock (`LOCK_CLASS`, `key`) in this database.
pub async fn lock_holder<'c>(executor: impl PgExecutor<'c>, key: i32) -> Result<Option<Leader>> {
    let row = sqlx::query(
        "select a.pid, coalesce(a.application_name, ''), host(a.client_addr), a.backend_start \
           from pg_locks l join pg_stat_activity a on a.pid = l.pid \
          where l.locktype = 'advisory' and l.granted and l.objsubid = 2 \
            and l.database = (select oid from pg_database where datname = current_database()) \
            and l.classid::bigint = $1 and l.objid::bigint = $2 \
          limit 1",
    )
    .bind(i64::from(LOCK_CLASS as u32))
    .bind(i64::from(key as u32))
    .fetch_optional(executor)
    .await?;
    Ok(match row {
        Some(row) => Some(Leader {
            pid: row.try_get(0)?,
            application_name: row.try_get(1)?,
            client_addr: row.try_get(2)?,
            backend_start: row.try_get(3)?,
        }),
        None => None,
    })
}

async fn failure<'c>(executor: impl PgExecutor<'c>, projection: &str) -> Result<Option<Failure>> {
    let row = sqlx::query(
        "select event_id, stream_id, stream_version, event_type, commit_position, prepare_position, error, \
                attempts, first_failed_at, last_failed_at \
           from projection.failure where projection = $1",
    )
    .bind(projection)
    .fetch_optional(executor)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let version: i64 = row.try_get(2)?;
    let attempts: i32 = row.try_get(7)?;
    Ok(Some(Failure {
        event_id: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        stream_version: u64::try_from(version).unwrap_or(0),
        event_type: row.try_get(3)?,
        position: position(row.try_get(4)?, row.try_get(5)?),
        error: row.try_get(6)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        first_failed_at: row.try_get(8)?,
        last_failed_at: row.try_get(9)?,
    }))
}

/// The events parked for a projection or reactor, in log order.
pub async fn parked<'c>(executor: impl PgExecutor<'c>, projection: &str) -> Result<Vec<ParkedEvent>> {
    let rows = sqlx::query(
        "select projection, event_id, stream_id, stream_version, event_type, commit_position, prepare_position, \
                reason, parked_at \
           from projection.parked_event where projection = $1 order by commit_position, prepare_position",
    )
    .bind(projection)
    .fetch_all(executor)
    .await?;
    rows.iter().map(parked_row).collect()
}

fn parked_row(row: &sqlx::postgres::PgRow) -> Result<ParkedEvent> {
    let version: i64 = row.try_get(3)?;
    Ok(ParkedEvent {
        projection: row.try_get(0)?,
        event_id: row.try_get(1)?,
        stream_id: row.try_get(2)?,
        stream_version: u64::try_from(version).unwrap_or(0),
        event_type: row.try_get(4)?,
        position: position(row.try_get(5)?, row.try_get(6)?),
        reason: row.try_get(7)?,
        parked_at: row.try_get(8)?,
    })
}

/// Tell a projection or reactor to skip an event (it is recorded, with the reason, and
/// shown in status). Takes effect at the projector's next attempt, in every generation.
pub async fn park(pool: &PgPool, projection: &str, event_id: Uuid, reason: &str) -> Result<ParkedEvent> {
    let known: bool = sqlx::query_scalar("select exists (select 1 from projection.checkpoint where projection = $1)")
        .bind(projection)
        .fetch_one(pool)
        .await?;
    if !known {
        return Err(Error::UnknownProjection(projection.to_owned()));
    }
    let row = sqlx::query(
        "insert into projection.parked_event (projection, event_id, stream_id, stream_version, event_type, \
                                              commit_position, prepare_position, reason) \
         select $1, e.event_id, e.stream_id, e.stream_version, e.event_type, e.transaction_id, e.position, $3 \
           from event_store.event e where e.event_id = $2 \
         on conflict (projection, event_id) do update set reason = excluded.reason \
         returning projection, event_id, stream_id, stream_version, event_type, commit_position, prepare_position, \
                   reason, parked_at",
    )
    .bind(projection)
    .bind(event_id)
    .bind(reason)
    .fetch_optional(pool)
    .await?;
    let parked = parked_row(&row.ok_or(Error::EventNotFound(event_id))?)?;
    tracing::info!(projection, event_id = %event_id, stream = %parked.stream_id, reason, "event parked");
    Ok(parked)
}

/// Stop skipping an event. Returns whether it was parked. (A projection already past it
/// does not go back: rebuild to apply it.)
pub async fn unpark(pool: &PgPool, projection: &str, event_id: Uuid) -> Result<bool> {
    let deleted = sqlx::query("delete from projection.parked_event where projection = $1 and event_id = $2")
        .bind(projection)
        .bind(event_id)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
