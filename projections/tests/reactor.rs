//! The reactor runtime: at-least-once reactions with derived ids (nothing appended twice)
//! across crashes, per-stream order with bounded concurrency, failing reactions and parking.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::reactor::{ReactionError, Reactor};
use events::testing::contract::{event, wait_visible};
use events::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogPosition, NewEvent, RecordedEvent, StreamId,
};
use projections::{RunOptions, park, run_reactor};
use rand::Rng;
use support::Env;
use tokio::sync::watch;
use uuid::Uuid;

/// Appends one `test.reacted` event per trigger, with an id derived from the trigger.
struct Echo {
    store: Arc<dyn EventStore>,
    calls: Mutex<Vec<(String, u64)>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Echo {
    fn new(store: Arc<dyn EventStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            calls: Mutex::default(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Reactor for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "test.happened"
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let delay = rand::rng().random_range(0..3);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.calls.lock().expect("lock").push((event.stream_id.to_string(), event.stream_version));
        let result = if event.data.contains("poison") {
            Err(ReactionError::Fatal("cannot react to poison".into()))
        } else {
            let reaction = NewEvent {
                event_id: events::ids::reaction_event(event.event_id, "echo", 0),
                event_type: "test.reacted".into(),
                schema_version: 1,
                data: serde_json::json!({ "trigger": event.event_id }).to_string(),
                metadata: EventMetadata { correlation_id: None, causation_id: Some(event.event_id), actor: None },
            };
            let stream = StreamId::new("reaction", event.event_id.simple());
            let request = AppendRequest::new().stream(stream, ExpectedVersion::Any, vec![reaction]);
            self.store.append(request).await.map(|_| ()).map_err(|e| ReactionError::Retry(e.to_string()))
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

fn options() -> RunOptions {
    RunOptions {
        batch_size: 64,
        standby_retry: Duration::from_millis(200),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        reactor_concurrency: 4,
        ..RunOptions::default()
    }
}

/// `per_stream` triggers on each of `streams` streams, interleaved; returns the trigger ids.
async fn triggers(
    store: &dyn EventStore,
    streams: usize,
    per_stream: usize,
    poison: Option<(usize, usize)>,
) -> Vec<Uuid> {
    let names: Vec<StreamId> =
        (0..streams).map(|i| StreamId::new("trigger", format!("s{i}x{}", Uuid::now_v7().simple()))).collect();
    let mut ids = Vec::new();
    let mut last = LogPosition::START;
    for n in 0..per_stream {
        for (s, name) in names.iter().enumerate() {
            let payload = if poison == Some((s, n)) { "poison".to_owned() } else { format!("{s}-{n}") };
            let e = event(&payload);
            ids.push(e.event_id);
            let request = AppendRequest::new().stream(name.clone(), ExpectedVersion::at(n as u64), vec![e]);
            last = last.max(store.append(request).await.expect("trigger").position());
        }
    }
    wait_visible(store, last).await;
    ids
}

async fn reactions(pool: &sqlx::PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("select event_id from event_store.event where event_type = 'test.reacted'")
        .fetch_all(pool)
        .await
        .expect("reactions")
}

async fn wait_checkpoint(env: &Env, within: Duration) {
    let head = env.store.head().await.expect("head");
    let deadline = tokio::time::Instant::now() + within;
    while support::checkpoint(env.pool(), "echo").await.is_none_or(|p| p < head) {
        assert!(tokio::time::Instant::now() < deadline, "the reactor did not reach {head}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Killed (task aborted mid-batch) and restarted many times: every trigger reacted at least
/// once, and exactly one reaction event per trigger reached the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reactions_survive_crashes_and_append_nothing_twice() {
    let env = Env::new().await;
    let ids = triggers(&env.store, 12, 50, None).await;
    let echo = Echo::new(env.store());
    let mut crashes = 0;
    for _ in 0..8 {
        let (_stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(run_reactor(env.pool().clone(), env.store(), echo.clone(), options(), shutdown));
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(30..150))).await;
        task.abort();
        let _ = task.await;
        crashes += 1;
    }
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_reactor(env.pool().clone(), env.store(), echo.clone(), options(), shutdown));
    wait_checkpoint(&env, Duration::from_secs(60)).await;
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");

    let calls = echo.calls.lock().expect("lock").len();
    assert!(calls >= ids.len(), "at least once: {calls} calls for {} triggers", ids.len());
    let mut reacted = reactions(env.pool()).await;
    reacted.sort();
    let mut expected: Vec<Uuid> = ids.iter().map(|id| events::ids::reaction_event(*id, "echo", 0)).collect();
    expected.sort();
    assert_eq!(reacted, expected, "one reaction event per trigger after {crashes} crashes");
}

/// One run: each stream's events react in log order, several streams at once, never more
/// than the configured concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reactions_keep_stream_order_with_bounded_concurrency() {
    let env = Env::new().await;
    triggers(&env.store, 10, 20, None).await;
    let echo = Echo::new(env.store());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_reactor(env.pool().clone(), env.store(), echo.clone(), options(), shutdown));
    wait_checkpoint(&env, Duration::from_secs(60)).await;
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");
    let calls = echo.calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 200, "no failure, no restart: each once");
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (stream, version) in calls {
        per_stream.entry(stream).or_default().push(version);
    }
    for (stream, versions) in per_stream {
        assert_eq!(versions, (1..=20).collect::<Vec<_>>(), "{stream} out of order");
    }
    let max = echo.max_running.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "concurrency {max}");
}

/// Concurrency 1 (the integration reactors): one event at a time, in log order across
/// streams, not only within each stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_one_reacts_in_log_order_across_streams() {
    let env = Env::new().await;
    triggers(&env.store, 5, 8, None).await;
    let echo = Echo::new(env.store());
    let (stop, shutdown) = watch::channel(false);
    let single = RunOptions { reactor_concurrency: 1, ..options() };
    let task = tokio::spawn(run_reactor(env.pool().clone(), env.store(), echo.clone(), single, shutdown));
    wait_checkpoint(&env, Duration::from_secs(60)).await;
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");
    let log = env.store.read_all(LogPosition::START, 1000).await.expect("log");
    let expected: Vec<(String, u64)> = log
        .iter()
        .filter(|e| e.event_type == "test.happened")
        .map(|e| (e.stream_id.to_string(), e.stream_version))
        .collect();
    assert_eq!(expected.len(), 40);
    assert_eq!(*echo.calls.lock().expect("lock"), expected);
    assert_eq!(echo.max_running.load(Ordering::SeqCst), 1);
}

