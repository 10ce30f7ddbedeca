//! `ProductIndex`: the served product index, its generations on disk, and its checkpoint.
//!
//! On disk an index root holds one tantivy index per **generation** (`g000001`, `g000002`,
//! ...) and a `CURRENT` file naming the live one. A rebuild writes the next generation beside
//! the live one and switches by replacing `CURRENT` with a rename, so a reader sees either the
//! old or the new generation, never a mix. A running `ProductIndex` checks `CURRENT` at most
//! every [`REFRESH_EVERY`] (and on [`ProductIndex::reload`]) and reopens when it changed.
//!
//! The checkpoint (the log position of the last applied event) lives in each commit's
//! payload, so the documents and the checkpoint are written by the same atomic commit.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use events::LogPosition;
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocSet, Index, IndexReader, ReloadPolicy, Searcher, TERMINATED, TantivyDocument};
use uuid::Uuid;

use crate::error::SearchError;
use crate::schema::{self, Fields, ProductDoc};
use crate::{Result, search};

/// How often a serving index looks for a new commit of another process or a switched
/// generation. The indexer of the same process publishes its commits at once.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

const CURRENT: &str = "CURRENT";
/// Decompressed document-store blocks cached per segment.
const DOC_STORE_CACHE_BLOCKS: usize = 1_024;

/// What each commit records besides the documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommitPayload {
    pub schema: u32,
    /// The last event whose effect is in this commit.
    pub checkpoint: LogPosition,
    /// Events read from the log into this generation so far (relevant or not).
    pub events: u64,
}

impl CommitPayload {
    pub const EMPTY: CommitPayload =
        CommitPayload { schema: schema::SCHEMA_VERSION, checkpoint: LogPosition::START, events: 0 };

    fn parse(text: Option<&str>) -> std::result::Result<Self, String> {
        match text {
            // A tantivy index created but never committed by us: nothing applied yet.
            None => Ok(Self::EMPTY),
            Some(text) => serde_json::from_str(text).map_err(|e| format!("unreadable commit payload: {e}")),
        }
    }
}

/// One generation: a tantivy index and its reader.
pub(crate) struct Generation {
    pub id: u64,
    pub dir: Option<PathBuf>,
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
    /// Decoded facet values of the segments searched lately.
    pub facets: Arc<crate::search::FacetCache>,
    /// Prefix and typo expansions of words searched lately.
    pub expansions: crate::expand::ExpansionCache,
    /// The commit the reader currently shows: (tantivy opstamp, payload).
    published: Mutex<(u64, CommitPayload)>,
}

impl Generation {
    fn new(id: u64, dir: Option<PathBuf>, index: Index) -> Result<Self> {
        schema::register_analyzers(&index);
        let fields = Fields::new(&index.schema())?;
        let metas = index.load_metas()?;
        let payload = CommitPayload::parse(metas.payload.as_deref())
            .map_err(|reason| SearchError::Corrupt { path: dir.clone().unwrap_or_default(), reason })?;
        if payload.schema != schema::SCHEMA_VERSION {
            return Err(SearchError::Corrupt {
                path: dir.unwrap_or_default(),
                reason: format!(
                    "written with index schema v{}, this build reads v{}: rebuild the index",
                    payload.schema,
                    schema::SCHEMA_VERSION
                ),
            });
        }
        // Reloads are ours to make: after our own commits at once, others' on refresh.
        // Result pages load 20 stored documents each from anywhere in the store: keep many
        // decompressed 4 KiB blocks per segment (tantivy keeps 100), at most 4 MiB each.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(DOC_STORE_CACHE_BLOCKS)
            .try_into()?;
        Ok(Self {
            id,
            dir,
            index,
            reader,
            fields,
            facets: Arc::default(),
            expansions: Default::default(),
            published: Mutex::new((metas.opstamp, payload)),
        })
    }

    pub fn in_memory() -> Result<Self> {
        let index =
            Index::builder().schema(schema::build_schema()).settings(schema::index_settings()).create_in_ram()?;
        Self::new(0, None, index)
    }

