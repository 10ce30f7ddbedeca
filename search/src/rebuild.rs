//! Rebuild: build the next index generation from the whole log beside the live one, then
//! switch `CURRENT` to it.
//!
//! The live generation keeps serving (and its indexer keeps indexing) until the switch. An
//! interrupted rebuild leaves the live generation untouched and its own generation on disk,
//! committed up to some position: the next rebuild resumes it from that commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{EventStore, LogPosition, RecordedEvent};
use tokio::sync::mpsc;

use crate::Result;
use crate::error::SearchError;
use crate::index::{self, Generation};
use crate::indexer::{CommitPolicy, Indexer};

/// Events read from the log per page.
const PAGE_SIZE: usize = 5_000;
/// Pages read ahead while earlier ones are indexed.
const READ_AHEAD: usize = 4;

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// The generation now live.
    pub generation: u64,
    /// The generation it replaced, if there was one.
    pub replaced: Option<u64>,
    /// Where an interrupted earlier run had got to, if this run resumed it.
    pub resumed_from: Option<LogPosition>,
    /// Events read from the log into the new generation (including a resumed run's).
    pub events: u64,
    /// Products in the new generation.
    pub products: u64,
    /// The new generation's checkpoint.
    pub checkpoint: LogPosition,
    pub elapsed: Duration,
}

/// Tuning of a rebuild.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    pub commit: CommitPolicy,
    pub page_size: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self { commit: CommitPolicy::bulk(), page_size: PAGE_SIZE }
    }
}

/// Rebuild the index under `root` from the log; `progress(events_done, events_total)` is
/// called after every page (`events_total` is an estimate from the log head while the build
/// runs, exact in the last call).
pub async fn rebuild(
    store: Arc<dyn EventStore>,
    root: impl AsRef<Path>,
    progress: impl FnMut(u64, u64) + Send,
) -> Result<RebuildReport> {
    rebuild_with(store, root, RebuildOptions::default(), progress).await
}

/// [`rebuild`] with chosen options.
#[tracing::instrument(name = "product_index_rebuild", skip_all, fields(root = %root.as_ref().display()))]
pub async fn rebuild_with(
    store: Arc<dyn EventStore>,
    root: impl AsRef<Path>,
    options: RebuildOptions,
    mut progress: impl FnMut(u64, u64) + Send,
) -> Result<RebuildReport> {
    let started = Instant::now();
    let root = root.as_ref().to_owned();
    let prepared_root = root.clone();
    let (generation, replaced) = tokio::task::spawn_blocking(move || prepare(&prepared_root)).await??;
    let generation = Arc::new(generation);
    let policy = options.commit.clone();
    let opened = generation.clone();
    let mut indexer = tokio::task::spawn_blocking(move || Indexer::on_generation(opened, policy)).await??;
    let resumed_from = Some(indexer.checkpoint()).filter(|p| !p.is_start());
    tracing::info!(generation = generation.id, resumed_from = ?resumed_from, "rebuilding product index");

    // The log head's sequence number estimates how many events there are (on PostgreSQL it
    // is the event's position); the estimate only feeds the progress callback.
    let estimate = store.head().await?.prepare();
    let (pages, mut incoming) = mpsc::channel::<Result<Vec<RecordedEvent>>>(READ_AHEAD);
    let reader = tokio::spawn(read_pages(store.clone(), indexer.position(), options.page_size.max(1), pages));
    let _stop_reader = AbortOnDrop(reader.abort_handle());
    progress(indexer.events(), estimate.max(indexer.events()));
    while let Some(page) = incoming.recv().await {
        let page = page?;
        indexer = tokio::task::spawn_blocking(move || -> Result<Indexer> {
            for event in &page {
                indexer.apply(event)?;
            }
            if indexer.commit_due(false) {
                indexer.commit()?;
            }
            Ok(indexer)
        })
        .await??;
        progress(indexer.events(), estimate.max(indexer.events()));
    }

    let events = indexer.events();
    let applied_after = started.elapsed();
    let finished = tokio::task::spawn_blocking(move || indexer.finish()).await??;
    tracing::info!(
        events,
        applying_seconds = applied_after.as_secs_f64(),
        finishing_seconds = (started.elapsed() - applied_after).as_secs_f64(),
        "product index generation built"
    );
    let switch_root = root.clone();
    let id = generation.id;
    tokio::task::spawn_blocking(move || -> Result<()> {
        index::write_current(&switch_root, id)?;
        for old in index::list_generations(&switch_root)?.into_iter().filter(|&g| g < id) {
            index::remove_generation(&switch_root, old);
        }
        Ok(())
    })
    .await??;
    generation.refresh()?;
    let products = generation.searcher().num_docs();
    progress(events, events);
    let report = RebuildReport {
        generation: id,
        replaced,
        resumed_from,
        events,
        products,
        checkpoint: finished.checkpoint,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        generation = id,
        events,
        products,
        seconds = report.elapsed.as_secs_f64(),
        "product index rebuilt and switched"
    );
    Ok(report)
}

/// Pick the generation to build: resume the newest one above the live one if it opens, else
/// start the next number. Other generations above the live one are left-overs: removed.
fn prepare(root: &Path) -> Result<(Generation, Option<u64>)> {
    std::fs::create_dir_all(root).map_err(|e| SearchError::io(root, e))?;
    let live = index::read_current(root)?;
    let all = index::list_generations(root)?;
    let mut chosen = None;
    for &id in all.iter().rev().filter(|&&id| live.is_none_or(|live| id > live)) {
        if chosen.is_none() {
            match Generation::open(root, id) {
                Ok(generation) => {
                    chosen = Some(generation);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(generation = id, %error, "unfinished generation unusable, starting afresh")
                }
            }
        }
        index::remove_generation(root, id);
    }
    let generation = match chosen {
        Some(generation) => generation,
        None => {
            let next = all.last().copied().unwrap_or(0) + 1;
            Generation::create(root, next)?
        }
    };
    Ok((generation, live))
}

async fn read_pages(
    store: Arc<dyn EventStore>,
    mut after: LogPosition,
    page_size: usize,
    pages: mpsc::Sender<Result<Vec<RecordedEvent>>>,
) {
    loop {
        match store.read_all(after, page_size).await {
            Ok(page) if page.is_empty() => return,
            Ok(page) => {
                after = page.last().map_or(after, |e| e.position);
                if pages.send(Ok(page)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = pages.send(Err(error.into())).await;
                return;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The directory of generation `id` under `root` (for tools and tests).
pub fn generation_dir(root: &Path, id: u64) -> PathBuf {
    index::generation_dir(root, id)
}
