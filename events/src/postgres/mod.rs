//! The PostgreSQL event store.
//!
//! - An append is one call of the `event_store.append` function: one round trip, one
//!   transaction, any number of streams (atomic multi-stream append).
//! - Optimistic concurrency comes from the database: the function checks each stream's
//!   current version, and the unique `(stream_id, stream_version)` index settles races.
//! - The global log is read in `(transaction_id, position)` order, only up to the oldest
//!   running transaction, so an event that commits late is never skipped (invariant 4).

mod batching;
mod connections;
mod errors;
mod group_commit;
mod group_read;
mod known_versions;
mod sql;
mod wakeup;

pub use connections::{ConnectionPool, Lease, PoolUsage};

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use tokio::sync::watch;
use uuid::Uuid;

use crate::envelope::{RecordedEvent, StreamId};
use crate::position::LogPosition;
use crate::store::{
    AppendRequest, Appended, AppendedEvent, Capabilities, EventStore, EventStream, ExpectedVersion, Result, StoreError,
    StoredResponse, SubscriptionOptions,
};
use errors::{Failure, Kind, classify};
use known_versions::KnownVersions;
use wakeup::Wakeup;

/// The migrations of the event store schema (`event_store`).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    // Each crate keeps its own migration history, so their version numbers never collide.
    migrator.dangerous_set_table_name("event_store_migrations");
    migrator
}

/// Apply the event store migrations.
pub async fn migrate(pool: &PgPool) -> std::result::Result<(), sqlx::migrate::MigrateError> {
    migrator().run(pool).await
}

/// Options of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    pub subscription: SubscriptionOptions,
    /// Report the atomic multi-stream append capability. Switched off only to exercise the
    /// reserve / compensate checkout path that stores without it (KurrentDB) take.
    pub atomic_multi_stream: bool,
    /// Retries of an append that lost a race on a stream appended with `ExpectedVersion::Any`.
    pub any_version_retries: u32,
    /// Writer tasks that group concurrent single-stream appends into shared transactions
    /// (see `group_commit`); 0 appends each in its own transaction.
    pub group_commit_writers: usize,
    /// Most appends in one group-committed transaction.
    pub group_commit_max: usize,
    /// Reader tasks that answer concurrent stream reads with one statement (see
    /// `group_read`); 0 reads each on its own.
    pub group_read_readers: usize,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            subscription: SubscriptionOptions::default(),
            atomic_multi_stream: true,
            any_version_retries: 10,
            group_commit_writers: 4,
            group_commit_max: 64,
            group_read_readers: 2,
        }
    }
}

/// Connection pool settings for a process that appends and reads.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Fail fast when the database is down: callers get a retryable error, not a hang.
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection it hands out by default: a whole extra round trip per
        // query. A dead connection fails its query instead (a retryable `Unavailable`).
        .test_before_acquire(false)
}

/// Connect options for a URL, named `agora` in `pg_stat_activity`.
pub fn connect_options(url: &str) -> std::result::Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?.application_name("agora"))
}

#[derive(Clone)]
pub struct PgEventStore {
    /// For LISTEN/NOTIFY and callers that want a `PgPool`.
    pool: PgPool,
    /// For appends and reads: no ping per query.
    connections: ConnectionPool,
    options: Arc<PgStoreOptions>,
    wakeup: Arc<Wakeup>,
    /// Queue of the group-commit writers; `None` in the writers' own handle.
    group: Option<tokio::sync::mpsc::Sender<group_commit::Pending>>,
    /// Appends under way in this process: alone, an append skips the group-commit queue.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Queue of the group readers; `None` in the readers' own handle.
    reads: Option<tokio::sync::mpsc::Sender<group_read::PendingRead>>,
    /// Stream reads under way in this process: alone, a read skips the queue.
    reads_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Stream versions seen committed: appends expecting one of them skip the version lookup.
    known: Arc<KnownVersions>,
}

/// Streams whose latest seen version a store remembers.
const KNOWN_STREAMS: usize = 100_000;

