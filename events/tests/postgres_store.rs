//! The store contract suite and PostgreSQL-specific behaviour, against a real PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::domain::accounts::{AccountEvent, Role};
use events::domain::catalog::ProductEvent;
use events::testing::TestDatabase;
use events::testing::contract::{self, HeldAppend, StoreHarness};
use events::{
    AppendRequest, EventStore, ExpectedVersion, LogPosition, MarketEvent, PgEventStore, PgStoreOptions, StoreError,
    StreamId,
};
use futures_util::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};

struct PgHarness {
    store: PgEventStore,
    db: TestDatabase,
}

async fn pg_harness() -> PgHarness {
    let db = TestDatabase::with_event_store().await;
    let store = PgEventStore::new(db.pool().clone(), PgStoreOptions::default());
    PgHarness { store, db }
}

struct PgHeld {
    conn: PgConnection,
    store: PgEventStore,
}

#[async_trait]
impl HeldAppend for PgHeld {
    async fn commit(mut self: Box<Self>) {
        sqlx::raw_sql("commit").execute(&mut self.conn).await.expect("commit held append");
        self.store.wake_subscribers();
    }
}

impl PgHarness {
    async fn begin(&self, request: AppendRequest) -> PgHeld {
        let mut conn = PgConnection::connect(self.db.url()).await.expect("connect");
        sqlx::raw_sql("begin").execute(&mut conn).await.expect("begin");
        self.store.append_in(&mut conn, request).await.expect("held append");
        PgHeld { conn, store: self.store.clone() }
    }
}

#[async_trait]
impl StoreHarness for PgHarness {
    fn store(&self) -> Arc<dyn EventStore> {
        Arc::new(self.store.clone())
    }

    async fn begin_held_append(&self, request: AppendRequest) -> Option<Box<dyn HeldAppend>> {
        Some(Box::new(self.begin(request).await))
    }
}

events::store_contract_tests!(pg_harness);

/// The same contract with every append in its own transaction (group commit off).
mod one_transaction_per_append {
    use super::*;

    async fn pg_harness_direct() -> PgHarness {
        let db = TestDatabase::with_event_store().await;
        let options = PgStoreOptions { group_commit_writers: 0, ..Default::default() };
        let store = PgEventStore::new(db.pool().clone(), options);
        PgHarness { store, db }
    }

    events::store_contract_tests!(pg_harness_direct);
}

/// Concurrent single-stream appends share transactions, yet each keeps its own expected-version
/// check: racing appends to one stream still get exactly one winner per version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_transactions_but_not_expectations() {
    let h = pg_harness().await;
    let store: Arc<dyn EventStore> = Arc::new(h.store.clone());
    let hot = contract::stream("hot");
    let mut tasks = Vec::new();
    for client in 0..32 {
        let (store, hot) = (store.clone(), hot.clone());
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for round in 0..20u64 {
                // Each client has its own stream, and everyone also races for version 1 of `hot`.
                let own = AppendRequest::new().stream(
                    StreamId::new("test", format!("own{client}")),
                    ExpectedVersion::at(round),
                    vec![contract::event("own")],
                );
                results.push(store.append(own).await.map(|a| a.events[0].stream_version));
            }
            let race = AppendRequest::new().stream(hot, ExpectedVersion::NoStream, vec![contract::event("race")]);
            (results, store.append(race).await)
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (own, race) = task.await.expect("task");
        let versions: Vec<u64> = own.into_iter().map(|r| r.expect("own stream append")).collect();
        assert_eq!(versions, (1..=20).collect::<Vec<_>>());
        match race {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 1),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(winners, 1, "one winner for version 1 of the hot stream");
    let (events, transactions): (i64, i64) =
        sqlx::query_as("select count(*), count(distinct transaction_id) from event_store.event")
            .fetch_one(h.db.pool())
            .await
            .expect("count");
    assert_eq!(events, 32 * 20 + 1);
    assert!(
        transactions < events,
        "some appends shared a transaction ({transactions} transactions for {events} events)"
    );
}

