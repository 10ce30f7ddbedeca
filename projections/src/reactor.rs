//! The reactor runtime: runs `events::reactor::Reactor`s (process managers) from a
//! checkpoint, as the one active instance per reactor, with the projectors' error handling.
//!
//! Delivery is at-least-once. Reactions of one batch run concurrently (bounded), one task
//! per stream so each stream's events react in log order; the checkpoint only moves past
//! the longest prefix of the batch whose reactions all completed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::reactor::{ReactionError, Reactor};
use events::{EventStore, LogPosition, RecordedEvent};
use futures_util::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::checkpoint;
use crate::feed::Feed;
use crate::generation::ensure_reactor;
use crate::leader::{alive, lock_key};
use crate::projection::check_name;
use crate::runtime::{
    Backoff, RunOptions, Worker, is_shutdown, run_with_leadership, shutdown_requested, sleep_or_shutdown,
};
use crate::telemetry::Meter;
use crate::{Error, Result};

/// Run one reactor until `shutdown` turns true (standby while another process is active).
pub async fn run_reactor(
    pool: PgPool,
    store: Arc<dyn EventStore>,
    reactor: Arc<dyn Reactor>,
    options: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    check_name(reactor.name())?;
    let meter = Meter::reactor(reactor.name());
    let key = lock_key("reactor", reactor.name());
    let mut worker = ReactorWorker { pool: pool.clone(), store, reactor, options: options.clone(), meter };
    run_with_leadership(&pool, key, meter, &options, &mut shutdown, &mut worker).await
}

struct ReactorWorker {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    reactor: Arc<dyn Reactor>,
    options: RunOptions,
    meter: Meter,
}

/// What became of one batch of reactions.
struct Reacted {
    /// Reactions of `events[..completed]` all finished.
    completed: usize,
    /// The first failure in log order.
    failure: Option<(usize, ReactionError)>,
    reactions: usize,
}