/// Counts an append as under way while it lives.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    /// Count one more; whether others were already under way.
    fn enter(counter: &Arc<std::sync::atomic::AtomicUsize>) -> (InFlight, bool) {
        let others = counter.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        (InFlight(counter.clone()), others > 0)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl PgEventStore {
    /// A store over an existing pool (migrations must have run). Spawns the wake-up task:
    /// call inside a tokio runtime.
    pub fn new(pool: PgPool, options: PgStoreOptions) -> Self {
        let wakeup = Wakeup::new(pool.clone());
        // Generic plans for the store's statements: each is a lookup by key, whatever the
        // values. With array parameters PostgreSQL otherwise keeps planning every execution
        // anew (a custom plan looks cheaper than the generic one), which cost more than the
        // execution itself.
        let connect = (*pool.connect_options()).clone().options([("plan_cache_mode", "force_generic_plan")]);
        let connections =
            ConnectionPool::new(connect, pool.options().get_max_connections(), pool.options().get_acquire_timeout());
        let writers = options.group_commit_writers;
        let max_batch = options.group_commit_max;
        let readers = options.group_read_readers;
        let mut store = Self {
            pool,
            connections,
            options: Arc::new(options),
            wakeup,
            group: None,
            in_flight: Arc::default(),
            reads: None,
            reads_in_flight: Arc::default(),
            known: Arc::new(KnownVersions::new(KNOWN_STREAMS)),
        };
        if writers > 0 {
            store.group = Some(group_commit::start(store.clone(), writers, max_batch));
        }
        if readers > 0 {
            store.reads = Some(group_read::start(store.clone(), readers, max_batch));
        }
        store
    }

    /// Run `work` on a pooled connection. The connection goes back to the pool after
    /// success or a database error (the session is intact); after anything else (I/O error,
    /// cancellation) it is closed.
    async fn run<T>(&self, work: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>) -> sqlx::Result<T> {
        let mut lease = self.connections.acquire().await?;
        let result = work(&mut lease).await;
        match &result {
            Ok(_) | Err(sqlx::Error::Database(_)) => lease.release(),
            Err(error) if classify(error) == Kind::Unavailable => {
                drop(lease);
                self.connections.purge_idle();
            }
            Err(_) => drop(lease),
        }
        result
    }

    /// For an append to one stream whose first event goes to a version known to be free of
    /// gaps (a new stream, or the version after one seen committed), that version.
    fn free_version(&self, request: &AppendRequest) -> Option<u64> {
        let [stream] = request.streams.as_slice() else { return None };
        if request.idempotency.is_some() {
            return None;
        }
        match stream.expected {
            ExpectedVersion::NoStream => Some(1),
            ExpectedVersion::Exact(n) if self.known.has(stream.stream_id.as_str(), n) => n.checked_add(1),
            _ => None,
        }
    }

    /// Remember the versions a committed append stored.
    fn saw_appended(&self, appended: &Appended) {
        for event in &appended.events {
            self.known.saw(event.stream_id.as_str(), event.stream_version);
        }
    }

    /// Remember the latest version of each stream in events read from the log.
    fn saw_read(&self, events: &[RecordedEvent]) {
        // Events come stream by stream, in version order: the last of each run is its latest.
        for (i, event) in events.iter().enumerate() {
            if events.get(i + 1).is_none_or(|next| next.stream_id != event.stream_id) {
                self.known.saw(event.stream_id.as_str(), event.stream_version);
            }
        }
    }

    /// One stream read as its own statement.
    async fn read_stream_direct(&self, stream: &StreamId, from_version: u64) -> Result<Vec<RecordedEvent>> {
        self.run(async |c| sql::read_stream(c, stream, from_version).await).await.map_err(errors::store_error)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Usage of the store's own connections (appends and log reads).
    pub fn connection_usage(&self) -> PoolUsage {
        self.connections.usage()
    }

    /// Append inside a transaction the caller owns and commits (and then calls
    /// [`wake_subscribers`](Self::wake_subscribers)). After an error the transaction is
    /// aborted; a conflict still names the stream and its actual version.
    pub async fn append_in(&self, conn: &mut PgConnection, request: AppendRequest) -> Result<Appended> {
        request.validate()?;
        // Never the lookup-free insert here: its refusal would abort the caller's transaction
        // where the checked statement just appends nothing.
        let failure = match attempt(&mut *conn, &request, None).await {
            Ok(Some(rows)) => return Ok(appended(&request, rows, false)),
            Ok(None) => None,
            Err(error) => Some(error),
        };
        match self.explain_failure(&request, failure).await {
            Failure::Replayed(appended) => Ok(appended),
            Failure::Conflict(conflict) => Err(conflict),
            // Inside the caller's transaction there is no second try: it lost a race.
            Failure::Retry => Err(self
                .conflict_or(&request, StoreError::InvalidAppend("lost a race to a concurrent append".into()))
                .await),
            Failure::Error(error) => Err(error),
        }
    }

    /// Tell subscribers that something was appended outside `append` (e.g. by `append_in`
    /// after the caller committed).
    pub fn wake_subscribers(&self) {
        self.wakeup.appended();
    }

    /// Work out why an append failed: a replay, a version conflict, a lost race on an
    /// `Any` stream (retry), or a database error.
    async fn explain_failure(&self, request: &AppendRequest, failure: Option<sqlx::Error>) -> Failure {
        let kind = failure.as_ref().map_or(Kind::VersionMismatch, classify);
        if kind.may_be_replay() {
            match self.replayed(request).await {
                Ok(Some(appended)) => return Failure::Replayed(appended),
                Ok(None) => {}
                Err(lookup) => return Failure::Error(lookup),
            }
        }
        match failure {
            Some(error) => kind.into_failure(error, request),
            // The single-event statement appended nothing: the stream is elsewhere.
            None => Failure::Conflict(
                self.conflict_or(request, StoreError::InvalidAppend("the stream moved during the append".into())).await,
            ),
        }
    }

    /// If the request's events are already stored, the earlier result.
    async fn replayed(&self, request: &AppendRequest) -> Result<Option<Appended>> {
        let ids: Vec<Uuid> = request.streams.iter().flat_map(|s| s.events.iter().map(|e| e.event_id)).collect();
        let found = self.run(async |c| sql::find_events(c, &ids).await).await.map_err(errors::store_error)?;
        if found.is_empty() {
            return Ok(None);
        }
        if found.len() != ids.len() {
            return Err(StoreError::InvalidAppend(
                "some of these event ids are already stored and some are not: not a replay of one append".into(),
            ));
        }
        let by_id: HashMap<Uuid, AppendedEvent> = found
            .into_iter()
            .map(|(event_id, stream, version, commit, prepare)| {
                (
                    event_id,
                    AppendedEvent {
                        event_id,
                        stream_id: StreamId::from_raw(stream),
                        stream_version: u64::try_from(version).unwrap_or(0),
                        position: LogPosition::new(
                            u64::try_from(commit).unwrap_or(0),
                            u64::try_from(prepare).unwrap_or(0),
                        ),
                    },
                )
            })
            .collect();
        let events = ids.iter().filter_map(|id| by_id.get(id).cloned()).collect();
        Ok(Some(Appended { events, replayed: true }))
    }

    /// The first stream whose actual version contradicts its expectation, as a conflict;
    /// otherwise `fallback`.
    async fn conflict_or(&self, request: &AppendRequest, fallback: StoreError) -> StoreError {
        let names: Vec<&str> = request.streams.iter().map(|s| s.stream_id.as_str()).collect();
        let Ok(actual) = self.run(async |c| sql::stream_versions(c, &names).await).await else {
            return fallback;
        };
        let actual: HashMap<String, i64> = actual.into_iter().collect();
        for stream in &request.streams {
            let version = actual.get(stream.stream_id.as_str()).copied().unwrap_or(0);
            let version = u64::try_from(version).unwrap_or(0);
            if !stream.expected.accepts(version) {
                return StoreError::Conflict {
                    stream: stream.stream_id.clone(),
                    expected: stream.expected,
                    actual: version,
                };
            }
        }
        fallback
    }

    async fn live_events(self, after: LogPosition) -> EventStream {
        let changes = self.wakeup.watch(&self.pool).await;
        let state = Subscription { store: self, position: after, changes, pending_backoff: None };
        futures_util::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            match state.next_page().await {
                Ok(page) => Some((futures_util::stream::iter(page.into_iter().map(Ok)).left_stream(), Some(state))),
                // Yield the error, then end the stream.
                Err(error) => Some((futures_util::stream::iter([Err(error)]).right_stream(), None)),
            }
        })
        .flatten()
        .boxed()
    }
}

