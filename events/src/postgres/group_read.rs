//! Group reads: concurrent stream reads share one statement.
//!
//! Commands load the streams they decide on, and under load many commands load at the same
//! moment (most loads are a catch-up from a cached state that finds nothing new). A reader
//! task takes every read waiting (never waiting for more) and answers them with one query,
//! so N concurrent loads cost one round trip and one statement instead of N. Alone, a read
//! goes straight to the database as before. Each read still sees the stream as of its
//! statement's snapshot, the same guarantee a read of its own gives.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use super::{PgEventStore, sql};
use crate::envelope::{RecordedEvent, StreamId};
use crate::store::Result;

pub struct PendingRead {
    pub stream: StreamId,
    pub from_version: u64,
    pub reply: oneshot::Sender<Result<Vec<RecordedEvent>>>,
}

/// Start `readers` reader tasks over `direct` (a store handle that reads directly).
pub fn start(direct: PgEventStore, readers: usize, max_batch: usize) -> mpsc::Sender<PendingRead> {
    super::batching::start(readers, max_batch, move |batch: Vec<PendingRead>| {
        let direct = direct.clone();
        async move {
            metrics::histogram!("agora_read_batch_size").record(batch.len() as f64);
            read_batch(&direct, batch).await;
        }
    })
}

async fn read_batch(direct: &PgEventStore, batch: Vec<PendingRead>) {
    if let [single] = batch.as_slice() {
        let result = direct.read_stream_direct(&single.stream, single.from_version).await;
        if let Some(PendingRead { reply, .. }) = batch.into_iter().next() {
            let _ = reply.send(result);
        }
        return;
    }
    let names: Vec<&str> = batch.iter().map(|r| r.stream.as_str()).collect();
    let from: Vec<i64> = batch.iter().map(|r| i64::try_from(r.from_version).unwrap_or(i64::MAX)).collect();
    let rows = direct.run(async |c| sql::read_streams_from(c, &names, &from).await).await;
    drop(names);
    match rows {
        Ok(rows) => {
            let mut by_read: HashMap<usize, Vec<RecordedEvent>> = HashMap::with_capacity(batch.len());
            for (read, event) in rows {
                by_read.entry(read).or_default().push(event);
            }
            for (i, read) in batch.into_iter().enumerate() {
                let _ = read.reply.send(Ok(by_read.remove(&(i + 1)).unwrap_or_default()));
            }
        }
        Err(error) => {
            // Each read on its own then, so each gets its own error (or its events).
            tracing::debug!(%error, "grouped read failed; reading one by one");
            for read in batch {
                let direct = direct.clone();
                tokio::spawn(async move {
                    let _ = read.reply.send(direct.read_stream_direct(&read.stream, read.from_version).await);
                });
            }
        }
    }
}
