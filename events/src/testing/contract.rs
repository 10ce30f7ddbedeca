//! The behaviour every `EventStore` backend must show.
//!
//! Each function is one test, taking a [`StoreHarness`] over a fresh, empty store.
//! [`store_contract_tests!`](crate::store_contract_tests) turns them into `#[tokio::test]`s
//! for a backend: see `events/tests/postgres_store.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use uuid::Uuid;

use crate::envelope::{EventMetadata, NewEvent, RecordedEvent, StreamId};
use crate::position::LogPosition;
use crate::store::{AppendRequest, EventStore, ExpectedVersion, IdempotencyRecord, StoreError};

/// A fresh store, plus what a backend can do beyond the trait for tests.
#[async_trait]
pub trait StoreHarness: Send + Sync {
    fn store(&self) -> Arc<dyn EventStore>;

    /// Start `request` in a transaction and keep it open (uncommitted) until the handle is
    /// committed. `None` where the backend has no client-visible transactions; the
    /// held-transaction parts of the suite are then skipped.
    async fn begin_held_append(&self, request: AppendRequest) -> Option<Box<dyn HeldAppend>>;
}

#[async_trait]
pub trait HeldAppend: Send {
    async fn commit(self: Box<Self>);
}

/// Generates one `#[tokio::test]` per contract test, for a harness built by `$harness().await`.
#[macro_export]
macro_rules! store_contract_tests {
    ($harness:path) => {
        $crate::store_contract_tests!(@tests $harness;
            expected_version_conflicts,
            multi_stream_append_is_all_or_nothing,
            racing_appenders_get_one_winner_per_version,
            held_transaction_is_never_skipped,
            read_all_delivers_every_committed_event_once_in_a_stable_order,
            replayed_event_ids_append_nothing,
            subscription_catches_up_then_goes_live,
            head_is_the_last_visible_event,
            idempotency_record_is_stored_with_the_append,
            invalid_appends_are_refused,
        );
    };
    (@tests $harness:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $harness().await;
                $crate::testing::contract::$name(&harness).await;
            }
        )+
    };
}

/// A small event of test type `test.happened`.
pub fn event(payload: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "test.happened".to_owned(),
        schema_version: 1,
        data: serde_json::json!({ "payload": payload }).to_string(),
        metadata: EventMetadata {
            correlation_id: Some(Uuid::now_v7()),
            causation_id: None,
            actor: Some("test".to_owned()),
        },
    }
}

fn events(n: usize, prefix: &str) -> Vec<NewEvent> {
    (0..n).map(|i| event(&format!("{prefix}-{i}"))).collect()
}

pub fn stream(name: &str) -> StreamId {
    StreamId::new("test", format!("{name}_{}", Uuid::now_v7().simple()))
}

fn one(stream_id: &StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest::new().stream(stream_id.clone(), expected, events)
}

fn assert_conflict(
    result: Result<crate::Appended, StoreError>,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: u64,
) {
    match result {
        Err(StoreError::Conflict { stream: s, expected: e, actual: a }) => {
            assert_eq!((&s, e, a), (stream, expected, actual), "conflict details");
        }
        other => panic!("expected a conflict on {stream} (expected {expected}, actual {actual}), got {other:?}"),
    }
}

async fn versions(store: &dyn EventStore, stream: &StreamId) -> Vec<u64> {
    store.read_stream(stream, 1).await.expect("read_stream").iter().map(|e| e.stream_version).collect()
}

/// Wait until readers of the log can see `position`. A commit becomes visible to log
/// readers once every older transaction in the cluster has ended (invariant 4), which can
/// be a moment after the append returned when other work runs on the same server.
pub async fn wait_visible(store: &dyn EventStore, position: LogPosition) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while store.head().await.expect("head") < position {
        assert!(tokio::time::Instant::now() < deadline, "{position} did not become visible within 15 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn read_everything(store: &dyn EventStore, page: usize) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let batch = store.read_all(after, page).await.expect("read_all");
        let Some(last) = batch.last() else { break };
        after = last.position;
        all.extend(batch);
    }
    all
}