/// One try at an append: `Ok(None)` when the single-event statement found the stream at
/// another version. With `free_version`, the one event is inserted at that version without
/// looking at the stream (see `known_versions`).
async fn attempt(
    conn: &mut PgConnection,
    request: &AppendRequest,
    free_version: Option<u64>,
) -> sqlx::Result<Option<Vec<sql::AppendedRow>>> {
    match (request.streams.as_slice(), free_version) {
        ([stream], Some(version)) if stream.events.len() == 1 => {
            Ok(Some(vec![sql::insert_one(conn, &stream.stream_id, version, &stream.events[0]).await?]))
        }
        ([stream], _) if stream.events.len() == 1 && request.idempotency.is_none() => {
            let row = sql::append_one(conn, &stream.stream_id, stream.expected, &stream.events[0]).await?;
            Ok(row.map(|row| vec![row]))
        }
        _ => sql::append(conn, request).await.map(Some),
    }
}

/// Match the function's rows back to the request's events, in request order.
fn appended(request: &AppendRequest, rows: Vec<sql::AppendedRow>, replayed: bool) -> Appended {
    let mut by_id: HashMap<Uuid, sql::AppendedRow> = rows.into_iter().map(|row| (row.event_id, row)).collect();
    let mut events = Vec::with_capacity(by_id.len());
    for stream in &request.streams {
        for event in &stream.events {
            if let Some(row) = by_id.remove(&event.event_id) {
                events.push(AppendedEvent {
                    event_id: row.event_id,
                    stream_id: stream.stream_id.clone(),
                    stream_version: u64::try_from(row.stream_version).unwrap_or(0),
                    position: LogPosition::new(
                        u64::try_from(row.transaction_id).unwrap_or(0),
                        u64::try_from(row.position).unwrap_or(0),
                    ),
                });
            }
        }
    }
    Appended { events, replayed }
}

