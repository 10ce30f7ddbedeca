//! One batch: the transaction that applies events to a generation and moves its checkpoint,
//! fenced on the checkpoint row.

use events::{LogPosition, RecordedEvent};
use sqlx::{Connection, PgConnection};

use crate::Result;
use crate::checkpoint::{self, Checkpoint, Locked};
use crate::projection::{EventFilter, Projection, schema_name};

/// Which row a batch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Whatever generation is live (the live projector).
    Live,
    /// One generation (a rebuild's shadow).
    Generation(i32),
}

/// Where the batch's writer believes the checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    pub generation: i32,
    pub position: LogPosition,
}

#[derive(Debug)]
pub(crate) enum Outcome {
    /// Committed: the checkpoint is now `position`; `applied` events went to `apply`.
    Applied { position: LogPosition, applied: usize },
    /// The row is not where the writer thought (another writer, a swap, a version change):
    /// nothing was written; continue from this row.
    Moved(Checkpoint),
    /// No such row (no live generation, or the generation was dropped).
    Missing,
}

/// Apply `events` (consecutive events of the log, right after `expected.position`) in one
/// transaction: lock the checkpoint row, check it, apply the wanted and unparked events in
/// the generation's schema, advance the checkpoint, commit.
pub(crate) async fn apply_batch(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    filter: &EventFilter,
    target: Target,
    expected: Expected,
    events: &[RecordedEvent],
) -> Result<Outcome> {
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(Outcome::Applied { position: expected.position, applied: 0 });
    };
    let name = projection.name();
    let mut tx = conn.begin().await?;
    // Safe without waiting for the WAL flush: read-model changes and checkpoint commit (or
    // are lost in a server crash) together, and a lost batch is simply applied again.
    sqlx::raw_sql("set local synchronous_commit = off").execute(&mut *tx).await?;
    let locked = match target {
        Target::Live => checkpoint::lock_live(&mut *tx, name).await?,
        Target::Generation(generation) => checkpoint::lock_generation(&mut *tx, name, generation).await?,
    };
    let Some(Locked { checkpoint, parked }) = locked else {
        tx.rollback().await?;
        return Ok(Outcome::Missing);
    };
    if checkpoint.generation != expected.generation
        || checkpoint.position != expected.position
        || checkpoint.version != projection.version()
    {
        tx.rollback().await?;
        return Ok(Outcome::Moved(checkpoint));
    }
    let applied =
        apply_in(&mut tx, projection, filter, checkpoint.generation, expected.position, &parked, events).await?;
    checkpoint::advance(&mut *tx, name, checkpoint.generation, last, events.len() as u64).await?;
    tx.commit().await?;
    Ok(Outcome::Applied { position: last, applied })
}

/// Apply the wanted, unparked events after `after` to a generation, inside the caller's
/// transaction (the runtime's batch, or a rebuild's swap). Returns how many were applied.
pub(crate) async fn apply_in(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    filter: &EventFilter,
    generation: i32,
    after: LogPosition,
    parked: &std::collections::HashSet<uuid::Uuid>,
    events: &[RecordedEvent],
) -> Result<usize> {
    let wanted: Vec<RecordedEvent> = events
        .iter()
        .filter(|e| e.position > after && filter.wants(&e.event_type) && !parked.contains(&e.event_id))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    // `set local`: ends with the transaction. Unqualified names in `apply` resolve to this
    // generation, so the same code writes the live and a shadow generation.
    let schema = schema_name(projection.name(), generation);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("set local search_path to {schema}"))).execute(&mut *conn).await?;
    projection.apply(conn, &wanted).await?;
    Ok(wanted.len())
}
