//! Read-your-writes: a request that sends the `Consistency-Token` of a command response
//! waits, bounded, until every read model it reads (and the search index, for product
//! searches) has applied the log up to that position; then it reads. Without a token,
//! nothing waits.
//!
//! Waiting is lazy and per source: a resolver asks for the source it is about to read
//! (`Consistency::ready`), so an operation waits exactly for what it reads, once per source.
//! One poller per process reads `projection.checkpoint` every few milliseconds, and only
//! while somebody waits; waiters share its answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use events::LogPosition;
use search::ProductIndex;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::error::Error;

/// How often the poller reads the checkpoints while requests wait.
const POLL_EVERY: Duration = Duration::from_millis(2);

/// What the query side reads: the read models of the projections (by their projection
/// names) and the search index of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Catalog,
    Accounts,
    Orders,
    Deliveries,
    Reviews,
    SearchIndex,
}

impl Source {
    /// The read-model projections, in `Positions` order.
    pub const PROJECTIONS: [Source; 5] =
        [Source::Catalog, Source::Accounts, Source::Orders, Source::Deliveries, Source::Reviews];

    pub const ALL: [Source; 6] =
        [Source::Catalog, Source::Accounts, Source::Orders, Source::Deliveries, Source::Reviews, Source::SearchIndex];

    /// The projection name (its row in `projection.checkpoint`), or `search_index`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Catalog => "catalog",
            Source::Accounts => "accounts",
            Source::Orders => "orders",
            Source::Deliveries => "deliveries",
            Source::Reviews => "reviews",
            Source::SearchIndex => "search_index",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// The live checkpoint of every read-model projection (`START` while it has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Positions([LogPosition; 5]);

impl Positions {
    pub fn get(&self, source: Source) -> Option<LogPosition> {
        self.0.get(source.slot()).copied()
    }
}

/// Read the live checkpoints of the read-model projections: one statement.
pub async fn read_positions(pool: &PgPool) -> Result<Positions, sqlx::Error> {
    let names: Vec<&str> = Source::PROJECTIONS.iter().map(|s| s.name()).collect();
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select projection, commit_position, prepare_position from projection.checkpoint \
          where live and kind = 'projection' and projection = any($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    let mut positions = Positions::default();
    for (name, commit, prepare) in rows {
        if let Some(source) = Source::PROJECTIONS.iter().find(|s| s.name() == name) {
            positions.0[source.slot()] =
                LogPosition::new(u64::try_from(commit).unwrap_or(0), u64::try_from(prepare).unwrap_or(0));
        }
    }
    Ok(positions)
}

/// The process-wide view of how far each source has got, shared by all requests.
#[derive(Clone)]
pub struct Checkpoints {
    shared: Arc<Shared>,
}

struct Shared {
    index: ProductIndex,
    positions: watch::Sender<Positions>,
    waiting: AtomicUsize,
    /// Wakes the poller when the first waiter arrives (and when this is dropped).
    wake: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl Checkpoints {
    /// Starts the poller task (it ends when the last clone of this is dropped).
    pub fn new(pool: PgPool, index: ProductIndex) -> Self {
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            index,
            positions: watch::channel(Positions::default()).0,
            waiting: AtomicUsize::new(0),
            wake: wake.clone(),
        });
        tokio::spawn(poll(Arc::downgrade(&shared), wake, pool));
        Self { shared }
    }

    /// Where `source` is now, as far as this process knows (the search index exactly; read
    /// models as of the last poll).
    pub fn position(&self, source: Source) -> LogPosition {
        match source {
            Source::SearchIndex => self.shared.index.checkpoint(),
            other => self.shared.positions.borrow().get(other).unwrap_or(LogPosition::START),
        }
    }

    fn reached(&self, source: Source, target: LogPosition) -> bool {
        self.position(source) >= target
    }

    /// Wait until `source` has passed `target`, at the latest until `deadline`.
    pub async fn wait(&self, source: Source, target: LogPosition, deadline: Instant) -> Result<(), Error> {
        // Positions only grow, so an old answer that is far enough is still right.
        if self.reached(source, target) {
            return Ok(());
        }
        let mut changes = self.shared.positions.subscribe();
        let _waiting = Waiting::register(&self.shared);
        let started = std::time::Instant::now();
        loop {
            if self.reached(source, target) {
                metrics::histogram!("agora_query_consistency_wait_seconds", "source" => source.name())
                    .record(started.elapsed().as_secs_f64());
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Internal("checkpoint poller stopped".into())),
                Err(_) => {
                    // One last look: the index moves without the poller.
                    if self.reached(source, target) {
                        return Ok(());
                    }
                    metrics::counter!("agora_query_stale_reads_total", "source" => source.name()).increment(1);
                    tracing::info!(source = source.name(), %target, at = %self.position(source), "stale read: read model did not catch up in time");
                    return Err(Error::StaleRead { read_model: source.name(), position: target });
                }
            }
        }
    }
}

/// Counts a waiter while it lives; the first one wakes the poller.
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn register(shared: &'a Shared) -> Self {
        if shared.waiting.fetch_add(1, Ordering::SeqCst) == 0 {
            shared.wake.notify_one();
        }
        Self(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn poll(shared: Weak<Shared>, wake: Arc<Notify>, pool: PgPool) {
    loop {
        // Sleep until someone waits (checked after arming the notification, so a waiter
        // that arrives in between is not missed).
        loop {
            let notified = wake.notified();
            match shared.upgrade() {
                None => return,
                Some(s) if s.waiting.load(Ordering::SeqCst) > 0 => break,
                Some(_) => {}
            }
            notified.await;
        }
        match read_positions(&pool).await {
            Ok(positions) => {
                let Some(s) = shared.upgrade() else { return };
                // Always notify: waiters on the search index re-check it on every tick.
                s.positions.send_replace(positions);
                drop(s);
                tokio::time::sleep(POLL_EVERY).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read projection checkpoints");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The read-your-writes state of one request.
pub struct Consistency {
    checkpoints: Checkpoints,
    /// The position the caller must see; `None`: never wait.
    token: Option<LogPosition>,
    deadline: Instant,
    /// Sources already known to be far enough, so each is waited for once per request.
    ready: Mutex<[bool; 6]>,
}

impl Consistency {
    pub fn new(checkpoints: Checkpoints, token: Option<LogPosition>, wait: Duration) -> Self {
        Self { checkpoints, token, deadline: Instant::now() + wait, ready: Mutex::new([false; 6]) }
    }

    pub fn token(&self) -> Option<LogPosition> {
        self.token
    }

    /// Call before reading `source`: returns at once without a token, else once the source
    /// has passed it, or `STALE_READ` at the deadline.
    pub async fn ready(&self, source: Source) -> Result<(), Error> {
        let Some(token) = self.token else { return Ok(()) };
        if self.ready.lock().map(|r| r[source.slot()]).unwrap_or(false) {
            return Ok(());
        }
        self.checkpoints.wait(source, token, self.deadline).await?;
        if let Ok(mut ready) = self.ready.lock() {
            ready[source.slot()] = true;
        }
        Ok(())
    }
}

/// Parse a `Consistency-Token` header value.
pub fn parse_token(value: &str) -> Result<LogPosition, Error> {
    value.parse::<LogPosition>().map_err(|e| Error::bad_input(format!("Consistency-Token: {e}")))
}
