//! The projector runtime against PostgreSQL: exactly-once, restart, leadership, failing
//! events and parking, the held-transaction case end to end, version changes.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use events::testing::contract::{event, stream, wait_visible};
use events::{AppendRequest, EventStore, ExpectedVersion, LogPosition};
use projections::{RunOptions, SharedProjection, park, run_projector, status};
use sqlx::Connection;
use support::{Audit, Env, applied, wait_applied};
use tokio::sync::watch;
use uuid::Uuid;

const TEST_TYPES: &[&str] = &["test.happened"];

fn audit() -> SharedProjection {
    Arc::new(Audit::new(TEST_TYPES))
}

fn fast() -> RunOptions {
    RunOptions {
        batch_size: 50,
        standby_retry: Duration::from_millis(200),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..RunOptions::default()
    }
}

async fn append(store: &dyn EventStore, payloads: &[&str]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for payload in payloads {
        let e = event(payload);
        ids.push(e.event_id);
        let appended = store.append(AppendRequest::new().stream(stream("t"), ExpectedVersion::NoStream, vec![e])).await;
        wait_visible(store, appended.expect("append").position()).await;
    }
    ids
}

async fn append_many(store: &dyn EventStore, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut last = LogPosition::START;
    for chunk in 0..n.div_ceil(100) {
        let events: Vec<_> = (0..100.min(n - chunk * 100)).map(|i| event(&format!("e{chunk}-{i}"))).collect();
        ids.extend(events.iter().map(|e| e.event_id));
        let appended =
            store.append(AppendRequest::new().stream(stream("bulk"), ExpectedVersion::NoStream, events)).await;
        last = last.max(appended.expect("append").position());
    }
    wait_visible(store, last).await;
    ids
}

fn spawn(
    env: &Env,
    projection: SharedProjection,
    options: RunOptions,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<projections::Result<()>>) {
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_projector(env.pool().clone(), env.store(), projection, options, shutdown));
    (stop, task)
}

/// Each event applied once, in log order, across a graceful stop and a restart; the lock is
/// released at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_applied_exactly_once_in_log_order_across_restarts() {
    let env = Env::new().await;
    let mut expected = append_many(&env.store, 730).await;
    let (stop, task) = spawn(&env, audit(), fast());
    assert_eq!(wait_applied(env.pool(), 730, Duration::from_secs(30)).await, expected);
    let _ = stop.send(true);
    task.await.expect("task").expect("graceful stop");
    let leader =
        projections::status::lock_holder(env.pool(), projections::leader::lock_key("projection", "audit")).await;
    assert!(leader.expect("lookup").is_none(), "the lock is released at shutdown");

    expected.extend(append_many(&env.store, 270).await);
    let (stop, task) = spawn(&env, audit(), fast());
    assert_eq!(wait_applied(env.pool(), 1000, Duration::from_secs(30)).await, expected, "resumed from the checkpoint");
    expected.extend(append(&env.store, &["live-1", "live-2"]).await);
    assert_eq!(wait_applied(env.pool(), 1002, Duration::from_secs(30)).await, expected, "then live");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(applied(env.pool()).await.len(), 1002, "nothing applied twice");
    let checkpoint = support::checkpoint(env.pool(), "audit").await.expect("checkpoint");
    assert_eq!(checkpoint, env.store.head().await.expect("head"));
    let _ = stop.send(true);
    task.await.expect("task").expect("graceful stop");
}

/// Two runners of one projection: one is active; when its session dies the standby takes
/// over within seconds, and nothing is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_active_instance_and_the_standby_takes_over() {
    let env = Env::new().await;
    let mut expected = append_many(&env.store, 300).await;
    let (stop_a, a) = spawn(&env, audit(), fast());
    let (stop_b, b) = spawn(&env, audit(), fast());
    wait_applied(env.pool(), 300, Duration::from_secs(30)).await;
    let key = projections::leader::lock_key("projection", "audit");
    for round in 0..3 {
        let leader = projections::status::lock_holder(env.pool(), key).await.expect("lookup").expect("a leader");
        assert!(leader.application_name.starts_with("agora-projector:"), "{leader:?}");
        // Only one session holds the lock.
        let holders: i64 = sqlx::query_scalar(
            "select count(*) from pg_locks where locktype = 'advisory' and granted and objid::bigint = $1",
        )
        .bind(i64::from(key as u32))
        .fetch_one(env.pool())
        .await
        .expect("holders");
        assert_eq!(holders, 1);
        // The leader's session dies (as when its process is killed).
        sqlx::query("select pg_terminate_backend($1)").bind(leader.pid).execute(env.pool()).await.expect("terminate");
        expected.extend(append_many(&env.store, 100).await);
        let seen = wait_applied(env.pool(), 300 + 100 * (round + 1), Duration::from_secs(30)).await;
        assert_eq!(seen, expected, "round {round}: every event once, in order");
        let next = projections::status::lock_holder(env.pool(), key).await.expect("lookup").expect("a new leader");
        assert_ne!(next.pid, leader.pid);
    }
    let _ = (stop_a.send(true), stop_b.send(true));
    a.await.expect("a").expect("a stops");
    b.await.expect("b").expect("b stops");
    assert_eq!(applied(env.pool()).await, expected);
}

