//! The event feed of a projector: the store's live subscription, read ahead by a task
//! into a bounded channel, handed out in batches.

use std::sync::Arc;
use std::time::Duration;

use events::{EventStore, LogPosition, RecordedEvent, StoreError};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, Result};

pub(crate) struct Feed {
    rx: mpsc::Receiver<std::result::Result<RecordedEvent, StoreError>>,
    task: JoinHandle<()>,
    /// An error that arrived while a batch was being filled: returned by the next call.
    pending_error: Option<StoreError>,
}

impl Feed {
    /// Every event after `after`, in the store's commit-safe order (`subscribe_all`).
    pub fn start(store: &Arc<dyn EventStore>, after: LogPosition, capacity: usize) -> Self {
        let mut events = store.subscribe_all(after);
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let failed = event.is_err();
                if tx.send(event).await.is_err() || failed {
                    break;
                }
            }
        });
        Self { rx, task, pending_error: None }
    }

    /// Events read ahead and not yet handed out.
    pub fn ready(&self) -> usize {
        self.rx.len()
    }

    /// Up to `max` events. Waits at most `wait` for the first (an empty batch when none
    /// came), then takes what is ready; with `linger`, waits that much longer for more
    /// while the batch is not full (catch-up: fewer, larger transactions).
    pub async fn next_batch(&mut self, max: usize, wait: Duration, linger: Duration) -> Result<Vec<RecordedEvent>> {
        if let Some(error) = self.pending_error.take() {
            return Err(error.into());
        }
        let first = match tokio::time::timeout(wait, self.rx.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => return Err(ended()),
            Ok(Some(event)) => event?,
        };
        let mut batch = Vec::with_capacity(max.min(self.rx.len() + 1));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(Ok(event)) => batch.push(event),
                Ok(Err(error)) => {
                    self.pending_error = Some(error);
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) if !linger.is_zero() => {
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(Ok(event))) => batch.push(event),
                        Ok(Some(Err(error))) => {
                            self.pending_error = Some(error);
                            break;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                Err(_) => break,
            }
        }
        Ok(batch)
    }
}

fn ended() -> Error {
    Error::Store(StoreError::Unavailable("the event subscription ended".into()))
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}