/// Appends expecting a version this store has seen committed insert without looking the
/// stream up (`known_versions`): two stores over one log (two processes) must still get a
/// conflict for a version the other one took, never a gap or a doubled version, and a
/// retried append must still be answered as a replay.
#[tokio::test]
async fn appends_after_a_seen_version_still_conflict_and_replay_correctly() {
    let h = pg_harness().await;
    let a = h.store.clone();
    let b = PgEventStore::new(h.db.pool().clone(), PgStoreOptions::default());
    let s = contract::stream("shared");
    let append = |expected, event| AppendRequest::new().stream(s.clone(), expected, vec![event]);
    let version = |result: Result<events::Appended, StoreError>| result.expect("append").events[0].stream_version;

    let first = append(ExpectedVersion::NoStream, contract::event("first"));
    assert_eq!(version(a.append(first.clone()).await), 1);
    // The other process appends version 2; `a` still knows only version 1.
    assert_eq!(version(b.append(append(ExpectedVersion::Exact(1), contract::event("by b"))).await), 2);
    match a.append(append(ExpectedVersion::Exact(1), contract::event("stale"))).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 2),
        other => panic!("expected a conflict at version 2, got {other:?}"),
    }
    // Ahead of the stream: refused, never a gap.
    match a.append(append(ExpectedVersion::Exact(3), contract::event("ahead"))).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 2),
        other => panic!("expected a conflict at version 2, got {other:?}"),
    }
    // A read shows version 2; the append expecting it goes through.
    assert_eq!(a.read_stream(&s, 1).await.expect("read").len(), 2);
    let third = append(ExpectedVersion::Exact(2), contract::event("third"));
    assert_eq!(version(a.append(third.clone()).await), 3);
    // Retries of stored appends are replays with their first result.
    for retry in [third, first] {
        let replay = a.append(retry.clone()).await.expect("replay");
        assert!(replay.replayed, "a retried append is a replay");
        assert_eq!(replay.events[0].event_id, retry.streams[0].events[0].event_id);
    }
    match a.append(append(ExpectedVersion::NoStream, contract::event("again"))).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 3),
        other => panic!("expected a conflict at version 3, got {other:?}"),
    }
    let versions: Vec<i64> =
        sqlx::query_scalar("select stream_version from event_store.event where stream_id = $1 order by position")
            .bind(s.as_str())
            .fetch_all(h.db.pool())
            .await
            .expect("versions");
    assert_eq!(versions, [1, 2, 3]);
}

/// The same under group commit: a batch of appends at versions known to be free skips the
/// version read, and one stale version in it (taken by another process) makes only that
/// append a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_at_seen_versions_refuses_only_the_append_whose_version_was_taken() {
    let h = pg_harness().await;
    let a = h.store.clone();
    let b = PgEventStore::new(h.db.pool().clone(), PgStoreOptions::default());
    let streams: Vec<StreamId> = (0..24).map(|i| contract::stream(&format!("batch{i}"))).collect();
    for s in &streams {
        a.append(AppendRequest::new().stream(s.clone(), ExpectedVersion::NoStream, vec![contract::event("one")]))
            .await
            .expect("first event");
    }
    let taken = streams[5].clone();
    b.append(AppendRequest::new().stream(taken.clone(), ExpectedVersion::Exact(1), vec![contract::event("by b")]))
        .await
        .expect("b appends version 2");
    let barrier = Arc::new(tokio::sync::Barrier::new(streams.len()));
    let tasks: Vec<_> = streams
        .iter()
        .map(|s| {
            let (a, s, barrier) = (a.clone(), s.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let request =
                    AppendRequest::new().stream(s.clone(), ExpectedVersion::Exact(1), vec![contract::event("two")]);
                (s, a.append(request).await)
            })
        })
        .collect();
    for task in tasks {
        match task.await.expect("task") {
            (s, Err(StoreError::Conflict { actual, .. })) if s == taken => assert_eq!(actual, 2),
            (s, Ok(appended)) if s != taken => assert_eq!(appended.events[0].stream_version, 2),
            (s, other) => panic!("{s}: {other:?}"),
        }
    }
    let (events, top): (i64, i64) = sqlx::query_as("select count(*), max(stream_version) from event_store.event")
        .fetch_one(h.db.pool())
        .await
        .expect("count");
    assert_eq!((events, top), (48, 2));
}

