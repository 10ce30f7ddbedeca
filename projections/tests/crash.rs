//! Crash tests: projector PROCESSES killed with SIGKILL at random moments over a generated
//! history of more than 100,000 events, restarted each time; at the end the read models are
//! identical, row by row, to a clean rebuild, and no event was applied twice.
//!
//! The child process is this very test executable, re-run with `--exact crash_child` and
//! the database URL in `AGORA_CRASH_CHILD_DB`: `crash_child` then runs every projector
//! (plus an audit projection that records each application) until it is killed.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{EventStore, PgEventStore, PgStoreOptions};
use projections::{RebuildOptions, RunOptions, SharedProjection, rebuild, run_projectors};
use rand::Rng;
use sqlx::PgPool;
use support::{Audit, Env, digest, wait_caught_up};
use tokio::sync::watch;

const CHILD_ENV: &str = "AGORA_CRASH_CHILD_DB";
const NAMES: &[&str] = &["catalog", "accounts", "orders", "deliveries", "reviews", "audit"];

fn projections_with_audit(vault: events::privacy::KeyVault) -> Vec<SharedProjection> {
    let mut all = projections::all_projections(vault);
    all.push(Arc::new(Audit::market()));
    all
}

/// The child process's entry point: a no-op unless started by the crash tests.
#[test]
fn crash_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else { return };
    support::init_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let options = events::postgres::connect_options(&url).expect("url");
        let pool = events::postgres::pool_options(4).connect_with(options).await.expect("connect");
        let store = PgEventStore::new(pool.clone(), PgStoreOptions::default());
        let vault = events::privacy::KeyVault::new(pool.clone());
        let (_stop, shutdown) = watch::channel(false);
        let run = RunOptions { standby_retry: Duration::from_millis(300), ..RunOptions::default() };
        run_projectors(pool, Arc::new(store), projections_with_audit(vault), run, shutdown).await.expect("projectors");
    });
}

fn spawn_child(url: &str) -> Child {
    let exe = std::env::current_exe().expect("test executable");
    let output = || if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
    Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, url)
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("spawn the projector process")
}

fn kill(child: &mut Child) {
    // `Child::kill` is SIGKILL on Unix: no clean-up of any kind.
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Every event applied by the audit projection exactly once.
async fn assert_applied_once(pool: &PgPool, store: &dyn EventStore) {
    let duplicates: i64 = sqlx::query_scalar(
        "select count(*) from (select event_id from read_model.applied group by event_id having count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .expect("duplicates");
    assert_eq!(duplicates, 0, "events applied twice");
    let applied: i64 =
        sqlx::query_scalar("select count(*) from read_model.applied").fetch_one(pool).await.expect("count");
    let logged: i64 = sqlx::query_scalar("select count(*) from event_store.event").fetch_one(pool).await.expect("log");
    assert_eq!(applied, logged, "every event applied");
    let _ = store;
}

/// The live read models (audit excluded: its `seq` records the application order) equal a
/// clean rebuild of the same log.
async fn assert_equal_to_clean_rebuild(env: &Env) {
    let names = &NAMES[..5];
    let mut live = Vec::new();
    for name in names {
        live.push(digest(env.pool(), name).await);
    }
    assert!(live[0]["product"].0 > 500, "a real catalogue: {:?}", live[0]);
    let summary =
        rebuild(env.pool(), env.store(), &env.projections(), RebuildOptions::default()).await.expect("clean rebuild");
    assert_eq!(summary.projections.len(), 5);
    for (name, before) in names.iter().zip(live) {
        assert_eq!(digest(env.pool(), name).await, before, "{name} after kills differs from a clean rebuild");
    }
}

async fn more_history(env: &Env, events: u64, seed: u64) -> tokio::task::JoinHandle<projections::HistorySummary> {
    let (store, vault) = (env.store(), env.vault.clone());
    tokio::spawn(async move {
        let mut config = projections::HistoryConfig::for_events(events, seed);
        config.concurrency = 4;
        projections::generate_history(store, &vault, &config, |_| {}).await.expect("history during the kills")
    })
}

async fn checkpoints(pool: &PgPool) -> Vec<Option<events::LogPosition>> {
    let mut all = Vec::new();
    for name in NAMES {
        all.push(support::checkpoint(pool, name).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_projector_processes_end_like_a_clean_rebuild() {
    let started = Instant::now();
    let env = Env::new().await;
    // What is under test is the projector process dying, not PostgreSQL: commit without
    // waiting for the WAL flush to keep the history generation quick.
    let fast_commits = format!("alter database {} set synchronous_commit = off", env.db.name());
    sqlx::raw_sql(sqlx::AssertSqlSafe(fast_commits)).execute(env.pool()).await.expect("synchronous_commit");
    let history = env.history(100_000, 42).await;
    assert!(history.events >= 100_000);
    eprintln!("crash test: {} events generated in {:.1} s", history.events, history.seconds);
    let url = env.db.url().to_owned();
    let mut rng = rand::rng();

    // One process, killed at 12 random moments while it catches up and while appends go on.
    let appender = more_history(&env, 8_000, 43).await;
    let mut kills = 0;
    let mut progressed = 0;
    let mut previous = checkpoints(env.pool()).await;
    for _ in 0..12 {
        let mut child = spawn_child(&url);
        tokio::time::sleep(Duration::from_millis(rng.random_range(250..900))).await;
        kill(&mut child);
        kills += 1;
        let now = checkpoints(env.pool()).await;
        if now != previous {
            progressed += 1;
        }
        previous = now;
    }
    assert!(kills >= 10);
    assert!(progressed >= 5, "the killed processes made progress between kills ({progressed} of {kills})");
    let extra = appender.await.expect("appender");
    events::testing::contract::wait_visible(&env.store, extra.last_position).await;
    let mut child = spawn_child(&url);
    wait_caught_up(env.pool(), &env.store, NAMES, Duration::from_secs(120)).await;
    kill(&mut child);
    assert_applied_once(env.pool(), &env.store).await;
    assert_equal_to_clean_rebuild(&env).await;
    eprintln!("crash test: single process, {kills} kills, done at {:.1} s", started.elapsed().as_secs_f64());

    // Two processes: the active one is killed while appends go on; the standby continues;
    // nothing is applied twice (the audit projection records every application).
    let appender = more_history(&env, 12_000, 44).await;
    let mut children = [spawn_child(&url), spawn_child(&url)];
    let mut leader_kills = 0;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(400..1200))).await;
        // The process holding the catalog lock is the one to kill.
        let key = projections::leader::lock_key("projection", "catalog");
        let Some(leader) = projections::status::lock_holder(env.pool(), key).await.expect("leader") else { continue };
        let pid: u32 =
            leader.application_name.rsplit(':').next().and_then(|p| p.parse().ok()).expect("pid in the name");
        let Some(slot) = children.iter().position(|c| c.id() == pid) else { continue };
        kill(&mut children[slot]);
        leader_kills += 1;
        children[slot] = spawn_child(&url);
    }
    assert!(leader_kills >= 3, "killed the leader {leader_kills} times");
    let extra = appender.await.expect("appender");
    events::testing::contract::wait_visible(&env.store, extra.last_position).await;
    wait_caught_up(env.pool(), &env.store, NAMES, Duration::from_secs(120)).await;
    for child in &mut children {
        kill(child);
    }
    assert_applied_once(env.pool(), &env.store).await;
    assert_equal_to_clean_rebuild(&env).await;
    eprintln!(
        "crash test: two processes, {leader_kills} leader kills, done at {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