/// Conflicts on every expected-version kind, with the stream, expectation and actual version.
pub async fn expected_version_conflicts(harness: &dyn StoreHarness) {
    let store = harness.store();
    let s = stream("s");

    let first = store.append(one(&s, ExpectedVersion::NoStream, events(1, "a"))).await.expect("first append");
    assert_eq!(first.events[0].stream_version, 1);
    assert!(!first.replayed);

    assert_conflict(
        store.append(one(&s, ExpectedVersion::NoStream, events(1, "b"))).await,
        &s,
        ExpectedVersion::NoStream,
        1,
    );

    let second = store.append(one(&s, ExpectedVersion::Exact(1), events(2, "c"))).await.expect("exact append");
    assert_eq!(second.events.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [2, 3]);

    assert_conflict(
        store.append(one(&s, ExpectedVersion::Exact(1), events(1, "d"))).await,
        &s,
        ExpectedVersion::Exact(1),
        3,
    );
    assert_conflict(
        store.append(one(&s, ExpectedVersion::Exact(7), events(1, "e"))).await,
        &s,
        ExpectedVersion::Exact(7),
        3,
    );

    let missing = stream("missing");
    assert_conflict(
        store.append(one(&missing, ExpectedVersion::Exact(2), events(1, "f"))).await,
        &missing,
        ExpectedVersion::Exact(2),
        0,
    );

    let any = store.append(one(&s, ExpectedVersion::Any, events(1, "g"))).await.expect("any on existing");
    assert_eq!(any.events[0].stream_version, 4);
    let fresh = stream("fresh");
    let any = store.append(one(&fresh, ExpectedVersion::Any, events(2, "h"))).await.expect("any on new");
    assert_eq!(any.events.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [1, 2]);

    assert_eq!(versions(&*store, &s).await, [1, 2, 3, 4]);
    assert!(versions(&*store, &missing).await.is_empty(), "a refused append wrote nothing");
    let tail: Vec<u64> =
        store.read_stream(&s, 3).await.expect("read from 3").iter().map(|e| e.stream_version).collect();
    assert_eq!(tail, [3, 4]);
    assert!(store.read_stream(&s, 5).await.expect("read past the end").is_empty());
}

/// One append of several streams lands whole or not at all.
pub async fn multi_stream_append_is_all_or_nothing(harness: &dyn StoreHarness) {
    let store = harness.store();
    if !store.capabilities().atomic_multi_stream {
        return;
    }
    let (a, b, c) = (stream("a"), stream("b"), stream("c"));
    store.append(one(&a, ExpectedVersion::NoStream, events(1, "a"))).await.expect("seed a");
    let seeded = store.append(one(&b, ExpectedVersion::NoStream, events(1, "b"))).await.expect("seed b");
    wait_visible(&*store, seeded.position()).await;
    let before = read_everything(&*store, 100).await.len();
    let head_before = store.head().await.expect("head");

    let refused = AppendRequest::new()
        .stream(a.clone(), ExpectedVersion::Exact(1), events(2, "a2"))
        .stream(b.clone(), ExpectedVersion::NoStream, events(1, "b2"))
        .stream(c.clone(), ExpectedVersion::NoStream, events(1, "c2"));
    assert_conflict(store.append(refused).await, &b, ExpectedVersion::NoStream, 1);
    assert_eq!(versions(&*store, &a).await, [1], "stream a untouched");
    assert!(versions(&*store, &c).await.is_empty(), "stream c untouched");
    assert_eq!(read_everything(&*store, 100).await.len(), before, "nothing reached the log");
    assert_eq!(store.head().await.expect("head"), head_before);

    let accepted = AppendRequest::new()
        .stream(c.clone(), ExpectedVersion::NoStream, events(1, "c3"))
        .stream(a.clone(), ExpectedVersion::Exact(1), events(2, "a3"))
        .stream(b.clone(), ExpectedVersion::Exact(1), vec![]);
    let appended = store.append(accepted).await.expect("multi-stream append");
    wait_visible(&*store, appended.position()).await;
    assert_eq!(appended.events.len(), 3);
    assert_eq!(appended.events[0].stream_id, c, "results come back in request order");
    assert_eq!(appended.version_of(&a), Some(3));
    assert_eq!(appended.version_of(&c), Some(1));
    assert_eq!(versions(&*store, &b).await, [1], "a version check alone writes nothing");
    let log = read_everything(&*store, 100).await;
    assert_eq!(log.len(), before + 3);
}