/// Concurrent stream reads are answered together (group reads): each read still gets exactly
/// its own stream's events from its own version, whatever else was read with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_reads_answer_each_read_with_its_own_events() {
    let h = pg_harness().await;
    let store: Arc<dyn EventStore> = Arc::new(h.store.clone());
    let mut expected = Vec::new();
    for n in 0..30u64 {
        let stream = StreamId::new("test", format!("read{n}"));
        let events: Vec<_> = (0..=n % 5).map(|_| contract::event("e")).collect();
        let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
        store
            .append(AppendRequest::new().stream(stream.clone(), ExpectedVersion::NoStream, events))
            .await
            .expect("append");
        expected.push((stream, ids));
    }
    for _round in 0..5 {
        let mut tasks = Vec::new();
        for (stream, ids) in &expected {
            // The same stream twice in flight: from the start, and from version 2.
            for from in [1u64, 2] {
                let (store, stream, ids) = (store.clone(), stream.clone(), ids.clone());
                tasks.push(tokio::spawn(async move {
                    let read = store.read_stream(&stream, from).await.expect("read");
                    let got: Vec<_> =
                        read.iter().map(|e| (e.stream_id.clone(), e.stream_version, e.event_id)).collect();
                    let want: Vec<_> = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| (stream.clone(), i as u64 + 1, *id))
                        .filter(|(_, version, _)| *version >= from)
                        .collect();
                    assert_eq!(got, want, "{stream} from version {from}");
                }));
            }
        }
        for task in tasks {
            task.await.expect("read task");
        }
    }
    let missing = store.read_stream(&StreamId::new("test", "never"), 1).await.expect("read");
    assert!(missing.is_empty());
}

async fn insert_raw(pool: &PgPool, stream: &str, version: i64, event_type: &str, schema_version: i32, data: &str) {
    sqlx::query(
        "insert into event_store.event (event_id, stream_id, stream_version, event_type, schema_version, data) \
         values ($1, $2, $3, $4, $5, $6::json)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(stream)
    .bind(version)
    .bind(event_type)
    .bind(schema_version)
    .bind(data)
    .execute(pool)
    .await
    .expect("raw insert");
}

/// The trap is real here: the held event's sequence number is *lower* than those of events
/// that committed before it, so a reader of `position > checkpoint` would skip it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_event_has_a_lower_sequence_number_than_later_commits_yet_is_read_in_commit_order() {
    let h = pg_harness().await;
    let held_stream = contract::stream("held");
    let held = h
        .begin(AppendRequest::new().stream(
            held_stream.clone(),
            ExpectedVersion::NoStream,
            vec![contract::event("held")],
        ))
        .await;
    let later = h
        .store
        .append(AppendRequest::new().stream(
            contract::stream("later"),
            ExpectedVersion::NoStream,
            vec![contract::event("later")],
        ))
        .await
        .expect("later append");

    // While the held transaction runs, readers see nothing: not even the later event,
    // since it sorts after the held one.
    assert!(h.store.read_all(LogPosition::START, 10).await.expect("read").is_empty());
    assert_eq!(h.store.head().await.expect("head"), LogPosition::START);

    Box::new(held).commit().await;
    contract::wait_visible(&h.store, later.position()).await;
    let log = h.store.read_all(LogPosition::START, 10).await.expect("read");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].stream_id, held_stream, "the held event comes first in commit-safe order");
    assert!(
        log[0].position.prepare() < later.events[0].position.prepare(),
        "the held event took the lower sequence number: a bigserial-only reader would have skipped it"
    );
    assert_eq!(log[1].event_id, later.events[0].event_id);
}

/// A transaction that dies before commit leaves nothing behind, in every stream it touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_append_leaves_nothing_half_written() {
    let h = pg_harness().await;
    let (a, b) = (contract::stream("a"), contract::stream("b"));
    let held = h
        .begin(AppendRequest::new().stream(a.clone(), ExpectedVersion::NoStream, vec![contract::event("a")]).stream(
            b.clone(),
            ExpectedVersion::NoStream,
            vec![contract::event("b"), contract::event("b2")],
        ))
        .await;
    let pid: i32 = sqlx::query_scalar(
        "select pid from pg_stat_activity where datname = current_database() and state = 'idle in transaction'",
    )
    .fetch_one(h.db.pool())
    .await
    .expect("held backend");
    sqlx::query("select pg_terminate_backend($1)").bind(pid).execute(h.db.pool()).await.expect("terminate");
    drop(held);
    assert!(h.store.read_stream(&a, 1).await.expect("read a").is_empty());
    assert!(h.store.read_stream(&b, 1).await.expect("read b").is_empty());
    assert!(h.store.read_all(LogPosition::START, 10).await.expect("read all").is_empty());
    // And the streams are free for the next append.
    h.store
        .append(AppendRequest::new().stream(a.clone(), ExpectedVersion::NoStream, vec![contract::event("again")]))
        .await
        .expect("append after the killed one");
}

