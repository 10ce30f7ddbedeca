//! `rebuild` workload (BENCH.md): a realistic marketplace history of `--events` events
//! (default 1,000,000: accounts, products, price changes, restocks, orders, payments,
//! deliveries, reviews, erasures), then `rebuild --all`: every PostgreSQL read model (shadow
//! generations, atomic swap) and the search index (a new index generation), each timed.
//!
//! The history is appended through the event store by `projections::generate_history`, not
//! through HTTP as `agora seed` does: a million events through the command path would take
//! most of an hour on two cores (argon2 alone), and the rebuild only reads the log.

use std::sync::Arc;
use std::time::Instant;

use events::privacy::KeyVault;
use events::{EventStore, PgEventStore, PgStoreOptions};
use serde_json::json;

use super::{Report, round1};
use crate::database;

pub async fn rebuild(url: &str, events: u64, seed: u64, report: &Report) -> anyhow::Result<()> {
    database::recreate_database(url).await?;
    let pool = database::connect(url, 24).await?;
    events::postgres::migrate(&pool).await?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), PgStoreOptions::default()));
    let vault = KeyVault::new(pool.clone());
    let mut history = projections::HistoryConfig::for_events(events, seed);
    history.concurrency = 64;

    tracing::info!(events, "generating the marketplace history");
    let last = std::sync::Mutex::new(Instant::now());
    let progress = |p: projections::HistoryProgress| {
        if let Ok(mut last) = last.lock()
            && last.elapsed().as_secs() >= 5
        {
            *last = Instant::now();
            tracing::info!(?p, "history");
        }
    };
    let bench = projections::bench::bench_rebuild(
        &pool,
        store.clone(),
        &vault,
        &history,
        projections::RebuildOptions::default(),
        progress,
    )
    .await?;
    let generated = &bench.history;
    tracing::info!(events = generated.events, seconds = generated.seconds, "history generated");
    for p in &bench.rebuild.projections {
        report.line(
            format!(
                "rebuild  {:<12} {:>9} events {:>7.1} s {:>9.0} events/s",
                p.name, p.events, p.seconds, p.events_per_s
            ),
            json!({ "workload": "rebuild", "projection": p.name, "events": p.events, "seconds": round1(p.seconds),
                    "events_per_s": p.events_per_s.round() }),
        );
    }

    let dir = std::env::temp_dir().join(format!("agora-bench-index-{}", std::process::id()));
    let started = Instant::now();
    let index = search::rebuild(store.clone(), &dir, |_, _| {}).await?;
    let index_seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    report.line(
        format!(
            "rebuild  {:<12} {:>9} events {:>7.1} s {:>9.0} events/s ({} products)",
            "search",
            index.events,
            index_seconds,
            index.events as f64 / index_seconds,
            index.products
        ),
        json!({ "workload": "rebuild", "projection": "search", "events": index.events, "seconds": round1(index_seconds),
                "events_per_s": (index.events as f64 / index_seconds).round(), "products": index.products }),
    );

    let read_models = &bench.rebuild;
    let total_seconds = read_models.seconds + index_seconds;
    let rss_mib = projections::bench::peak_rss_kib().map(|k| k / 1024);
    report.line(
        format!(
            "rebuild  {:<12} {:>9} events {:>7.1} s {:>9.0} events/s (read models {:.0} events/s); peak RSS {} MiB",
            "all",
            read_models.events,
            total_seconds,
            read_models.events as f64 / total_seconds,
            read_models.events_per_s,
            rss_mib.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
        ),
        json!({ "workload": "rebuild", "projection": "all", "events": read_models.events, "seconds": round1(total_seconds),
                "events_per_s": (read_models.events as f64 / total_seconds).round(),
                "read_models_events_per_s": read_models.events_per_s.round(), "peak_rss_mib": rss_mib }),
    );

    // Live: append to read model, with the projectors running.
    let lag = projections::bench::probe_live_lag(&pool, store, projections::all_projections(vault), 200).await?;
    report.line(
        format!("live lag append -> read model: p50 {:.1} ms, p99 {:.1} ms ({} samples)", lag.p50_ms, lag.p99_ms, lag.samples),
        json!({ "workload": "rebuild", "live_lag_p50_ms": lag.p50_ms, "live_lag_p99_ms": lag.p99_ms, "samples": lag.samples }),
    );
    Ok(())
}
