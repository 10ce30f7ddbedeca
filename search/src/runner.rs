//! The live indexer: follows the log from the index checkpoint and keeps the index current.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use events::{EventStore, RecordedEvent};
use futures_util::{FutureExt, StreamExt};

use crate::Result;
use crate::error::SearchError;
use crate::index::ProductIndex;
use crate::indexer::{CommitPolicy, Indexer};

/// Events handed to one blocking step at most.
const CHUNK: usize = 2_000;
/// How often an idle runner looks for a switched generation and a due commit.
const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Keep `index` current with the log until `shutdown` completes, with the live commit policy.
pub async fn run(
    store: Arc<dyn EventStore>,
    index: ProductIndex,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    run_with(store, index, CommitPolicy::live(), shutdown).await
}

/// [`run`] with a chosen commit policy.
///
/// Subscribes from the index checkpoint; applies events in chunks on the blocking pool;
/// commits by the policy; follows a generation switch made by a rebuild (drops its writer,
/// opens the new generation, resubscribes from its checkpoint). Failures of the store or
/// the index are retried with back-off from the last commit, so the runner only returns on
/// shutdown (after committing what it applied).
#[tracing::instrument(name = "product_indexer", skip_all, fields(generation = index.generation()))]
pub async fn run_with(
    store: Arc<dyn EventStore>,
    index: ProductIndex,
    policy: CommitPolicy,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow(&store, &index, &policy, shutdown.as_mut()).await {
            Ok(Stop::Shutdown) => return Ok(()),
            Ok(Stop::GenerationSwitched) => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Err(error) => {
                metrics::counter!("agora_search_indexer_errors_total").increment(1);
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "product indexer failed, resuming from its last commit");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

enum Stop {
    Shutdown,
    GenerationSwitched,
}

/// One life of an indexer: open it on the live generation, follow the log until shutdown, a
/// generation switch or an error.
async fn follow(
    store: &Arc<dyn EventStore>,
    index: &ProductIndex,
    policy: &CommitPolicy,
    mut shutdown: std::pin::Pin<&mut futures_util::future::Fuse<impl Future<Output = ()> + Send>>,
) -> Result<Stop> {
    let opened = {
        let (index, policy) = (index.clone(), policy.clone());
        tokio::task::spawn_blocking(move || {
            // Start from the generation `CURRENT` names now, not the one last seen.
            index.reload()?;
            Indexer::open(&index, policy)
        })
        .await??
    };
    let mut indexer = Some(opened);
    let from = indexer.as_ref().map(|i| i.position()).unwrap_or_default();
    tracing::info!(from = %from, generation = index.generation(), "product indexer following the log");
    let mut events = store.subscribe_all(from);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut chunk: Vec<RecordedEvent> = Vec::new();
        tokio::select! {
            _ = &mut shutdown => {
                let mut indexer = indexer.take().ok_or_else(lost)?;
                tokio::task::spawn_blocking(move || indexer.commit()).await??;
                return Ok(Stop::Shutdown);
            }
            next = events.next() => match next {
                Some(event) => chunk.push(event?),
                None => return Err(SearchError::Task("event subscription ended".into())),
            },
            _ = tick.tick() => {}
        }
        // Take what is already waiting, without waiting for more.
        while chunk.len() < CHUNK {
            match events.next().now_or_never() {
                Some(Some(event)) => chunk.push(event?),
                Some(None) => return Err(SearchError::Task("event subscription ended".into())),
                None => break,
            }
        }
        let quiet = chunk.len() < CHUNK;
        let mut current = indexer.take().ok_or_else(lost)?;
        let (current, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = apply_chunk(&mut current, &chunk, quiet);
            (current, outcome)
        })
        .await?;
        outcome?;
        indexer = Some(current);

        // A rebuild elsewhere may have switched generations: this writer's work is obsolete.
        let writer_generation = indexer.as_ref().map(|i| i.generation_id());
        let index_for_reload = index.clone();
        tokio::task::spawn_blocking(move || index_for_reload.refresh_if_due()).await?;
        if writer_generation != Some(index.generation()) {
            tracing::info!(generation = index.generation(), "index generation switched, following the new one");
            return Ok(Stop::GenerationSwitched);
        }
    }
}

fn apply_chunk(indexer: &mut Indexer, chunk: &[RecordedEvent], quiet: bool) -> Result<()> {
    for event in chunk {
        indexer.apply(event)?;
    }
    if indexer.commit_due(quiet) {
        indexer.commit()?;
    }
    Ok(())
}

fn lost() -> SearchError {
    SearchError::Task("indexer lost by a failed blocking step".into())
}