    /// Create generation `id` under `root`, empty, with a first commit at `START`.
    pub fn create(root: &Path, id: u64) -> Result<Self> {
        let dir = generation_dir(root, id);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| SearchError::io(&dir, e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| SearchError::io(&dir, e))?;
        let index =
            Index::builder().schema(schema::build_schema()).settings(schema::index_settings()).create_in_dir(&dir)?;
        schema::register_analyzers(&index);
        {
            let mut writer =
                index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000).map_err(|e| lock_error(&dir, e))?;
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&payload_json(&CommitPayload::EMPTY));
            prepared.commit()?;
        }
        Self::new(id, Some(dir), index)
    }

    pub fn open(root: &Path, id: u64) -> Result<Self> {
        let dir = generation_dir(root, id);
        let directory =
            MmapDirectory::open(&dir).map_err(|e| SearchError::Corrupt { path: dir.clone(), reason: e.to_string() })?;
        let index = Index::open(directory)?;
        Self::new(id, Some(dir), index)
    }

    pub fn payload(&self) -> CommitPayload {
        self.published.lock().map(|p| p.1).unwrap_or(CommitPayload::EMPTY)
    }

    /// Make the latest commit on disk visible to searches. The payload is read before the
    /// reader reloads, so the published checkpoint is never ahead of what searches see.
    pub fn refresh(&self) -> Result<()> {
        let metas = self.index.load_metas()?;
        let unchanged = self.published.lock().map(|p| p.0 == metas.opstamp).unwrap_or(false);
        if unchanged {
            return Ok(());
        }
        let payload = CommitPayload::parse(metas.payload.as_deref())
            .map_err(|reason| SearchError::Corrupt { path: self.dir.clone().unwrap_or_default(), reason })?;
        self.reader.reload()?;
        if let Ok(mut published) = self.published.lock()
            && published.0 < metas.opstamp
        {
            *published = (metas.opstamp, payload);
        }
        Ok(())
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }
}

pub(crate) fn payload_json(payload: &CommitPayload) -> String {
    // A struct of plain values: serialising cannot fail.
    serde_json::to_string(payload).unwrap_or_default()
}

pub(crate) fn lock_error(dir: &Path, error: tantivy::TantivyError) -> SearchError {
    match error {
        tantivy::TantivyError::LockFailure(..) => SearchError::Locked(dir.to_owned()),
        other => other.into(),
    }
}

/// The stored state of one product in a searcher, if it is listed.
pub(crate) fn find_product(searcher: &Searcher, fields: &Fields, product_id: Uuid) -> Result<Option<ProductDoc>> {
    let term = fields.id_term(product_id);
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let inverted = segment.inverted_index(fields.product_id)?;
        let Some(mut postings) =
            inverted.read_postings(&term, IndexRecordOption::Basic).map_err(tantivy::TantivyError::from)?
        else {
            continue;
        };
        let mut doc = postings.doc();
        while doc != TERMINATED {
            if !segment.is_deleted(doc) {
                let stored: TantivyDocument = searcher.doc(tantivy::DocAddress::new(ord as u32, doc))?;
                return Ok(ProductDoc::from_document(&stored, fields));
            }
            doc = postings.advance();
        }
    }
    Ok(None)
}

pub(crate) fn generation_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("g{id:06}"))
}

fn parse_generation(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('g')?;
    if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None }
}

