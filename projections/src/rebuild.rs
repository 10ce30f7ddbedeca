//! Zero-downtime rebuild: build generation N+1 of each projection from the start of the log
//! while generation N keeps serving and updating, catch up, then swap in one transaction.
//!
//! 1. Take the projection's rebuild lock (one rebuild at a time per projection).
//! 2. Resume a shadow generation left by an interrupted rebuild of the same version, or drop
//!    stale shadows and create generation N+1 (schema + DDL + checkpoint row, not live).
//! 3. Read the log ONCE, in large pages, and apply each page to every shadow being built
//!    (each projection on its own connection, concurrently); each page is one transaction
//!    per shadow, checkpoint included, so an interruption loses nothing.
//! 4. Swap, per projection, in one transaction: lock the live checkpoint row (the live
//!    projector waits), apply the remaining tail to the shadow so it is at the live position
//!    or beyond, repoint the `read_model` views, mark the shadow live. Then drop generation N.
//!    The live projector finds the row changed at its next batch and continues on N+1.
//!
//! Interrupting (Ctrl-C: drop the future; kill) leaves the live generation untouched; a
//! re-run resumes the shadow.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use events::{EventStore, LogPosition, RecordedEvent};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::batch::{Expected, Outcome, Target, apply_batch, apply_in};
use crate::checkpoint::{self, commit_of, prepare_of};
use crate::generation::{create_generation, drop_generation, ensure_live, next_generation, point_views};
use crate::leader::{LOCK_CLASS, connect_dedicated, lock_key, try_lock};
use crate::projection::{EventFilter, SharedProjection, check_name};
use crate::{Error, Result};

/// Progress of a rebuild, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Progress {
    /// Log events read so far.
    pub events_done: u64,
    /// Log events to read, counted at the start (0 when the store cannot count).
    pub events_total: u64,
    pub events_per_s: f64,
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Clone)]
pub struct RebuildOptions {
    /// Events per page read from the log, and per shadow transaction.
    pub batch_size: usize,
    /// Called at most every `progress_every`, and once at the end.
    pub progress: Option<ProgressFn>,
    pub progress_every: Duration,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self { batch_size: 10_000, progress: None, progress_every: Duration::from_millis(250) }
    }
}

impl fmt::Debug for RebuildOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RebuildOptions")
            .field("batch_size", &self.batch_size)
            .field("progress", &self.progress.is_some())
            .field("progress_every", &self.progress_every)
            .finish()
    }
}

/// What a rebuild did to one projection.
#[derive(Debug, Clone, Serialize)]
pub struct RebuiltProjection {
    pub name: String,
    /// The new live generation.
    pub generation: i32,
    /// The generation it replaced (dropped).
    pub replaced: i32,
    /// Where an interrupted earlier rebuild was resumed from.
    pub resumed_from: Option<LogPosition>,
    pub position: LogPosition,
    /// Log events this build went through.
    pub events: u64,
    /// Events passed to the projection's `apply`.
    pub applied: u64,
    /// Time spent in this projection's transactions.
    pub seconds: f64,
    pub events_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildSummary {
    pub projections: Vec<RebuiltProjection>,
    /// Log events read.
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
}

impl fmt::Display for RebuildSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .projections
            .iter()
            .map(|p| format!("{} (g{}, {:.0} ev/s)", p.name, p.generation, p.events_per_s))
            .collect();
        write!(
            f,
            "rebuilt {} in {:.1} s: {} events, {:.0} events/s overall",
            names.join(", "),
            self.seconds,
            self.events,
            self.events_per_s
        )
    }
}

/// A shadow generation being built.
struct Shadow {
    projection: SharedProjection,
    filter: EventFilter,
    /// Dedicated: holds the rebuild lock for the whole rebuild.
    conn: PgConnection,
    generation: i32,
    position: LogPosition,
    resumed_from: Option<LogPosition>,
    events: u64,
    applied: u64,
    busy: Duration,
}

