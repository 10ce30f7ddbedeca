//! Group commit: concurrent single-stream appends share one transaction.
//!
//! Each append is still its own call with its own expected-version check, and is
//! acknowledged only after the transaction holding it committed. What changes is how many
//! transactions carry them: a few writer tasks take whatever appends are waiting (never
//! waiting for more) and store them together with two statements — one reading the current
//! version of every stream concerned, one inserting every accepted event with its version.
//! When every append of a batch goes to a stream of its own at a version known to be free
//! (`known_versions`: a new stream, or the version after one this process saw committed),
//! the reading is skipped and the insert is the only statement.
//! The unique `(stream_id, stream_version)` index still settles races with other writers and
//! processes: a batch that loses one is read and tried again, then falls back to one append
//! at a time. An append that looks like a version conflict is never refused from the batch's
//! (possibly stale) reading: it is retried alone, where the database decides.
//!
//! Under load this turns N commits into one, which is what a 2-core machine running both the
//! database and the application spends most of its time on. With one client, every batch has
//! one append and takes the plain single-statement path.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::PgEventStore;
use super::errors::{Kind, classify};
use super::sql;
use crate::position::LogPosition;
use crate::store::{AppendRequest, Appended, AppendedEvent, EventStore, Result, StoreError};

pub struct Pending {
    pub request: AppendRequest,
    pub reply: oneshot::Sender<Result<Appended>>,
}

/// Tries of a batch before its appends are stored one by one.
const BATCH_TRIES: usize = 3;

/// Whether an append can join a batch: one stream, no idempotency record.
pub fn eligible(request: &AppendRequest) -> bool {
    request.streams.len() == 1 && request.idempotency.is_none()
}

/// Start `writers` writer tasks over `direct` (a store handle that appends directly).
pub fn start(direct: PgEventStore, writers: usize, max_batch: usize) -> mpsc::Sender<Pending> {
    super::batching::start(writers, max_batch, move |mut batch: Vec<Pending>| {
        let direct = direct.clone();
        async move {
            metrics::histogram!("agora_append_batch_size").record(batch.len() as f64);
            if batch.len() == 1 {
                let Some(Pending { request, reply }) = batch.pop() else { return };
                let _ = reply.send(direct.append(request).await);
            } else {
                store_batch(&direct, batch).await;
            }
        }
    })
}

/// The first version of each append of the batch, when every one is known to be free and no
/// two name the same stream.
fn free_versions(direct: &PgEventStore, batch: &[Pending]) -> Option<Vec<u64>> {
    let mut streams = HashSet::with_capacity(batch.len());
    batch
        .iter()
        .map(|p| {
            let fresh = streams.insert(p.request.streams[0].stream_id.as_str());
            direct.free_version(&p.request).filter(|_| fresh)
        })
        .collect()
}

/// Read where every stream of the batch is now and accept, in arrival order, the appends
/// whose expectation holds; the others are sent on alone. `None` when the read failed (the
/// batch is left as it was).
async fn accept_current(direct: &PgEventStore, batch: &mut Vec<Pending>) -> Option<Vec<Accepted>> {
    let mut names: Vec<&str> = batch.iter().map(|p| p.request.streams[0].stream_id.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let versions = direct.run(async |c| sql::stream_versions(c, &names).await).await.ok()?;
    let mut current: HashMap<String, u64> =
        versions.into_iter().map(|(stream, version)| (stream, u64::try_from(version).unwrap_or(0))).collect();
    let mut accepted: Vec<Accepted> = Vec::with_capacity(batch.len());
    let mut alone: Vec<Pending> = Vec::new();
    for pending in batch.drain(..) {
        let stream = &pending.request.streams[0];
        let version = current.get(stream.stream_id.as_str()).copied().unwrap_or(0);
        if stream.expected.accepts(version) {
            current.insert(stream.stream_id.to_string(), version + stream.events.len() as u64);
            accepted.push(Accepted { pending, first_version: version + 1 });
        } else {
            // Perhaps a conflict, perhaps a stale reading: the database decides, alone.
            alone.push(pending);
        }
    }
    for pending in alone {
        let direct = direct.clone();
        tokio::spawn(async move {
            let _ = pending.reply.send(direct.append(pending.request).await);
        });
    }
    Some(accepted)
}

/// An append of the batch, with the versions its events get.
struct Accepted {
    pending: Pending,
    first_version: u64,
}

async fn store_batch(direct: &PgEventStore, mut batch: Vec<Pending>) {
    // First try: when each append of the batch is to a stream of its own at a version known to
    // be free (see `known_versions`), the versions need no reading.
    let mut free = free_versions(direct, &batch);
    for _ in 0..BATCH_TRIES {
        let started = Instant::now();
        let accepted: Vec<Accepted> = match free.take() {
            Some(versions) => batch
                .drain(..)
                .zip(versions)
                .map(|(pending, first_version)| Accepted { pending, first_version })
                .collect(),
            None => match accept_current(direct, &mut batch).await {
                Some(accepted) => accepted,
                None => break,
            },
        };
        if accepted.is_empty() {
            return;
        }

        // One insert of every accepted event, in stream order (one global lock order).
        let mut rows: Vec<sql::BatchRow<'_>> = accepted
            .iter()
            .flat_map(|a| {
                let stream = &a.pending.request.streams[0];
                stream.events.iter().enumerate().map(move |(n, event)| sql::BatchRow {
                    stream_id: stream.stream_id.as_str(),
                    stream_version: a.first_version + n as u64,
                    event,
                })
            })
            .collect();
        rows.sort_by(|a, b| (a.stream_id, a.stream_version).cmp(&(b.stream_id, b.stream_version)));
        match direct.run(async |c| sql::insert_batch(c, &rows).await).await {
            Ok(stored) => {
                drop(rows);
                direct.wakeup.appended();
                metrics::histogram!("agora_append_duration_seconds").record(started.elapsed().as_secs_f64());
                let by_id: HashMap<Uuid, (i64, i64)> =
                    stored.into_iter().map(|row| (row.event_id, (row.transaction_id, row.position))).collect();
                for a in accepted {
                    let stream = &a.pending.request.streams[0];
                    let events = stream
                        .events
                        .iter()
                        .enumerate()
                        .map(|(n, event)| {
                            let (commit, prepare) = by_id.get(&event.event_id).copied().unwrap_or((0, 0));
                            AppendedEvent {
                                event_id: event.event_id,
                                stream_id: stream.stream_id.clone(),
                                stream_version: a.first_version + n as u64,
                                position: LogPosition::new(
                                    u64::try_from(commit).unwrap_or(0),
                                    u64::try_from(prepare).unwrap_or(0),
                                ),
                            }
                        })
                        .collect();
                    let appended = Appended { events, replayed: false };
                    direct.saw_appended(&appended);
                    let _ = a.pending.reply.send(Ok(appended));
                }
                return;
            }
            Err(error) => {
                drop(rows);
                batch = accepted.into_iter().map(|a| a.pending).collect();
                match classify(&error) {
                    // Another writer took a version first: read again and retry.
                    Kind::StreamRace | Kind::Transient => continue,
                    // A replayed event id, or anything else: one append at a time sorts it out.
                    _ => break,
                }
            }
        }
    }
    // Still racing (a hot stream) or failing: store each append on its own.
    for pending in batch {
        let direct = direct.clone();
        tokio::spawn(async move {
            let _ = pending.reply.send(direct.append(pending.request).await);
        });
    }
}

/// The error for an append whose writer is gone (the store is shutting down).
pub fn closed() -> StoreError {
    StoreError::Unavailable("the event store is shutting down".into())
}