#[async_trait]
impl Worker for ReactorWorker {
    fn role(&self) -> &'static str {
        "reactor"
    }

    async fn lead(&mut self, conn: &mut PgConnection, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        let name = self.reactor.name();
        let options = self.options.clone();
        let mut position = ensure_reactor(&self.pool, name).await?.position;
        let mut feed = Feed::start(&self.store, position, options.read_ahead);
        let mut buffer: VecDeque<RecordedEvent> = VecDeque::new();
        let mut single = false;
        let mut stuck: Option<(Uuid, u32)> = None;
        let mut backoff = Backoff::new(&options);
        self.meter.stalled(false);
        loop {
            if is_shutdown(shutdown) {
                return Ok(());
            }
            if buffer.is_empty() {
                let next = tokio::select! {
                    next = feed.next_batch(options.batch_size, options.standby_retry, Duration::ZERO) => next,
                    () = shutdown_requested(shutdown) => return Ok(()),
                };
                match next {
                    Ok(events) if events.is_empty() => {
                        if !alive(conn).await {
                            return Err(Error::Store(events::StoreError::Unavailable(
                                "the leader connection was lost".into(),
                            )));
                        }
                        self.meter.lag(0, 0.0);
                        continue;
                    }
                    Ok(events) => buffer.extend(events),
                    Err(error) => {
                        self.meter.error();
                        tracing::warn!(reactor = name, %error, "reading the log failed, retrying");
                        if sleep_or_shutdown(backoff.next(), shutdown).await {
                            return Ok(());
                        }
                        feed = Feed::start(&self.store, position, options.read_ahead);
                        continue;
                    }
                }
            }
            let take = if single {
                buffer.iter().position(|e| self.reactor.wants(&e.event_type)).map_or(buffer.len(), |i| i + 1)
            } else {
                buffer.len()
            };
            let chunk: Vec<RecordedEvent> = buffer.drain(..take).collect();
            let parked = match checkpoint::parked_ids(&self.pool, name).await {
                Ok(parked) => parked,
                Err(error) => {
                    put_back(&mut buffer, chunk);
                    self.meter.error();
                    tracing::warn!(reactor = name, %error, "cannot read parked events, retrying");
                    if sleep_or_shutdown(backoff.next(), shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            let started = Instant::now();
            let reacted = react_all(&*self.reactor, &chunk, &parked, options.reactor_concurrency).await;
            if reacted.completed > 0 {
                let to = chunk[reacted.completed - 1].position;
                match commit_checkpoint(conn, name, position, to, reacted.completed).await {
                    Ok(None) => {
                        tracing::debug!(reactor = name, from = %position, to = %to, events = reacted.completed, "checkpoint saved");
                        position = to;
                        self.meter.batch(to, reacted.completed, reacted.reactions, started.elapsed());
                    }
                    Ok(Some(moved)) => {
                        tracing::info!(reactor = name, position = %moved, "checkpoint moved by another writer: continuing from it");
                        position = moved;
                        buffer.clear();
                        feed = Feed::start(&self.store, position, options.read_ahead);
                        continue;
                    }
                    Err(Error::UnknownProjection(_)) => {
                        // The row is gone (read models reset): start again from a new one.
                        position = ensure_reactor(&self.pool, name).await?.position;
                        buffer.clear();
                        feed = Feed::start(&self.store, position, options.read_ahead);
                        continue;
                    }
                    Err(error) => {
                        // The reactions ran; they will run again (at-least-once).
                        put_back(&mut buffer, chunk);
                        self.meter.error();
                        tracing::warn!(reactor = name, %error, "cannot save the checkpoint, retrying");
                        if !alive(conn).await {
                            return Err(error);
                        }
                        if sleep_or_shutdown(backoff.next(), shutdown).await {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            let passed: HashSet<Uuid> = chunk[..reacted.completed].iter().map(|e| e.event_id).collect();
            put_back(&mut buffer, chunk.into_iter().skip(reacted.completed).collect());
            if let Some((stuck_id, attempts)) = stuck
                && passed.contains(&stuck_id)
            {
                tracing::info!(reactor = name, event_id = %stuck_id, attempts, "got past the failing event");
                stuck = None;
                single = false;
                self.meter.stalled(false);
                if let Err(error) = checkpoint::clear_failure(&self.pool, name).await {
                    tracing::warn!(reactor = name, %error, "cannot clear the failure record");
                }
            }
            match reacted.failure {
                None => {
                    backoff.reset();
                    if single && stuck.is_none() && buffer.is_empty() {
                        single = false;
                    }
                }
                Some((_, error)) => {
                    self.meter.error();
                    // The failing event is now at the front of the buffer: from here on, one
                    // event per round until it passes.
                    single = true;
                    let Some(event) = buffer.front() else { continue };
                    let attempts = match stuck {
                        Some((id, n)) if id == event.event_id => n + 1,
                        _ => 1,
                    };
                    stuck = Some((event.event_id, attempts));
                    let transient = matches!(error, ReactionError::Retry(_));
                    if transient {
                        tracing::warn!(reactor = name, stream = %event.stream_id, stream_version = event.stream_version,
                            event_id = %event.event_id, attempts, %error, "reaction failed, retrying");
                    } else {
                        tracing::error!(reactor = name, stream = %event.stream_id, stream_version = event.stream_version,
                            event_id = %event.event_id, event_type = %event.event_type, attempts, %error,
                            "reactor stopped at an event it cannot react to; retrying (park the event to skip it)");
                        self.meter.stalled(true);
                    }
                    if let Err(e) =
                        checkpoint::record_failure(&self.pool, name, event, &error.to_string(), attempts).await
                    {
                        tracing::warn!(reactor = name, error = %e, "cannot record the failure");
                    }
                    if sleep_or_shutdown(backoff.next(), shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Run the reactions of a batch: one sequential task per stream, at most `concurrency` at
/// once; with `concurrency` 1, strictly in log order.
async fn react_all(
    reactor: &dyn Reactor,
    events: &[RecordedEvent],
    parked: &HashSet<Uuid>,
    concurrency: usize,
) -> Reacted {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_stream: HashMap<&str, usize> = HashMap::new();
    let mut reactions = 0;
    for (i, event) in events.iter().enumerate() {
        if !reactor.wants(&event.event_type) || parked.contains(&event.event_id) {
            continue;
        }
        reactions += 1;
        // One at a time means one group: the whole batch in log order, across streams.
        let key = if concurrency <= 1 { "" } else { event.stream_id.as_str() };
        let group = *by_stream.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(i);
    }
    let failures: Vec<(usize, ReactionError)> = futures_util::stream::iter(groups)
        .map(|indexes| async move {
            for i in indexes {
                if let Err(error) = reactor.react(&events[i]).await {
                    return Some((i, error));
                }
            }
            None
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let failure = failures.into_iter().min_by_key(|(i, _)| *i);
    let completed = failure.as_ref().map_or(events.len(), |(i, _)| *i);
    Reacted { completed, failure, reactions }
}

/// Move a reactor's checkpoint from `from` to `to`, fenced: `Some(actual)` when the row was
/// not at `from` (nothing written).
async fn commit_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    from: LogPosition,
    to: LogPosition,
    processed: usize,
) -> Result<Option<LogPosition>> {
    let mut tx = conn.begin().await?;
    let Some(locked) = checkpoint::lock_generation(&mut *tx, name, 0).await? else {
        tx.rollback().await?;
        return Err(Error::UnknownProjection(name.to_owned()));
    };
    if locked.checkpoint.position != from {
        tx.rollback().await?;
        return Ok(Some(locked.checkpoint.position));
    }
    checkpoint::advance(&mut *tx, name, 0, to, processed as u64).await?;
    tx.commit().await?;
    Ok(None)
}

fn put_back(buffer: &mut VecDeque<RecordedEvent>, chunk: Vec<RecordedEvent>) {
    for event in chunk.into_iter().rev() {
        buffer.push_front(event);
    }
}