/// Rebuild `projections` from the log (see the module docs). Returns once every one of
/// them is swapped in.
pub async fn rebuild(
    pool: &PgPool,
    store: Arc<dyn EventStore>,
    projections: &[SharedProjection],
    options: RebuildOptions,
) -> Result<RebuildSummary> {
    let started = Instant::now();
    let batch_size = options.batch_size.max(1);
    let mut names = HashSet::new();
    let mut shadows = Vec::with_capacity(projections.len());
    for projection in projections {
        let name = projection.name();
        check_name(name)?;
        if !names.insert(name) {
            continue;
        }
        let mut conn = connect_dedicated(pool, "rebuild").await?;
        if !try_lock(&mut conn, lock_key("rebuild", name)).await? {
            return Err(Error::RebuildRunning(name.to_owned()));
        }
        let live = ensure_live(pool, &**projection).await?;
        let (generation, position, resumed_from) = prepare_shadow(&mut conn, projection, live.generation).await?;
        tracing::info!(projection = name, generation, from = %position, resumed = resumed_from.is_some(), "building shadow generation");
        shadows.push(Shadow {
            filter: EventFilter::new(projection.event_types()),
            projection: projection.clone(),
            conn,
            generation,
            position,
            resumed_from,
            events: 0,
            applied: 0,
            busy: Duration::ZERO,
        });
    }
    let Some(from) = shadows.iter().map(|s| s.position).min() else {
        return Ok(RebuildSummary { projections: Vec::new(), events: 0, seconds: 0.0, events_per_s: 0.0 });
    };
    let total = count_events_after(pool, from).await;
    let mut reporter = Reporter::new(options.clone(), total);

    // One reader, one task per shadow: each shadow goes at its own pace (a few pages of
    // read-ahead each), so the slowest projection sets the time, not the sum of per-page
    // maxima. Every task is aborted if this future is dropped (Ctrl-C).
    let mut inboxes = Vec::with_capacity(shadows.len());
    let mut workers = Vec::with_capacity(shadows.len());
    let mut counters = Vec::with_capacity(shadows.len());
    for mut shadow in shadows {
        let (tx, mut rx) = mpsc::channel::<Arc<Vec<RecordedEvent>>>(4);
        let done = Arc::new(AtomicU64::new(0));
        let counter = done.clone();
        inboxes.push(tx);
        counters.push(done);
        workers.push(AbortOnDrop(tokio::spawn(async move {
            while let Some(page) = rx.recv().await {
                shadow.apply_page(&page).await?;
                counter.fetch_add(page.len() as u64, Ordering::Relaxed);
            }
            Ok::<Shadow, Error>(shadow)
        })));
    }
    let reader_store = store.clone();
    let mut reader = AbortOnDrop(tokio::spawn(async move {
        let mut after = from;
        loop {
            let page = reader_store.read_all(after, batch_size).await?;
            let Some(last) = page.last().map(|e| e.position) else { return Ok::<(), Error>(()) };
            after = last;
            let page = Arc::new(page);
            for inbox in &inboxes {
                if inbox.send(page.clone()).await.is_err() {
                    // That shadow failed: its task has the error.
                    return Ok(());
                }
            }
        }
    }));
    let read = loop {
        let slowest = counters.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0);
        reporter.report(slowest, false);
        tokio::select! {
            read = &mut reader.0 => break read,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let mut shadows = Vec::with_capacity(workers.len());
    for mut worker in workers {
        let shadow = (&mut worker.0).await.map_err(|e| Error::Task(e.to_string()))??;
        shadows.push(shadow);
    }
    read.map_err(|e| Error::Task(e.to_string()))??;
    let mut done = shadows.iter().map(|s| s.events).max().unwrap_or(0);

    let mut rebuilt = Vec::with_capacity(shadows.len());
    for mut shadow in shadows {
        let tail_started = Instant::now();
        let (replaced, tail) = swap(&mut shadow, &*store, batch_size).await?;
        shadow.busy += tail_started.elapsed();
        done += tail;
        reporter.report(done, false);
        let name = shadow.projection.name();
        if let Err(error) = drop_generation(&mut shadow.conn, name, replaced).await {
            tracing::warn!(projection = name, generation = replaced, %error, "cannot drop the replaced generation; the next rebuild will");
        }
        let seconds = shadow.busy.as_secs_f64();
        tracing::info!(
            projection = name,
            generation = shadow.generation,
            replaced,
            events = shadow.events,
            seconds,
            "swapped in the rebuilt generation"
        );
        rebuilt.push(RebuiltProjection {
            name: name.to_owned(),
            generation: shadow.generation,
            replaced,
            resumed_from: shadow.resumed_from,
            position: shadow.position,
            events: shadow.events,
            applied: shadow.applied,
            seconds,
            events_per_s: rate(shadow.events, seconds),
        });
        let _ = shadow.conn.close().await;
    }
    reporter.report(done, true);
    let seconds = started.elapsed().as_secs_f64();
    Ok(RebuildSummary { projections: rebuilt, events: done, seconds, events_per_s: rate(done, seconds) })
}

fn rate(events: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { events as f64 / seconds } else { 0.0 }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Reporter {
    options: RebuildOptions,
    total: u64,
    started: Instant,
    last: Option<Instant>,
}

impl Reporter {
    fn new(options: RebuildOptions, total: u64) -> Self {
        Self { options, total, started: Instant::now(), last: None }
    }

    fn report(&mut self, done: u64, last: bool) {
        let Some(progress) = &self.options.progress else { return };
        if !last && self.last.is_some_and(|at| at.elapsed() < self.options.progress_every) {
            return;
        }
        self.last = Some(Instant::now());
        progress(Progress {
            events_done: done,
            events_total: self.total.max(done),
            events_per_s: rate(done, self.started.elapsed().as_secs_f64()),
        });
    }
}

/// Resume the newest shadow of the same version, or drop stale shadows and create a new
/// generation. Returns (generation, its position, resumed from).
async fn prepare_shadow(
    conn: &mut PgConnection,
    projection: &SharedProjection,
    live_generation: i32,
) -> Result<(i32, LogPosition, Option<LogPosition>)> {
    let name = projection.name();
    let mut resume = None;
    for row in checkpoint::generations(&mut *conn, name).await?.into_iter().rev() {
        if row.live {
            continue;
        }
        if resume.is_none() && row.generation > live_generation && row.version == projection.version() {
            resume = Some(row);
        } else {
            tracing::info!(projection = name, generation = row.generation, "dropping a stale generation");
            drop_generation(conn, name, row.generation).await?;
        }
    }
    if let Some(row) = resume {
        return Ok((row.generation, row.position, Some(row.position)));
    }
    let mut tx = conn.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1, $2)")
        .bind(LOCK_CLASS)
        .bind(lock_key("setup", name))
        .execute(&mut *tx)
        .await?;
    let next = next_generation(&mut tx, name).await?;
    create_generation(&mut tx, &**projection, next).await?;
    tx.commit().await?;
    Ok((next, LogPosition::START, None))
}

impl Shadow {
    /// Apply the part of `page` after this shadow's position, in one transaction.
    async fn apply_page(&mut self, page: &[RecordedEvent]) -> Result<()> {
        let from = page.partition_point(|e| e.position <= self.position);
        let events = &page[from..];
        if events.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut attempts = 0;
        let result = loop {
            let expected = Expected { generation: self.generation, position: self.position };
            let target = Target::Generation(self.generation);
            match apply_batch(&mut self.conn, &*self.projection, &self.filter, target, expected, events).await {
                Err(error) if error.is_transient() && attempts < 5 => {
                    attempts += 1;
                    tracing::warn!(projection = self.projection.name(), %error, attempts, "shadow batch failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempts)).await;
                }
                Err(error) if !error.is_transient() => break Err(self.locate_failure(events, error).await),
                other => break other,
            }
        };
        self.busy += started.elapsed();
        match result? {
            Outcome::Applied { position, applied } => {
                self.position = position;
                self.events += events.len() as u64;
                self.applied += applied as u64;
                Ok(())
            }
            Outcome::Moved(_) | Outcome::Missing => Err(Error::RebuildRunning(self.projection.name().to_owned())),
        }
    }

    /// A page failed: apply it one event at a time (committing the good prefix) to name the
    /// event that fails. The error says where to look; park the event and re-run to go on.
    async fn locate_failure(&mut self, events: &[RecordedEvent], error: Error) -> Error {
        let name = self.projection.name();
        let mut rest = events;
        while !rest.is_empty() {
            let take = rest.iter().position(|e| self.filter.wants(&e.event_type)).map_or(rest.len(), |i| i + 1);
            let (chunk, tail) = rest.split_at(take);
            let expected = Expected { generation: self.generation, position: self.position };
            let target = Target::Generation(self.generation);
            match apply_batch(&mut self.conn, &*self.projection, &self.filter, target, expected, chunk).await {
                Ok(Outcome::Applied { position, applied }) => {
                    self.position = position;
                    self.events += chunk.len() as u64;
                    self.applied += applied as u64;
                }
                Ok(_) => return Error::RebuildRunning(name.to_owned()),
                Err(failure) => {
                    let Some(event) = chunk.last() else { return failure };
                    tracing::error!(projection = name, stream = %event.stream_id, stream_version = event.stream_version,
                        event_id = %event.event_id, event_type = %event.event_type, error = %failure,
                        "rebuild stopped at an event it cannot apply (park it and re-run to resume)");
                    return Error::invalid_event(event, failure.to_string());
                }
            }
            rest = tail;
        }
        error
    }
}

/// Swap a caught-up shadow in (one transaction). Returns the replaced generation and the
/// number of tail events read.
async fn swap(shadow: &mut Shadow, store: &dyn EventStore, batch_size: usize) -> Result<(i32, u64)> {
    let name = shadow.projection.name();
    let mut tx = shadow.conn.begin().await?;
    // The live projector's next batch waits on this lock; it finds the row changed after.
    let live = checkpoint::lock_live(&mut *tx, name)
        .await?
        .ok_or_else(|| Error::NoLiveGeneration { projection: name.to_owned() })?;
    let locked = checkpoint::lock_generation(&mut *tx, name, shadow.generation)
        .await?
        .ok_or_else(|| Error::RebuildRunning(name.to_owned()))?;
    if locked.checkpoint.position != shadow.position || locked.checkpoint.live {
        return Err(Error::RebuildRunning(name.to_owned()));
    }
    let mut position = shadow.position;
    let mut tail = 0u64;
    let mut applied = 0u64;
    loop {
        let page = store.read_all(position, batch_size).await?;
        let Some(last) = page.last().map(|e| e.position) else { break };
        applied +=
            apply_in(&mut tx, &*shadow.projection, &shadow.filter, shadow.generation, position, &locked.parked, &page)
                .await? as u64;
        position = last;
        tail += page.len() as u64;
    }
    if position < live.checkpoint.position {
        // The live generation cannot be past what readers of the log can see.
        return Err(Error::Rebuild {
            projection: name.to_owned(),
            reason: format!("the shadow reached {position} but the live generation is at {}", live.checkpoint.position),
        });
    }
    checkpoint::advance(&mut *tx, name, shadow.generation, position, tail).await?;
    sqlx::raw_sql("set local search_path to default").execute(&mut *tx).await?;
    point_views(&mut tx, name, &live.checkpoint.tables, shadow.projection.tables(), shadow.generation).await?;
    sqlx::query(
        "update projection.checkpoint set live = false, updated_at = now() where projection = $1 and generation = $2",
    )
    .bind(name)
    .bind(live.checkpoint.generation)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update projection.checkpoint set live = true, updated_at = now() where projection = $1 and generation = $2",
    )
    .bind(name)
    .bind(shadow.generation)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    shadow.position = position;
    shadow.events += tail;
    shadow.applied += applied;
    Ok((live.checkpoint.generation, tail))
}

/// Events in the log after `after` (PostgreSQL store); 0 when they cannot be counted.
async fn count_events_after(pool: &PgPool, after: LogPosition) -> u64 {
    let count: std::result::Result<i64, sqlx::Error> =
        sqlx::query_scalar("select count(*) from event_store.event where (transaction_id, position) > ($1, $2)")
            .bind(commit_of(after))
            .bind(prepare_of(after))
            .fetch_one(pool)
            .await;
    count.map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// Drop generations that are neither live nor being built (left by interrupted swaps).
pub async fn drop_stale(pool: &PgPool, projection: &str) -> Result<Vec<i32>> {
    let mut conn = pool.acquire().await?;
    let mut dropped = Vec::new();
    let live = checkpoint::live(&mut *conn, projection).await?.map_or(0, |l| l.generation);
    for row in checkpoint::generations(&mut *conn, projection).await? {
        if !row.live && row.generation < live {
            drop_generation(&mut conn, projection, row.generation).await?;
            dropped.push(row.generation);
        }
    }
    Ok(dropped)
}