/// 16 writers race to append each next version of one stream: one winner per version,
/// no gaps, no duplicates.
pub async fn racing_appenders_get_one_winner_per_version(harness: &dyn StoreHarness) {
    const WRITERS: usize = 16;
    const TARGET: u64 = 120;
    let store = harness.store();
    let s = stream("race");
    let winners: Arc<Mutex<BTreeMap<u64, Vec<usize>>>> = Arc::default();
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (store, s, winners, barrier) = (store.clone(), s.clone(), winners.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut conflicts = 0u64;
            loop {
                let current = store.read_stream(&s, 1).await.expect("read").last().map_or(0, |e| e.stream_version);
                if current >= TARGET {
                    return conflicts;
                }
                match store.append(one(&s, ExpectedVersion::at(current), events(1, &format!("w{writer}")))).await {
                    Ok(appended) => {
                        let version = appended.events[0].stream_version;
                        assert_eq!(version, current + 1);
                        winners.lock().expect("lock").entry(version).or_default().push(writer);
                    }
                    Err(StoreError::Conflict { actual, .. }) => {
                        assert!(actual > current, "a conflict means someone else moved the stream on");
                        conflicts += 1;
                    }
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("writer task");
    }
    let winners = winners.lock().expect("lock");
    assert_eq!(winners.len() as u64, TARGET, "every version was won");
    for (version, won_by) in winners.iter() {
        assert_eq!(won_by.len(), 1, "version {version} won by {won_by:?}");
    }
    let stored = versions(&*store, &s).await;
    assert_eq!(stored, (1..=TARGET).collect::<Vec<_>>(), "versions without gaps or duplicates");
    assert!(conflicts > 0, "the writers did race");
}

type Collected = Arc<Mutex<Vec<RecordedEvent>>>;

/// Run a subscription in the background, collecting what it delivers.
fn collect(store: &Arc<dyn EventStore>, after: LogPosition) -> (Collected, tokio::task::JoinHandle<()>) {
    let seen: Collected = Arc::default();
    let mut events = store.subscribe_all(after);
    let sink = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            sink.lock().expect("lock").push(event.expect("subscription error"));
        }
    });
    (seen, task)
}

async fn wait_for(seen: &Collected, count: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen.lock().expect("lock").len() < count {
        assert!(tokio::time::Instant::now() < deadline, "{what}: waited 15 s for {count} events");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

fn assert_strictly_increasing(events: &[RecordedEvent], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "{what}: {} delivered before {}",
            pair[0].position,
            pair[1].position
        );
    }
}

/// The sequence trap (ARCHITECTURE.md, invariant 4): an append that commits after later
/// appends must still reach a subscriber that was running all along, exactly once, and a
/// subscriber restarted from its last position while the append was open.
pub async fn held_transaction_is_never_skipped(harness: &dyn StoreHarness) {
    let store = harness.store();
    let s = stream("trap");
    store.append(one(&s, ExpectedVersion::NoStream, vec![event("before")])).await.expect("first event");

    let (live, live_task) = collect(&store, LogPosition::START);
    wait_for(&live, 1, "live subscriber, first event").await;

    let held_stream = stream("held");
    let held_event = event("held");
    let held_id = held_event.event_id;
    let Some(held) = harness.begin_held_append(one(&held_stream, ExpectedVersion::NoStream, vec![held_event])).await
    else {
        live_task.abort();
        return;
    };

    // Later appends commit while the held one is open.
    let mut later = Vec::new();
    for i in 0..5 {
        let appended =
            store.append(one(&stream("later"), ExpectedVersion::NoStream, vec![event(&format!("later-{i}"))])).await;
        later.push(appended.expect("later append").events[0].event_id);
    }

    // A second subscriber reads during the open transaction, then stops.
    let (early, early_task) = collect(&store, LogPosition::START);
    tokio::time::sleep(Duration::from_millis(300)).await;
    early_task.abort();
    let _ = early_task.await;
    let early: Vec<RecordedEvent> = early.lock().expect("lock").clone();
    assert!(!ids(&early).contains(&held_id), "an uncommitted event was delivered");
    let resume_from = early.last().map_or(LogPosition::START, |e| e.position);

    held.commit().await;

    // The live subscriber gets everything exactly once, in log order.
    wait_for(&live, 7, "live subscriber").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live_seen: Vec<RecordedEvent> = live.lock().expect("lock").clone();
    live_task.abort();
    assert_eq!(live_seen.len(), 7, "each event exactly once");
    assert!(ids(&live_seen).contains(&held_id), "the late commit was not skipped");
    for id in &later {
        assert!(ids(&live_seen).contains(id));
    }
    assert_strictly_increasing(&live_seen, "live subscriber");

    // The restarted subscriber, together with what it saw before, also has everything once.
    let (resumed, resumed_task) = collect(&store, resume_from);
    wait_for(&resumed, 7 - early.len(), "resumed subscriber").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    resumed_task.abort();
    let mut both = early.clone();
    both.extend(resumed.lock().expect("lock").iter().cloned());
    assert_eq!(both.len(), 7, "restart delivered each event exactly once");
    assert_eq!(ids(&both).into_iter().collect::<HashSet<_>>().len(), 7);
    assert!(ids(&both).contains(&held_id));
    assert_strictly_increasing(&both, "resumed subscriber");

    // And the log reads the same way.
    assert_eq!(ids(&read_everything(&*store, 2).await), ids(&live_seen));
}

