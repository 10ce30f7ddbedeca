//! The indexer: a projection of `product.*` and `review.approved` events into the index.
//!
//! Updates carry only what changed, so the indexer reads the product's current document
//! (from the batch not yet committed, else from the index itself), changes it and replaces it
//! (delete by id term + add). Commits are batched; each carries the position of the last
//! applied event in its payload, so the documents and the checkpoint change together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::domain::catalog::ProductEvent;
use events::domain::reviews::ReviewEvent;
use events::{LogPosition, RecordedEvent};
use tantivy::indexer::{IndexWriterOptions, LogMergePolicy};
use tantivy::{IndexWriter, TantivyDocument};
use uuid::Uuid;

use crate::Result;
use crate::index::{CommitPayload, Generation, find_product, lock_error, payload_json};
use crate::schema::{ProductDoc, SCHEMA_VERSION};

/// When the indexer commits, and how much it may hold in memory.
#[derive(Debug, Clone)]
pub struct CommitPolicy {
    /// Commit once this many events are applied but not committed.
    pub max_events: usize,
    /// Commit this long after the first uncommitted event once the log is quiet: the
    /// delay before a change becomes searchable.
    pub idle_delay: Duration,
    /// Commit at the latest this long after the first uncommitted event, quiet or not.
    pub max_delay: Duration,
    /// Indexing threads of the writer.
    pub threads: usize,
    /// Memory for the writer's buffers, in bytes, over all threads.
    pub memory_budget: usize,
}

impl CommitPolicy {
    /// For the live indexer of a serving process: changes searchable within ~0.25 s.
    pub fn live() -> Self {
        Self {
            max_events: 100_000,
            idle_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
            threads: 1,
            memory_budget: 128 << 20,
        }
    }

    /// For building a generation from the log: few, large commits (each one still a point a
    /// re-run resumes from).
    pub fn bulk() -> Self {
        Self {
            max_events: 500_000,
            idle_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(30),
            threads: 2,
            memory_budget: 768 << 20,
        }
    }
}

/// Applies events to one generation of the index. Blocking: run it on a blocking thread.
pub struct Indexer {
    generation: Arc<Generation>,
    writer: IndexWriter,
    policy: CommitPolicy,
    /// Products changed since the last commit: their latest state (`None` = delisted).
    pending: HashMap<Uuid, Option<ProductDoc>>,
    pending_events: usize,
    first_pending_at: Option<Instant>,
    /// The last event applied (committed or not) and the events read so far.
    applied: LogPosition,
    events: u64,
    committed: CommitPayload,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("generation", &self.generation.id)
            .field("applied", &self.applied)
            .field("committed", &self.committed.checkpoint)
            .finish()
    }
}

impl Indexer {
    /// An indexer on the live generation of `index`. Fails with `SearchError::Locked` while
    /// another writer (an indexer or a rebuild) holds that generation.
    pub fn open(index: &crate::ProductIndex, policy: CommitPolicy) -> Result<Self> {
        Self::on_generation(index.live(), policy)
    }

    pub(crate) fn on_generation(generation: Arc<Generation>, policy: CommitPolicy) -> Result<Self> {
        // What the last commit on disk says, not what a reader last published.
        generation.refresh()?;
        let committed = generation.payload();
        let options = IndexWriterOptions::builder()
            .num_worker_threads(policy.threads.max(1))
            .memory_budget_per_thread((policy.memory_budget / policy.threads.max(1)).max(15_000_000))
            .num_merge_threads(1)
            .build();
        let writer = generation
            .index
            .writer_with_options::<TantivyDocument>(options)
            .map_err(|e| lock_error(generation.dir.as_deref().unwrap_or(std::path::Path::new("memory")), e))?;
        writer.set_merge_policy(Box::new(LogMergePolicy::default()));
        Ok(Self {
            generation,
            writer,
            policy,
            pending: HashMap::new(),
            pending_events: 0,
            first_pending_at: None,
            applied: committed.checkpoint,
            events: committed.events,
            committed,
        })
    }

    pub(crate) fn generation_id(&self) -> u64 {
        self.generation.id
    }

    /// The last event applied, committed or not: where reading the log goes on from.
    pub fn position(&self) -> LogPosition {
        self.applied
    }

    /// The position of the last commit.
    pub fn checkpoint(&self) -> LogPosition {
        self.committed.checkpoint
    }

