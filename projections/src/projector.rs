//! The live projector: catch up from the checkpoint, then follow the log, applying events in
//! batches with the checkpoint in the same transaction (exactly-once effects), as the one
//! active instance of its projection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use events::{EventStore, LogPosition, RecordedEvent};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch::{Expected, Outcome, Target, apply_batch};
use crate::checkpoint;
use crate::feed::Feed;
use crate::generation::ensure_live;
use crate::leader::{alive, lock_key};
use crate::projection::{EventFilter, SharedProjection, check_name};
use crate::rebuild::rebuild;
use crate::runtime::{Backoff, RunOptions, Worker, run_with_leadership, sleep_or_shutdown};
use crate::telemetry::Meter;
use crate::{Error, Result};

/// Run one projection until `shutdown` turns true: stand by while another process is
/// active, lead when the lock is free. A live generation built by an older `version()` is
/// rebuilt first (shadow build and swap); errors are retried, never skipped.
pub async fn run_projector(
    pool: PgPool,
    store: Arc<dyn EventStore>,
    projection: SharedProjection,
    options: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    check_name(projection.name())?;
    let meter = Meter::projection(projection.name());
    let key = lock_key("projection", projection.name());
    let mut worker = ProjectorWorker {
        filter: EventFilter::new(projection.event_types()),
        pool: pool.clone(),
        store,
        projection,
        options: options.clone(),
        meter,
    };
    run_with_leadership(&pool, key, meter, &options, &mut shutdown, &mut worker).await
}

/// Run several projections side by side (one task each) until `shutdown`.
pub async fn run_projectors(
    pool: PgPool,
    store: Arc<dyn EventStore>,
    projections: Vec<SharedProjection>,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let tasks: Vec<_> = projections
        .into_iter()
        .map(|projection| {
            tokio::spawn(run_projector(pool.clone(), store.clone(), projection, options.clone(), shutdown.clone()))
        })
        .collect();
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await.map_err(|e| Error::Task(e.to_string()));
        if let Err(error) = outcome.and_then(|r| r) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

struct ProjectorWorker {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    projection: SharedProjection,
    filter: EventFilter,
    options: RunOptions,
    meter: Meter,
}

/// The event a projector is stopped at.
struct Stuck {
    event_id: Uuid,
    attempts: u32,
}

enum Step {
    Continue,
    /// Set-up again: the live generation changed version or disappeared.
    Restart,
}

#[async_trait]
impl Worker for ProjectorWorker {
    fn role(&self) -> &'static str {
        "projector"
    }

    async fn lead(&mut self, conn: &mut PgConnection, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        loop {
            let live = self.live_generation().await?;
            match self.follow(conn, shutdown, Expected { generation: live.generation, position: live.position }).await?
            {
                Step::Continue => return Ok(()),
                Step::Restart => continue,
            }
        }
    }
}

impl ProjectorWorker {
    /// The live generation, rebuilt first if an older version of this code built it.
    async fn live_generation(&self) -> Result<checkpoint::Checkpoint> {
        let projection = &*self.projection;
        let live = ensure_live(&self.pool, projection).await?;
        if live.version == projection.version() {
            return Ok(live);
        }
        if live.version > projection.version() {
            return Err(Error::NewerGeneration {
                projection: projection.name().to_owned(),
                live: live.version,
                ours: projection.version(),
            });
        }
        tracing::info!(
            projection = projection.name(),
            live_version = live.version,
            version = projection.version(),
            "live generation was built by an older version: rebuilding it"
        );
        rebuild(&self.pool, self.store.clone(), std::slice::from_ref(&self.projection), self.options.rebuild.clone())
            .await?;
        ensure_live(&self.pool, projection).await
    }