/// The live generation named by `CURRENT`, if any.
pub(crate) fn read_current(root: &Path) -> Result<Option<u64>> {
    let path = root.join(CURRENT);
    match fs::read_to_string(&path) {
        Ok(text) => parse_generation(text.trim())
            .map(Some)
            .ok_or_else(|| SearchError::Corrupt { path, reason: format!("CURRENT holds {:?}", text.trim()) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SearchError::io(path, e)),
    }
}

/// Point `CURRENT` at generation `id`: write a temporary file, flush it, rename it over
/// `CURRENT`, flush the directory. A crash leaves the old or the new name, never half of one.
pub(crate) fn write_current(root: &Path, id: u64) -> Result<()> {
    let tmp = root.join("CURRENT.tmp");
    let io = |path: &Path, e| SearchError::io(path, e);
    {
        use std::io::Write;
        let mut file = fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        file.write_all(format!("g{id:06}\n").as_bytes()).map_err(|e| io(&tmp, e))?;
        file.sync_all().map_err(|e| io(&tmp, e))?;
    }
    fs::rename(&tmp, root.join(CURRENT)).map_err(|e| io(root, e))?;
    fs::File::open(root).and_then(|dir| dir.sync_all()).map_err(|e| io(root, e))?;
    Ok(())
}

/// Every generation directory under `root`, ascending.
pub(crate) fn list_generations(root: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    let entries = fs::read_dir(root).map_err(|e| SearchError::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SearchError::io(root, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_generation) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Remove a generation directory; a failure is logged, not fatal (it is only disk space).
pub(crate) fn remove_generation(root: &Path, id: u64) {
    let dir = generation_dir(root, id);
    match fs::remove_dir_all(&dir) {
        Ok(()) => tracing::info!(generation = id, "removed old index generation"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(generation = id, error = %e, "cannot remove old index generation"),
    }
}

struct Shared {
    root: Option<PathBuf>,
    live: RwLock<Arc<Generation>>,
    refreshed_at: Mutex<Instant>,
    /// Two permits per core for searches on the blocking pool (see `search_async`).
    running: tokio::sync::Semaphore,
}

/// The product search index a process serves from: cheap to clone, shared by searches, the
/// indexer and the rebuild.
#[derive(Clone)]
pub struct ProductIndex {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProductIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductIndex").field("root", &self.shared.root).field("generation", &self.generation()).finish()
    }
}

impl ProductIndex {
    /// Open (or create) the index under `root`. Generations older than the live one are
    /// left-overs of an interrupted clean-up and are removed; newer ones may be a rebuild in
    /// progress and are left alone.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_owned();
        fs::create_dir_all(&root).map_err(|e| SearchError::io(&root, e))?;
        let generation = match read_current(&root)? {
            Some(id) => match Generation::open(&root, id) {
                Ok(generation) => generation,
                // Written by another schema version: the index is derived data, start over.
                Err(SearchError::Corrupt { reason, .. }) => {
                    let next = list_generations(&root)?.last().copied().unwrap_or(id) + 1;
                    tracing::warn!(generation = id, %reason, next, "index generation unusable, starting a fresh one");
                    let fresh = Generation::create(&root, next)?;
                    write_current(&root, next)?;
                    fresh
                }
                Err(other) => return Err(other),
            },
            None => {
                let id = list_generations(&root)?.last().copied().unwrap_or(0) + 1;
                let fresh = Generation::create(&root, id)?;
                write_current(&root, id)?;
                fresh
            }
        };
        for old in list_generations(&root)?.into_iter().filter(|&g| g < generation.id) {
            remove_generation(&root, old);
        }
        Ok(Self::from_generation(Some(root), generation))
    }

    /// An index in memory, for tests and throwaway use. It has one generation and cannot be
    /// rebuilt in place.
    pub fn in_memory() -> Result<Self> {
        Ok(Self::from_generation(None, Generation::in_memory()?))
    }

    fn from_generation(root: Option<PathBuf>, generation: Generation) -> Self {
        Self {
            shared: Arc::new(Shared {
                root,
                live: RwLock::new(Arc::new(generation)),
                refreshed_at: Mutex::new(Instant::now()),
                running: tokio::sync::Semaphore::new(
                    2 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
                ),
            }),
        }
    }

    /// The directory holding the generations; `None` in memory.
    pub fn root(&self) -> Option<&Path> {
        self.shared.root.as_deref()
    }

    /// The number of the live generation (0 in memory).
    pub fn generation(&self) -> u64 {
        self.live().id
    }

    pub(crate) fn live(&self) -> Arc<Generation> {
        match self.shared.live.read() {
            Ok(live) => live.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The log position of the last event whose effect searches can see.
    pub fn checkpoint(&self) -> LogPosition {
        self.live().payload().checkpoint
    }

    /// Products searches can see now.
    pub fn num_products(&self) -> u64 {
        self.live().searcher().num_docs()
    }

    /// Pick up, now, a switched generation and the latest commit on disk.
    pub fn reload(&self) -> Result<()> {
        if let Some(root) = &self.shared.root
            && let Some(id) = read_current(root)?
            && id != self.generation()
        {
            let generation = Arc::new(Generation::open(root, id)?);
            tracing::info!(generation = id, "switched to new index generation");
            match self.shared.live.write() {
                Ok(mut live) => *live = generation,
                Err(poisoned) => *poisoned.into_inner() = generation,
            }
        }
        self.live().refresh()
    }

    /// `reload` at most every `REFRESH_EVERY`; failures are logged and searches go on with
    /// what they have.
    pub(crate) fn refresh_if_due(&self) {
        let due = match self.shared.refreshed_at.try_lock() {
            Ok(mut at) if at.elapsed() >= REFRESH_EVERY => {
                *at = Instant::now();
                true
            }
            _ => false,
        };
        if due && let Err(error) = self.reload() {
            tracing::warn!(%error, "cannot refresh product index");
        }
    }

    /// Search; see [`ProductQuery`](crate::ProductQuery). CPU-bound: from async code use
    /// [`search_async`](Self::search_async).
    pub fn search(&self, query: &crate::ProductQuery) -> Result<search::SearchResult> {
        self.refresh_if_due();
        let started = Instant::now();
        let result = search::execute(&self.live(), query);
        metrics::histogram!("agora_search_query_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("agora_search_queries_total", "outcome" => if result.is_ok() { "ok" } else { "error" })
            .increment(1);
        result
    }

    /// [`search`](Self::search) on tokio's blocking pool, at most two searches per core at a
    /// time, in arrival order. Searches are CPU work: with a thread for each of 64 concurrent
    /// ones they shared the cores, so a costly search took as long as all the others
    /// together. One per core left cores idle (measured: 15 % fewer searches per second),
    /// two per core keeps them busy and the 99th percentile close to the median.
    pub async fn search_async(&self, query: crate::ProductQuery) -> Result<search::SearchResult> {
        let _permit =
            self.shared.running.acquire().await.map_err(|_| SearchError::Task("the search queue is closed".into()))?;
        let index = self.clone();
        tokio::task::spawn_blocking(move || index.search(&query)).await?
    }

    /// One listed product by id, as searches would show it.
    pub fn product(&self, product_id: Uuid) -> Result<Option<search::ProductHit>> {
        self.refresh_if_due();
        let live = self.live();
        let found = find_product(&live.searcher(), &live.fields, product_id)?;
        Ok(found.map(search::ProductHit::from_doc))
    }
}