/// With the database gone, appends fail with a retryable error instead of hanging.
#[tokio::test]
async fn unreachable_database_gives_a_retryable_error() {
    let pool = events::postgres::pool_options(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(events::postgres::connect_options("postgres://postgres@127.0.0.1:1/agora").expect("url"));
    let store = PgEventStore::new(pool, PgStoreOptions::default());
    let result = store
        .append(AppendRequest::new().stream(contract::stream("x"), ExpectedVersion::Any, vec![contract::event("x")]))
        .await;
    match result {
        Err(error) => assert!(error.is_retryable(), "not retryable: {error:?}"),
        Ok(_) => panic!("appended to a database that does not exist"),
    }
    let read = store.read_all(LogPosition::START, 10).await;
    assert!(matches!(read, Err(ref e) if e.is_retryable()), "{read:?}");
    // A subscription reports the error instead of spinning or hanging.
    let first = store.subscribe_all(LogPosition::START).next().await;
    assert!(matches!(first, Some(Err(StoreError::Unavailable(_)))), "{first:?}");
}

/// Stored events that cannot be read as domain events give errors that name the event.
#[tokio::test]
async fn undecodable_events_name_stream_version_and_type() {
    let h = pg_harness().await;
    let pool = h.db.pool();
    insert_raw(pool, "product-1", 1, "product.teleported", 1, r#"{"to":"mars"}"#).await;
    insert_raw(pool, "product-2", 1, "product.listed", 1, r#"{"title": 42}"#).await;
    insert_raw(pool, "product-3", 1, "product.listed", 9, r#"{}"#).await;
    insert_raw(pool, "weird-1", 1, "unknown.family", 1, r#"{}"#).await;

    let unknown = &h.store.read_stream(&StreamId::from_raw("product-1"), 1).await.expect("read")[0];
    let error = unknown.decode::<ProductEvent>().expect_err("unknown type");
    assert_eq!(
        (error.stream_id.as_str(), error.stream_version, error.event_type.as_str()),
        ("product-1", 1, "product.teleported")
    );
    assert!(error.to_string().contains("product-1") && error.to_string().contains("product.teleported"), "{error}");

    let bad_json = &h.store.read_stream(&StreamId::from_raw("product-2"), 1).await.expect("read")[0];
    let error = bad_json.decode::<ProductEvent>().expect_err("bad json");
    assert!(error.reason.contains("invalid JSON"), "{error}");
    assert_eq!(error.stream_id, "product-2");

    let future = &h.store.read_stream(&StreamId::from_raw("product-3"), 1).await.expect("read")[0];
    assert!(future.decode::<ProductEvent>().expect_err("newer schema").reason.contains("newer schema"));

    let weird = &h.store.read_stream(&StreamId::from_raw("weird-1"), 1).await.expect("read")[0];
    let error = MarketEvent::decode(weird).expect_err("unknown family");
    assert_eq!(error.event_type, "unknown.family");
}

/// Stored JSON of an older schema version is upcast on load.
#[tokio::test]
async fn older_schema_versions_are_upcast_on_load() {
    let h = pg_harness().await;
    let sealed = r#"{"key_id":"0190f3c2-0000-7000-8000-000000000000","nonce":"bm9uY2U=","ciphertext":"Y2lwaGVy"}"#;
    let v1 = format!(
        r#"{{"account_id":"0190f3c2-0000-7000-8000-000000000001","email":{sealed},"name":{sealed},"password_hash":"$argon2id$x"}}"#
    );
    insert_raw(h.db.pool(), "account-1", 1, "account.registered", 1, &v1).await;
    let stored = &h.store.read_stream(&StreamId::from_raw("account-1"), 1).await.expect("read")[0];
    match stored.decode::<AccountEvent>().expect("upcast") {
        AccountEvent::Registered(registered) => assert_eq!(registered.role, Role::Buyer),
        other => panic!("decoded as {other:?}"),
    }
}

/// A store configured without atomic multi-stream appends refuses them (so the checkout's
/// reserve / compensate path can be tested on PostgreSQL).
#[tokio::test]
async fn multi_stream_capability_can_be_switched_off() {
    let db = TestDatabase::with_event_store().await;
    let store =
        PgEventStore::new(db.pool().clone(), PgStoreOptions { atomic_multi_stream: false, ..Default::default() });
    assert!(!store.capabilities().atomic_multi_stream);
    let multi = AppendRequest::new()
        .stream(contract::stream("a"), ExpectedVersion::Any, vec![contract::event("a")])
        .stream(contract::stream("b"), ExpectedVersion::Any, vec![contract::event("b")]);
    assert!(matches!(store.append(multi).await, Err(StoreError::InvalidAppend(_))));
}