/// A reaction that keeps failing holds the checkpoint before its event (other streams may
/// run ahead and run again later); status shows it; parking lets the reactor go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_reaction_holds_the_checkpoint_until_parked() {
    let env = Env::new().await;
    let ids = triggers(&env.store, 3, 4, Some((1, 1))).await;
    let poison = ids[3 + 1];
    let echo = Echo::new(env.store());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_reactor(env.pool().clone(), env.store(), echo.clone(), options(), shutdown));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = projections::status(env.pool(), &env.store, &[]).await.expect("status");
        let echo_status = status.projections.into_iter().find(|p| p.name == "echo");
        if let Some(s) = echo_status.filter(|s| s.error.as_ref().is_some_and(|e| e.attempts >= 2)) {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failure reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.kind, "reactor");
    assert_eq!(status.error.as_ref().map(|e| e.event_id), Some(poison));
    let log = env.store.read_all(LogPosition::START, 100).await.expect("log");
    let at = log.iter().position(|e| e.event_id == poison).expect("poison in the log");
    assert_eq!(status.checkpoint, log[at - 1].position, "checkpoint right before the failing event");
    // The failing stream stops at its event: its later events have not reacted.
    let calls = echo.calls.lock().expect("lock").clone();
    assert!(calls.iter().any(|(s, v)| s.starts_with("trigger-s1x") && *v == 2), "the failing event was tried");
    assert!(!calls.iter().any(|(s, v)| s.starts_with("trigger-s1x") && *v > 2), "nothing after it in its stream");

    park(env.pool(), "echo", poison, "known bad trigger").await.expect("park");
    wait_checkpoint(&env, Duration::from_secs(30)).await;
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");
    let reacted = reactions(env.pool()).await;
    assert_eq!(reacted.len(), 11, "every trigger but the parked one");
    assert!(!reacted.contains(&events::ids::reaction_event(poison, "echo", 0)));
    let status = projections::status(env.pool(), &env.store, &[]).await.expect("status");
    let echo_status = status.projections.iter().find(|p| p.name == "echo").expect("echo");
    assert!(echo_status.error.is_none());
    assert_eq!(echo_status.parked.len(), 1);
}