/// A failing event stops the projection (status shows where and why) until it is parked;
/// then the projection goes on and status lists the parked event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_event_stops_the_projection_until_parked() {
    let env = Env::new().await;
    let first = append(&env.store, &["ok-1", "ok-2"]).await;
    let poison = append(&env.store, &["poison"]).await[0];
    let after = append(&env.store, &["ok-3"]).await;
    let (stop, task) = spawn(&env, audit(), fast());
    assert_eq!(wait_applied(env.pool(), 2, Duration::from_secs(30)).await, first, "applied up to the failing event");

    let projections_list = [audit()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let failure = loop {
        let status = status(env.pool(), &env.store, &projections_list).await.expect("status");
        let audit_status = status.projections.into_iter().find(|p| p.name == "audit").expect("audit");
        if let Some(error) = audit_status.error.filter(|e| e.attempts >= 2) {
            assert_eq!(audit_status.lag_events, 2, "stopped before the failing event");
            break error;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failure reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(failure.event_id, poison);
    assert_eq!(failure.stream_version, 1);
    assert!(failure.stream_id.starts_with("test-t_"), "{failure:?}");
    assert!(failure.error.contains("poisoned test event"), "{failure:?}");
    assert_eq!(applied(env.pool()).await, first, "nothing after it was applied");

    let parked = park(env.pool(), "audit", poison, "bad payload, see ticket 42").await.expect("park");
    assert_eq!(parked.event_id, poison);
    let mut expected = first.clone();
    expected.extend(after);
    assert_eq!(wait_applied(env.pool(), 3, Duration::from_secs(30)).await, expected);
    let status = status(env.pool(), &env.store, &projections_list).await.expect("status");
    let audit_status = status.projections.iter().find(|p| p.name == "audit").expect("audit");
    assert!(audit_status.error.is_none(), "failure cleared once past it");
    assert_eq!(audit_status.parked.len(), 1);
    assert_eq!(audit_status.parked[0].reason, "bad payload, see ticket 42");
    assert_eq!(audit_status.lag_events, 0);
    let json = serde_json::to_value(&status).expect("status serialises");
    assert!(json["projections"][0]["checkpoint"].is_string());

    assert!(matches!(park(env.pool(), "audit", Uuid::now_v7(), "x").await, Err(projections::Error::EventNotFound(_))));
    assert!(matches!(park(env.pool(), "nope", poison, "x").await, Err(projections::Error::UnknownProjection(_))));
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");
}

/// Invariant 4 end to end: an append held open while later appends commit and the
/// projector runs is applied once it commits, exactly once, in log order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_committed_late_is_still_applied() {
    let env = Env::new().await;
    let mut expected = append(&env.store, &["before"]).await;
    let (stop, task) = spawn(&env, audit(), fast());
    wait_applied(env.pool(), 1, Duration::from_secs(30)).await;

    let mut held = sqlx::PgConnection::connect(env.db.url()).await.expect("connect");
    sqlx::raw_sql("begin").execute(&mut held).await.expect("begin");
    let held_event = event("held");
    let held_id = held_event.event_id;
    env.store
        .append_in(&mut held, AppendRequest::new().stream(stream("held"), ExpectedVersion::NoStream, vec![held_event]))
        .await
        .expect("held append");
    let mut later = Vec::new();
    for i in 0..5 {
        let e = event(&format!("later-{i}"));
        later.push(e.event_id);
        env.store
            .append(AppendRequest::new().stream(stream("later"), ExpectedVersion::NoStream, vec![e]))
            .await
            .expect("later");
    }
    // The projector runs meanwhile; it must not pass the open transaction.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(applied(env.pool()).await, expected, "nothing past the open transaction yet");

    sqlx::raw_sql("commit").execute(&mut held).await.expect("commit");
    env.store.wake_subscribers();
    expected.push(held_id);
    expected.extend(later);
    let seen = wait_applied(env.pool(), 7, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(applied(env.pool()).await.len(), 7, "each once");
    assert_eq!(seen, expected, "the late commit comes first: it is older in log order");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");
}

/// A projector whose code version differs from the live generation's rebuilds it on start
/// (shadow + swap); an older build then stands down instead of writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_version_rebuilds_on_start_and_an_old_one_stands_down() {
    let env = Env::new().await;
    let expected = append_many(&env.store, 250).await;
    let (stop, task) = spawn(&env, audit(), fast());
    wait_applied(env.pool(), 250, Duration::from_secs(30)).await;
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");

    let v2: SharedProjection = Arc::new(Audit { version: 2, ..Audit::new(TEST_TYPES) });
    let (stop, task) = spawn(&env, v2.clone(), fast());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let live = projections::checkpoint::live(env.pool(), "audit").await.expect("live").expect("row");
        if live.version == 2 && live.position == env.store.head().await.expect("head") {
            assert_eq!(live.generation, 2);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not rebuilt: {live:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(applied(env.pool()).await, expected, "rebuilt rows, each once");
    let more = append(&env.store, &["after-upgrade"]).await;
    wait_applied(env.pool(), 251, Duration::from_secs(30)).await;
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");

    // The old build finds a newer generation: it writes nothing.
    let (stop, task) = spawn(&env, audit(), fast());
    append(&env.store, &["while-old-runs"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = applied(env.pool()).await;
    assert_eq!(rows.len(), 251);
    assert_eq!(rows.last(), more.last());
    let status = status(env.pool(), &env.store, &[audit()]).await.expect("status");
    assert!(status.projections[0].needs_rebuild, "status tells the old build's version differs");
    let _ = stop.send(true);
    task.await.expect("task").expect("stops");
}