/// After N concurrent appenders, reading the log from the start delivers each committed
/// event exactly once, in the same order every time.
pub async fn read_all_delivers_every_committed_event_once_in_a_stable_order(harness: &dyn StoreHarness) {
    const APPENDERS: usize = 8;
    const APPENDS: usize = 40;
    let store = harness.store();
    let mut tasks = Vec::new();
    for appender in 0..APPENDERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            let mut last = LogPosition::START;
            let mine = stream(&format!("appender{appender}"));
            for i in 0..APPENDS {
                let request = if i % 5 == 4 && store.capabilities().atomic_multi_stream {
                    AppendRequest::new().stream(mine.clone(), ExpectedVersion::Any, events(2, "multi")).stream(
                        stream("side"),
                        ExpectedVersion::NoStream,
                        events(1, "side"),
                    )
                } else {
                    one(&mine, ExpectedVersion::Any, events(1 + i % 3, "single"))
                };
                let appended = store.append(request).await.expect("append");
                last = last.max(appended.position());
                written.extend(appended.events.iter().map(|e| e.event_id));
            }
            (written, last)
        }));
    }
    let mut written = HashSet::new();
    let mut last = LogPosition::START;
    for task in tasks {
        let (ids, position) = task.await.expect("appender");
        written.extend(ids);
        last = last.max(position);
    }
    wait_visible(&*store, last).await;

    let first = read_everything(&*store, 37).await;
    let second = read_everything(&*store, 1000).await;
    assert_eq!(first.len(), written.len(), "every committed event, no more");
    assert_eq!(ids(&first).into_iter().collect::<HashSet<_>>(), written, "exactly the committed events");
    assert_eq!(ids(&first), ids(&second), "the same order every time, whatever the page size");
    assert_strictly_increasing(&first, "read_all");

    // Within a stream, log order is version order.
    let mut last_version: BTreeMap<StreamId, u64> = BTreeMap::new();
    for e in &first {
        let previous = last_version.insert(e.stream_id.clone(), e.stream_version).unwrap_or(0);
        assert_eq!(e.stream_version, previous + 1, "stream {} out of order in the log", e.stream_id);
    }
}

/// Appending events whose ids are already stored appends nothing and reports the earlier
/// result, even when the expected version has moved on since.
pub async fn replayed_event_ids_append_nothing(harness: &dyn StoreHarness) {
    let store = harness.store();
    let s = stream("replay");
    let request = one(&s, ExpectedVersion::NoStream, events(2, "once"));
    let first = store.append(request.clone()).await.expect("first append");
    assert!(!first.replayed);

    let again = store.append(request.clone()).await.expect("replayed append");
    assert!(again.replayed, "reported as a replay");
    assert_eq!(again.events, first.events, "the earlier result");
    assert_eq!(versions(&*store, &s).await, [1, 2]);

    let moved = store.append(one(&s, ExpectedVersion::Exact(2), events(1, "next"))).await.expect("moves on");
    wait_visible(&*store, moved.position()).await;
    let late_retry = store.append(request.clone()).await.expect("replay after the stream moved on");
    assert!(late_retry.replayed);
    assert_eq!(late_retry.events, first.events);
    assert_eq!(versions(&*store, &s).await, [1, 2, 3]);
    assert_eq!(read_everything(&*store, 100).await.len(), 3, "nothing appended twice");

    // Concurrent retries of one append: one lands, the others see it as a replay.
    let fresh = one(&stream("concurrent"), ExpectedVersion::NoStream, events(1, "race"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, fresh) = (store.clone(), fresh.clone());
        tasks.push(tokio::spawn(async move { store.append(fresh).await }));
    }
    let mut landed = 0;
    for task in tasks {
        let result = task.await.expect("task").expect("append or replay");
        wait_visible(&*store, result.position()).await;
        if !result.replayed {
            landed += 1;
        }
    }
    assert_eq!(landed, 1, "exactly one of the concurrent retries appended");
    assert_eq!(read_everything(&*store, 100).await.len(), 4);
}