    /// Apply the log from `expected` on, until shutdown (`Continue`) or a set-up change.
    async fn follow(
        &self,
        conn: &mut PgConnection,
        shutdown: &mut watch::Receiver<bool>,
        mut expected: Expected,
    ) -> Result<Step> {
        let name = self.projection.name();
        let options = &self.options;
        let mut feed = Feed::start(&self.store, expected.position, options.read_ahead);
        let mut buffer: VecDeque<RecordedEvent> = VecDeque::new();
        // One event per transaction while looking for (or stopped at) a failing event.
        let mut single = false;
        let mut stuck: Option<Stuck> = None;
        let mut backoff = Backoff::new(options);
        let mut last_full = false;
        let mut last_lag_report: Option<Instant> = None;
        self.meter.stalled(false);
        loop {
            if crate::runtime::is_shutdown(shutdown) {
                return Ok(Step::Continue);
            }
            if buffer.is_empty() {
                let linger = if last_full { options.catch_up_linger } else { Duration::ZERO };
                let next = tokio::select! {
                    next = feed.next_batch(options.batch_size, options.standby_retry, linger) => next,
                    () = crate::runtime::shutdown_requested(shutdown) => return Ok(Step::Continue),
                };
                match next {
                    Ok(events) if events.is_empty() => {
                        // Idle: check the session (and so the lock) is still ours.
                        if !alive(conn).await {
                            return Err(Error::Store(events::StoreError::Unavailable(
                                "the leader connection was lost".into(),
                            )));
                        }
                        self.meter.lag(0, 0.0);
                        continue;
                    }
                    Ok(events) => {
                        last_full = events.len() >= options.batch_size;
                        buffer.extend(events);
                    }
                    Err(error) => {
                        self.meter.error();
                        tracing::warn!(projection = name, %error, "reading the log failed, retrying");
                        if sleep_or_shutdown(backoff.next(), shutdown).await {
                            return Ok(Step::Continue);
                        }
                        buffer.clear();
                        feed = Feed::start(&self.store, expected.position, options.read_ahead);
                        continue;
                    }
                }
            }

            let take = if single { self.through_first_wanted(&buffer) } else { buffer.len() };
            let chunk: Vec<RecordedEvent> = buffer.drain(..take).collect();
            let started = Instant::now();
            let outcome = apply_batch(conn, &*self.projection, &self.filter, Target::Live, expected, &chunk).await;
            match outcome {
                Ok(Outcome::Applied { position, applied }) => {
                    expected.position = position;
                    self.meter.batch(position, chunk.len(), applied, started.elapsed());
                    backoff.reset();
                    if let Some(s) = &stuck
                        && chunk.iter().any(|e| e.event_id == s.event_id)
                    {
                        tracing::info!(projection = name, event_id = %s.event_id, attempts = s.attempts, "got past the failing event");
                        stuck = None;
                        single = false;
                        self.meter.stalled(false);
                        if let Err(error) = checkpoint::clear_failure(&self.pool, name).await {
                            tracing::warn!(projection = name, %error, "cannot clear the failure record");
                        }
                    }
                    if single && stuck.is_none() && buffer.is_empty() {
                        single = false;
                    }
                    if buffer.is_empty() && feed.ready() == 0 {
                        // Caught up with everything read so far: no query needed.
                        self.meter.lag(0, 0.0);
                    } else if last_lag_report.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        last_lag_report = Some(Instant::now());
                        self.report_lag(position, chunk.last().map(|e| e.recorded_at)).await;
                    }
                }
                Ok(Outcome::Moved(row)) => {
                    tracing::info!(
                        projection = name,
                        generation = row.generation,
                        position = %row.position,
                        "checkpoint moved (rebuild swap or another writer): continuing from it"
                    );
                    if row.version != self.projection.version() {
                        return Ok(Step::Restart);
                    }
                    expected = Expected { generation: row.generation, position: row.position };
                    buffer.clear();
                    feed = Feed::start(&self.store, expected.position, options.read_ahead);
                }
                Ok(Outcome::Missing) => return Ok(Step::Restart),
                Err(error) if error.is_transient() => {
                    put_back(&mut buffer, chunk);
                    self.meter.error();
                    tracing::warn!(projection = name, %error, "batch failed on a transient error, retrying");
                    if !alive(conn).await {
                        return Err(error);
                    }
                    if sleep_or_shutdown(backoff.next(), shutdown).await {
                        return Ok(Step::Continue);
                    }
                }
                Err(error) => {
                    put_back(&mut buffer, chunk);
                    self.meter.error();
                    if !single {
                        // Which event? Apply one at a time up to the culprit.
                        tracing::debug!(projection = name, %error, "batch failed, applying events one by one");
                        single = true;
                        continue;
                    }
                    let event = &buffer[take - 1];
                    let attempts = match &mut stuck {
                        Some(s) if s.event_id == event.event_id => {
                            s.attempts += 1;
                            s.attempts
                        }
                        _ => {
                            stuck = Some(Stuck { event_id: event.event_id, attempts: 1 });
                            1
                        }
                    };
                    tracing::error!(
                        projection = name,
                        stream = %event.stream_id,
                        stream_version = event.stream_version,
                        event_id = %event.event_id,
                        event_type = %event.event_type,
                        position = %event.position,
                        attempts,
                        %error,
                        "projection stopped at an event it cannot apply; retrying (park the event to skip it)"
                    );
                    self.meter.stalled(true);
                    if let Err(e) =
                        checkpoint::record_failure(&self.pool, name, event, &error.to_string(), attempts).await
                    {
                        tracing::warn!(projection = name, error = %e, "cannot record the failure");
                    }
                    if sleep_or_shutdown(backoff.next(), shutdown).await {
                        return Ok(Step::Continue);
                    }
                }
            }
        }
    }

    /// Events up to and including the first one this projection wants.
    fn through_first_wanted(&self, buffer: &VecDeque<RecordedEvent>) -> usize {
        buffer.iter().position(|e| self.filter.wants(&e.event_type)).map_or(buffer.len(), |i| i + 1)
    }

    /// Lag in events (estimated from log positions; `status` counts exactly) and in seconds
    /// (age of the last applied event while more wait; 0 when caught up).
    async fn report_lag(&self, position: LogPosition, last_recorded_at: Option<chrono::DateTime<Utc>>) {
        let Ok(head) = self.store.head().await else { return };
        let events = if head > position { head.prepare().saturating_sub(position.prepare()).max(1) } else { 0 };
        let seconds = match (events > 0, last_recorded_at) {
            (true, Some(at)) => (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0,
            _ => 0.0,
        };
        self.meter.lag(events, seconds);
    }
}

fn put_back(buffer: &mut VecDeque<RecordedEvent>, chunk: Vec<RecordedEvent>) {
    for event in chunk.into_iter().rev() {
        buffer.push_front(event);
    }
}