    /// Events read from the log into this generation (relevant or not).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Apply one event. Events at or before the position already applied are skipped (a
    /// subscription resumed from an older point), as are other families, cheaply, by their
    /// type name. An event that cannot be decoded is logged and skipped: the index is derived
    /// data, and a rebuild skips it the same way.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<()> {
        if event.position <= self.applied {
            return Ok(());
        }
        self.applied = event.position;
        self.events += 1;
        self.pending_events += 1;
        self.first_pending_at.get_or_insert_with(Instant::now);
        let Some((family, _)) = event.event_type.split_once('.') else { return Ok(()) };
        match family {
            "product" => match event.decode::<ProductEvent>() {
                Ok(product_event) => self.apply_product(event, product_event),
                Err(error) => {
                    skipped(&error);
                    Ok(())
                }
            },
            // Moderation is final and only approvals count: skip the rest before decoding.
            "review" if event.event_type == "review.approved" => match event.decode::<ReviewEvent>() {
                Ok(ReviewEvent::Approved(approved)) => self.update(approved.product_id, |doc| {
                    doc.rating_sum += u64::from(approved.rating);
                    doc.rating_count += 1;
                }),
                Ok(_) => Ok(()),
                Err(error) => {
                    skipped(&error);
                    Ok(())
                }
            },
            _ => Ok(()),
        }
    }

    fn apply_product(&mut self, event: &RecordedEvent, product_event: ProductEvent) -> Result<()> {
        if let ProductEvent::Listed(listed) = product_event {
            let doc = ProductDoc {
                product_id: listed.product_id,
                vendor_id: listed.vendor_id,
                title: listed.title,
                description: listed.description,
                category: listed.category,
                brand: listed.brand,
                price_cents: listed.price_cents,
                currency: listed.currency,
                stock: listed.stock,
                rating_sum: 0,
                rating_count: 0,
                created_at: event.recorded_at,
            };
            return self.replace(doc);
        }
        // The other product events name their product through the stream only.
        let Some(product_id) = event.stream_id.uuid() else {
            tracing::warn!(stream = %event.stream_id, "product event outside a product stream, skipped");
            return Ok(());
        };
        match product_event {
            ProductEvent::Listed(_) => Ok(()),
            ProductEvent::DetailsChanged(details) => self.update(product_id, |doc| {
                doc.title = details.title;
                doc.description = details.description;
                doc.category = details.category;
                doc.brand = details.brand;
            }),
            ProductEvent::PriceChanged(price) => self.update(product_id, |doc| {
                doc.price_cents = price.price_cents;
                doc.currency = price.currency;
            }),
            ProductEvent::StockAdjusted(stock) => self.update(product_id, |doc| doc.stock = stock.stock),
            ProductEvent::StockReserved(stock) => self.update(product_id, |doc| doc.stock = stock.stock),
            ProductEvent::StockReleased(stock) => self.update(product_id, |doc| doc.stock = stock.stock),
            ProductEvent::StockHeld(stock) => self.update(product_id, |doc| doc.stock = stock.stock),
            ProductEvent::HoldReleased(stock) => self.update(product_id, |doc| doc.stock = stock.stock),
            ProductEvent::Delisted(_) => {
                self.writer.delete_term(self.generation.fields.id_term(product_id));
                self.pending.insert(product_id, None);
                Ok(())
            }
        }
    }

    /// Change a listed product's document; a product that is not listed (delisted, or never
    /// seen) is left alone.
    fn update(&mut self, product_id: Uuid, change: impl FnOnce(&mut ProductDoc)) -> Result<()> {
        let current = match self.pending.get(&product_id) {
            Some(state) => state.clone(),
            None => find_product(&self.generation.searcher(), &self.generation.fields, product_id)?,
        };
        match current {
            Some(mut doc) => {
                change(&mut doc);
                self.replace(doc)
            }
            None => Ok(()),
        }
    }

    fn replace(&mut self, doc: ProductDoc) -> Result<()> {
        let fields = &self.generation.fields;
        self.writer.delete_term(fields.id_term(doc.product_id));
        self.writer.add_document(doc.to_document(fields))?;
        self.pending.insert(doc.product_id, Some(doc));
        Ok(())
    }

    /// Whether the policy says to commit now; `quiet` = no more events are waiting.
    pub fn commit_due(&self, quiet: bool) -> bool {
        let Some(first) = self.first_pending_at else { return false };
        let age = first.elapsed();
        self.pending_events >= self.policy.max_events
            || age >= self.policy.max_delay
            || (quiet && age >= self.policy.idle_delay)
    }

    pub fn has_pending(&self) -> bool {
        self.pending_events > 0
    }

    /// Commit everything applied, with its position, and make it searchable.
    pub fn commit(&mut self) -> Result<LogPosition> {
        if !self.has_pending() {
            return Ok(self.committed.checkpoint);
        }
        let started = Instant::now();
        let payload = CommitPayload { schema: SCHEMA_VERSION, checkpoint: self.applied, events: self.events };
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload_json(&payload));
        prepared.commit()?;
        self.committed = payload;
        // Searches (and this indexer's look-ups) see the commit before the batch is forgotten.
        self.generation.refresh()?;
        self.pending.clear();
        self.first_pending_at = None;
        let events = std::mem::take(&mut self.pending_events);
        metrics::counter!("agora_search_index_commits_total").increment(1);
        metrics::counter!("agora_search_index_events_total").increment(events as u64);
        metrics::histogram!("agora_search_index_commit_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(checkpoint = %payload.checkpoint, events, "product index committed");
        Ok(payload.checkpoint)
    }

    /// Commit, then wait for background merges to finish and release the writer.
    pub(crate) fn finish(mut self) -> Result<CommitPayload> {
        self.commit()?;
        let payload = self.committed;
        self.writer.wait_merging_threads()?;
        Ok(payload)
    }
}

fn skipped(error: &events::DecodeError) {
    metrics::counter!("agora_search_index_skipped_events_total").increment(1);
    tracing::error!(%error, "undecodable event skipped by the product indexer");
}