struct Subscription {
    store: PgEventStore,
    position: LogPosition,
    changes: watch::Receiver<u64>,
    /// Set while committed events wait behind an older running transaction.
    pending_backoff: Option<Duration>,
}

impl Subscription {
    /// The next non-empty page of events, waiting as long as it takes.
    async fn next_page(&mut self) -> Result<Vec<RecordedEvent>> {
        let options = &self.store.options.subscription;
        loop {
            // Mark wake-ups seen *before* reading, so one that arrives during the read is
            // not lost.
            self.changes.borrow_and_update();
            let (position, page_size) = (self.position, options.page_size);
            let page = self
                .store
                .run(async |c| sql::read_all(c, position, page_size).await)
                .await
                .map_err(errors::store_error)?;
            if let Some(last) = page.last() {
                self.position = last.position;
                self.pending_backoff = None;
                return Ok(page);
            }
            if self.store.run(async |c| sql::events_pending(c).await).await.map_err(errors::store_error)? {
                // Committed events are waiting for an older transaction to finish: look
                // again soon, backing off while it stays open.
                let delay =
                    self.pending_backoff.map_or(Duration::from_millis(1), |d| (d * 2).min(Duration::from_millis(50)));
                self.pending_backoff = Some(delay);
                tokio::time::sleep(delay).await;
                continue;
            }
            self.pending_backoff = None;
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        // The store is gone; fall back to polling.
                        tokio::time::sleep(options.poll_interval).await;
                    }
                }
                () = tokio::time::sleep(options.poll_interval) => {}
            }
        }
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities { atomic_multi_stream: self.options.atomic_multi_stream, transactional_idempotency: true }
    }

    #[tracing::instrument(level = "debug", name = "append", skip_all, fields(streams = request.streams.len(), events = request.event_count()))]
    async fn append(&self, request: AppendRequest) -> Result<Appended> {
        request.validate()?;
        let (_in_flight, concurrent) = InFlight::enter(&self.in_flight);
        if let Some(group) = &self.group
            && concurrent
            && group_commit::eligible(&request)
        {
            let (reply, answer) = tokio::sync::oneshot::channel();
            group.send(group_commit::Pending { request, reply }).await.map_err(|_| group_commit::closed())?;
            return answer.await.map_err(|_| group_commit::closed())?;
        }
        if !self.options.atomic_multi_stream && request.streams.iter().filter(|s| !s.events.is_empty()).count() > 1 {
            return Err(StoreError::InvalidAppend(
                "this store is configured without atomic multi-stream appends".into(),
            ));
        }
        let mut retries = 0;
        let started = std::time::Instant::now();
        // Only the first try may skip the version lookup: a retry follows a lost race.
        let mut free_version = self.free_version(&request).filter(|_| request.event_count() == 1);
        loop {
            let failure = match self.run(async |conn| attempt(conn, &request, free_version).await).await {
                Ok(Some(rows)) => {
                    self.wakeup.appended();
                    metrics::histogram!("agora_append_duration_seconds").record(started.elapsed().as_secs_f64());
                    let appended = appended(&request, rows, false);
                    self.saw_appended(&appended);
                    return Ok(appended);
                }
                Ok(None) => None,
                Err(error) if free_version.take().is_some() && classify(&error) == Kind::StreamRace => {
                    // The version after one known to be committed is taken: a conflict,
                    // unless these very events took it (a replay).
                    match self.replayed(&request).await {
                        Ok(Some(appended)) => return Ok(appended),
                        Ok(None) => {
                            metrics::counter!("agora_append_conflicts_total").increment(1);
                            return Err(self.conflict_or(&request, errors::store_error(error)).await);
                        }
                        Err(lookup) => return Err(lookup),
                    }
                }
                Err(error) => Some(error),
            };
            free_version = None;
            match self.explain_failure(&request, failure).await {
                Failure::Replayed(appended) => return Ok(appended),
                Failure::Conflict(conflict) => {
                    metrics::counter!("agora_append_conflicts_total").increment(1);
                    return Err(conflict);
                }
                Failure::Retry if retries < self.options.any_version_retries => {
                    retries += 1;
                    continue;
                }
                Failure::Retry => {
                    return Err(self
                        .conflict_or(
                            &request,
                            StoreError::InvalidAppend("too many concurrent appends, try again".into()),
                        )
                        .await);
                }
                Failure::Error(error) => return Err(error),
            }
        }
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64) -> Result<Vec<RecordedEvent>> {
        let (_in_flight, concurrent) = InFlight::enter(&self.reads_in_flight);
        if let Some(reads) = &self.reads
            && concurrent
        {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let read = group_read::PendingRead { stream: stream.clone(), from_version, reply };
            reads.send(read).await.map_err(|_| group_commit::closed())?;
            let events = answer.await.map_err(|_| group_commit::closed())??;
            self.saw_read(&events);
            return Ok(events);
        }
        let events = self.read_stream_direct(stream, from_version).await?;
        self.saw_read(&events);
        Ok(events)
    }

    async fn read_streams(&self, streams: &[StreamId]) -> Result<Vec<Vec<RecordedEvent>>> {
        let names: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
        let events = self.run(async |c| sql::read_streams(c, &names).await).await.map_err(errors::store_error)?;
        self.saw_read(&events);
        let mut by_stream: HashMap<&str, Vec<RecordedEvent>> = HashMap::with_capacity(streams.len());
        for event in events {
            let key = names.iter().find(|n| **n == event.stream_id.as_str()).copied().unwrap_or("");
            by_stream.entry(key).or_default().push(event);
        }
        Ok(names.iter().map(|name| by_stream.remove(name).unwrap_or_default()).collect())
    }

    async fn read_all(&self, after: LogPosition, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.run(async |c| sql::read_all(c, after, limit).await).await.map_err(errors::store_error)
    }

    fn subscribe_all(&self, after: LogPosition) -> EventStream {
        let store = self.clone();
        futures_util::stream::once(store.live_events(after)).flatten().boxed()
    }

    async fn head(&self) -> Result<LogPosition> {
        self.run(async |c| sql::head(c).await).await.map_err(errors::store_error)
    }

    async fn idempotent_response(&self, key: &str) -> Result<Option<StoredResponse>> {
        self.run(async |c| sql::idempotent_response(c, key).await).await.map_err(errors::store_error)
    }
}