/// A subscription first delivers what is stored (across several pages), then new events.
pub async fn subscription_catches_up_then_goes_live(harness: &dyn StoreHarness) {
    let store = harness.store();
    for batch in 0..5 {
        store
            .append(one(&stream("bulk"), ExpectedVersion::NoStream, events(500, &format!("b{batch}"))))
            .await
            .expect("bulk");
    }
    let (seen, task) = collect(&store, LogPosition::START);
    wait_for(&seen, 2500, "catch-up").await;
    let stored = read_everything(&*store, 1000).await.len();
    assert_eq!(stored, 2500);
    for i in 0..3 {
        store
            .append(one(&stream("live"), ExpectedVersion::NoStream, vec![event(&format!("live-{i}"))]))
            .await
            .expect("live");
    }
    wait_for(&seen, 2503, "live").await;
    task.abort();
    let seen = seen.lock().expect("lock").clone();
    wait_visible(&*store, seen[2502].position).await;
    assert_strictly_increasing(&seen, "subscription");
    assert_eq!(ids(&seen), ids(&read_everything(&*store, 1000).await));

    // Starting after the head delivers only what comes next.
    let head = store.head().await.expect("head");
    let (tail, task) = collect(&store, head);
    let next =
        store.append(one(&stream("after-head"), ExpectedVersion::NoStream, vec![event("next")])).await.expect("next");
    wait_for(&tail, 1, "from head").await;
    task.abort();
    assert_eq!(ids(&tail.lock().expect("lock")), [next.events[0].event_id]);
}

/// `head` is `START` on an empty log, then the position of the last committed event.
pub async fn head_is_the_last_visible_event(harness: &dyn StoreHarness) {
    let store = harness.store();
    assert_eq!(store.head().await.expect("head"), LogPosition::START);
    let first = store.append(one(&stream("h"), ExpectedVersion::NoStream, events(3, "h"))).await.expect("append");
    wait_visible(&*store, first.position()).await;
    assert_eq!(store.head().await.expect("head"), first.position());
    let second = store.append(one(&stream("h"), ExpectedVersion::NoStream, events(1, "h"))).await.expect("append");
    assert!(second.position() > first.position());
    wait_visible(&*store, second.position()).await;
    assert_eq!(store.head().await.expect("head"), second.position());
    let log = read_everything(&*store, 10).await;
    assert_eq!(log.last().map(|e| e.position), Some(second.position()));
}

/// A command's response is stored with its events; a second use of the key is refused and
/// appends nothing.
pub async fn idempotency_record_is_stored_with_the_append(harness: &dyn StoreHarness) {
    let store = harness.store();
    if !store.capabilities().transactional_idempotency {
        return;
    }
    let key = format!("buyer-1:{}", Uuid::now_v7());
    let record = IdempotencyRecord {
        key: key.clone(),
        request_hash: "hash-1".into(),
        response_status: 201,
        response_body: serde_json::json!({ "id": "order-1" }),
    };
    assert!(store.idempotent_response(&key).await.expect("lookup").is_none());
    let appended = store
        .append(one(&stream("order"), ExpectedVersion::NoStream, events(2, "o")).idempotent(record.clone()))
        .await
        .expect("append with key");
    let stored = store.idempotent_response(&key).await.expect("lookup").expect("stored");
    assert_eq!(stored.request_hash, "hash-1");
    assert_eq!(stored.response_status, 201);
    assert_eq!(stored.response_body, serde_json::json!({ "id": "order-1" }));
    assert_eq!(stored.position, appended.position());

    let other = stream("order");
    let reused = store.append(one(&other, ExpectedVersion::NoStream, events(1, "o2")).idempotent(record)).await;
    assert!(
        matches!(reused, Err(StoreError::IdempotencyKeyTaken { ref key }) if key.starts_with("buyer-1:")),
        "{reused:?}"
    );
    assert!(versions(&*store, &other).await.is_empty(), "the refused append wrote nothing");
}

/// Malformed requests are refused before anything is written.
pub async fn invalid_appends_are_refused(harness: &dyn StoreHarness) {
    let store = harness.store();
    let s = stream("invalid");
    let empty = store.append(AppendRequest::new()).await;
    assert!(matches!(empty, Err(StoreError::InvalidAppend(_))), "{empty:?}");
    let no_events = store.append(one(&s, ExpectedVersion::Any, vec![])).await;
    assert!(matches!(no_events, Err(StoreError::InvalidAppend(_))), "{no_events:?}");
    let twice = AppendRequest::new().stream(s.clone(), ExpectedVersion::Any, events(1, "x")).stream(
        s.clone(),
        ExpectedVersion::Any,
        events(1, "y"),
    );
    assert!(matches!(store.append(twice).await, Err(StoreError::InvalidAppend(_))));
    let e = event("dup");
    let duplicate_ids = one(&s, ExpectedVersion::Any, vec![e.clone(), e]);
    assert!(matches!(store.append(duplicate_ids).await, Err(StoreError::InvalidAppend(_))));
    assert!(versions(&*store, &s).await.is_empty());
}
