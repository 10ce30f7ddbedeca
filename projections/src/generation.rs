//! Generations: the schema `rm_<projection>_g<N>` that holds one build of a projection's
//! tables, and the `read_model` views that point at the live one.

use sqlx::{Connection, PgConnection, PgPool};

use crate::checkpoint::{self, Checkpoint};
use crate::leader::{LOCK_CLASS, lock_key};
use crate::projection::{Projection, check_name, schema_name};
use crate::{Error, Result};

fn version_i32(projection: &dyn Projection) -> i32 {
    i32::try_from(projection.version()).unwrap_or(i32::MAX)
}

/// Serialise set-up work on one projection across processes (released at commit).
async fn lock_setup(conn: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query("select pg_advisory_xact_lock($1, $2)")
        .bind(LOCK_CLASS)
        .bind(lock_key("setup", name))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}

/// The live generation of `projection`, created (empty, at the start of the log) if the
/// projection has none yet.
pub async fn ensure_live(pool: &PgPool, projection: &dyn Projection) -> Result<Checkpoint> {
    let name = projection.name();
    check_name(name)?;
    if let Some(live) = checkpoint::live(pool, name).await? {
        return Ok(live);
    }
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    lock_setup(&mut tx, name).await?;
    if let Some(live) = checkpoint::live(&mut *tx, name).await? {
        return Ok(live);
    }
    let next = next_generation(&mut tx, name).await?;
    create_generation(&mut tx, projection, next).await?;
    point_views(&mut tx, name, &[], projection.tables(), next).await?;
    sqlx::query("update projection.checkpoint set live = true where projection = $1 and generation = $2")
        .bind(name)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(projection = name, generation = next, "created the first generation of the projection");
    checkpoint::live(pool, name).await?.ok_or_else(|| Error::NoLiveGeneration { projection: name.to_owned() })
}

/// The checkpoint row of a reactor, created at the start of the log if missing.
pub async fn ensure_reactor(pool: &PgPool, name: &str) -> Result<Checkpoint> {
    check_name(name)?;
    sqlx::query(
        "insert into projection.checkpoint (projection, generation, kind, version, live) \
         values ($1, 0, 'reactor', 0, true) on conflict do nothing",
    )
    .bind(name)
    .execute(pool)
    .await?;
    checkpoint::live(pool, name).await?.ok_or_else(|| Error::NoLiveGeneration { projection: name.to_owned() })
}

pub(crate) async fn next_generation(conn: &mut PgConnection, name: &str) -> Result<i32> {
    let max: Option<i32> =
        sqlx::query_scalar("select max(generation) from projection.checkpoint where projection = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    Ok(max.unwrap_or(0) + 1)
}

/// Create schema, tables and checkpoint row (not live) of a new generation, inside the
/// caller's transaction.
pub(crate) async fn create_generation(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    generation: i32,
) -> Result<()> {
    let name = projection.name();
    let schema = schema_name(name, generation);
    exec(conn, format!("drop schema if exists {schema} cascade; create schema {schema}")).await?;
    exec(conn, format!("set local search_path to {schema}")).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(projection.ddl().to_owned())).execute(&mut *conn).await?;
    exec(conn, "set local search_path to default".to_owned()).await?;
    let tables: Vec<String> = projection.tables().iter().map(|t| (*t).to_owned()).collect();
    sqlx::query(
        "insert into projection.checkpoint (projection, generation, kind, version, live, tables) \
         values ($1, $2, 'projection', $3, false, $4)",
    )
    .bind(name)
    .bind(generation)
    .bind(version_i32(projection))
    .bind(&tables)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Point the `read_model` views of a projection at `generation`: views of tables the new
/// generation no longer has are dropped. Transactional: readers see the old or the new set.
pub(crate) async fn point_views(
    conn: &mut PgConnection,
    name: &str,
    old_tables: &[String],
    new_tables: &[&str],
    generation: i32,
) -> Result<()> {
    let schema = schema_name(name, generation);
    let mut sql = String::new();
    for table in old_tables.iter().filter(|t| !new_tables.contains(&t.as_str())) {
        check_name(table)?;
        sql.push_str(&format!("drop view if exists read_model.{table};\n"));
    }
    for table in new_tables {
        check_name(table)?;
        // Drop and create (not `create or replace`): the new generation's columns may differ.
        sql.push_str(&format!(
            "drop view if exists read_model.{table};\ncreate view read_model.{table} as select * from {schema}.{table};\n"
        ));
    }
    exec(conn, sql).await
}

/// Drop a generation that is not live: its schema and its checkpoint row.
pub(crate) async fn drop_generation(conn: &mut PgConnection, name: &str, generation: i32) -> Result<()> {
    let mut tx = conn.begin().await?;
    lock_setup(&mut tx, name).await?;
    let live: Option<bool> =
        sqlx::query_scalar("select live from projection.checkpoint where projection = $1 and generation = $2")
            .bind(name)
            .bind(generation)
            .fetch_optional(&mut *tx)
            .await?;
    if live == Some(true) {
        // Never drop what readers use.
        return Ok(());
    }
    exec(&mut tx, format!("drop schema if exists {} cascade", schema_name(name, generation))).await?;
    sqlx::query("delete from projection.checkpoint where projection = $1 and generation = $2")
        .bind(name)
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Drop every read model, checkpoint, parked event and failure record: a fresh start (for
/// benchmarks and tests; the log is untouched).
pub async fn drop_all(pool: &PgPool) -> Result<()> {
    let schemas: Vec<String> = sqlx::query_scalar(
        "select nspname::text from pg_namespace where nspname ~ '^rm_[a-z0-9_]+_g[0-9]+$' order by nspname",
    )
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    for schema in schemas {
        exec(&mut tx, format!("drop schema if exists {schema} cascade")).await?;
    }
    exec(
        &mut tx,
        "drop schema if exists read_model cascade; create schema read_model; \
         truncate projection.checkpoint, projection.parked_event, projection.failure"
            .to_owned(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
