//! `cargo run --release -p projections --example bench_rebuild -- [events] [seed]`
//!
//! The BENCH.md `rebuild` workload until the `agora bench rebuild` command wires it: a fresh
//! database `agora_bench_projections` on `DATABASE_URL`'s server, a generated history
//! (default 1,000,000 events), a timed rebuild of every read model, then a live-lag probe.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use events::privacy::KeyVault;
use events::{EventStore, PgEventStore, PgStoreOptions};
use projections::bench::{bench_rebuild, peak_rss_kib, probe_live_lag};
use projections::{HistoryConfig, RebuildOptions};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

async fn rebuild_only() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BENCH_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/agora_bench_projections".into());
    let pool = events::postgres::pool_options(24).connect_with(events::postgres::connect_options(&url)?).await?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), PgStoreOptions::default()));
    let all = projections::all_projections(KeyVault::new(pool.clone()));
    let names = std::env::var("REBUILD_NAMES").unwrap_or_default();
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    let chosen = projections::read_models::select(&all, &names)?;
    let summary = projections::rebuild(&pool, store, &chosen, RebuildOptions::default()).await?;
    for p in &summary.projections {
        println!(
            "rebuild {:<10} {:>9} events {:>8} applied {:>6.1} s busy {:>9.0} events/s",
            p.name, p.events, p.applied, p.seconds, p.events_per_s
        );
    }
    println!("{summary}");
    println!("peak RSS: {} MiB", peak_rss_kib().unwrap_or(0) / 1024);
    Ok(())
}

async fn probe_only() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BENCH_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/agora_bench_projections".into());
    let pool = events::postgres::pool_options(24).connect_with(events::postgres::connect_options(&url)?).await?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), PgStoreOptions::default()));
    let lag = probe_live_lag(&pool, store, projections::all_projections(KeyVault::new(pool.clone())), 200).await?;
    println!("{}", serde_json::json!(lag));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    if events == 0 {
        // Lag probe only, on the database a previous run left.
        return probe_only().await;
    }
    if std::env::var_os("REBUILD_ONLY").is_some() {
        // Rebuild again over the history a previous run left.
        return rebuild_only().await;
    }
    let seed: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = std::env::var("BENCH_DATABASE").unwrap_or_else(|_| "agora_bench_projections".into());
    let admin = PgConnectOptions::from_str(&server)?.database("postgres");
    let mut conn = admin.connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop database if exists {name} with (force)")))
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}"))).execute(&mut conn).await?;
    conn.close().await?;
    let options = admin.database(&name).application_name("agora-bench");
    let pool = events::postgres::pool_options(24).connect_with(options).await?;
    events::postgres::migrate(&pool).await?;
    let store = Arc::new(PgEventStore::new(pool.clone(), PgStoreOptions::default()));
    let vault = KeyVault::new(pool.clone());
    let mut history = HistoryConfig::for_events(events, seed);
    history.concurrency = 64;
    let last = std::sync::Mutex::new(Instant::now());
    let progress = |p: projections::HistoryProgress| {
        let mut last = last.lock().expect("lock");
        if last.elapsed().as_secs() >= 10 {
            *last = Instant::now();
            eprintln!("history: {} / {} events, {:.0} events/s", p.events_done, p.events_total, p.events_per_s);
        }
    };
    let rebuild_progress: projections::rebuild::ProgressFn = Arc::new(|p: projections::Progress| {
        eprintln!("rebuild: {} / {} events, {:.0} events/s", p.events_done, p.events_total, p.events_per_s);
    });
    let rebuild = RebuildOptions {
        progress: Some(rebuild_progress),
        progress_every: std::time::Duration::from_secs(5),
        ..RebuildOptions::default()
    };
    let store_dyn: Arc<dyn EventStore> = store.clone();
    let report = bench_rebuild(&pool, store_dyn.clone(), &vault, &history, rebuild, progress).await?;
    println!(
        "history: {} events in {} appends, {:.1} s, {:.0} events/s",
        report.history.events, report.history.appends, report.history.seconds, report.history.events_per_s
    );
    for p in &report.rebuild.projections {
        println!(
            "rebuild {:<10} {:>9} events {:>8} applied {:>6.1} s busy {:>9.0} events/s",
            p.name, p.events, p.applied, p.seconds, p.events_per_s
        );
    }
    println!("{}", report.rebuild);
    println!("peak RSS after rebuild: {} MiB", report.peak_rss_kib.unwrap_or(0) / 1024);
    let lag = probe_live_lag(&pool, store_dyn, projections::all_projections(vault), 200).await?;
    println!(
        "live lag (append -> read model, 200 samples): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lag.p50_ms, lag.p99_ms, lag.max_ms
    );
    println!("peak RSS: {} MiB", peak_rss_kib().unwrap_or(0) / 1024);
    println!("{}", serde_json::json!({ "workload": "rebuild", "report": report, "live_lag": lag }));
    Ok(())
}
