//! `agora bench rebuild` (BENCH.md): generate a marketplace history, then time a rebuild of
//! every read model; and a live-lag probe (append to read-model commit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::privacy::KeyVault;
use events::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::history::{HistoryConfig, HistoryProgress, HistorySummary, generate_history};
use crate::projection::SharedProjection;
use crate::rebuild::{RebuildOptions, RebuildSummary, rebuild};
use crate::runtime::RunOptions;
use crate::{Error, Result, all_projections, drop_all, ensure_live, migrate, run_projectors};

#[derive(Debug, Clone, Serialize)]
pub struct RebuildBenchReport {
    pub history: HistorySummary,
    pub rebuild: RebuildSummary,
    /// Peak resident memory of this process (`VmHWM`), in KiB.
    pub peak_rss_kib: Option<u64>,
}

/// On a database with the event store migrated and (for fair figures) an empty log:
/// generate `history`, then rebuild every read model from it.
pub async fn bench_rebuild(
    pool: &PgPool,
    store: Arc<dyn EventStore>,
    vault: &KeyVault,
    history: &HistoryConfig,
    rebuild_options: RebuildOptions,
    progress: impl Fn(HistoryProgress) + Send + Sync,
) -> Result<RebuildBenchReport> {
    migrate(pool).await?;
    drop_all(pool).await?;
    let generated = generate_history(store.clone(), vault, history, progress).await?;
    wait_visible(&*store, generated.last_position).await?;
    let projections = all_projections(vault.clone());
    for projection in &projections {
        ensure_live(pool, &**projection).await?;
    }
    let summary = rebuild(pool, store, &projections, rebuild_options).await?;
    Ok(RebuildBenchReport { history: generated, rebuild: summary, peak_rss_kib: peak_rss_kib() })
}

async fn wait_visible(store: &dyn EventStore, position: events::LogPosition) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.head().await? < position {
        if Instant::now() > deadline {
            return Err(Error::History(format!("{position} did not become visible within 60 s")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Clone, Serialize)]
pub struct LagProbe {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Time until the event was visible to log readers at all (held back by any open write
    /// transaction in the cluster: invariant 4): the part of the lag no projector can beat.
    pub visible_p50_ms: f64,
    pub visible_p99_ms: f64,
}

/// Live lag: run the projectors, append `samples` product listings one after another and
/// time each from the append call until its row is readable in `read_model.product`.
pub async fn probe_live_lag(
    pool: &PgPool,
    store: Arc<dyn EventStore>,
    projections: Vec<SharedProjection>,
    samples: usize,
) -> Result<LagProbe> {
    let (stop, shutdown) = watch::channel(false);
    let runner =
        tokio::spawn(run_projectors(pool.clone(), store.clone(), projections, RunOptions::default(), shutdown));
    // Let the projectors catch up first.
    let head = store.head().await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let live = crate::checkpoint::live(pool, "catalog").await?;
        if live.is_some_and(|l| l.position >= head) {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::History("the catalog projector did not catch up".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lags = Vec::with_capacity(samples);
    let mut visible = Vec::with_capacity(samples);
    for _ in 0..samples {
        let product_id = Uuid::now_v7();
        let listed = events::domain::catalog::ProductEvent::Listed(events::domain::catalog::ProductListed {
            product_id,
            vendor_id: Uuid::nil(),
            title: "lag probe".into(),
            description: "measures append to read model".into(),
            category: "probe".into(),
            brand: "probe".into(),
            price_cents: 100,
            currency: "EUR".into(),
            stock: 1,
        });
        let request = AppendRequest::new().stream(
            StreamId::new("product", product_id),
            ExpectedVersion::NoStream,
            vec![NewEvent::from_domain(&listed, EventMetadata::default())],
        );
        let started = Instant::now();
        let position = store.append(request).await?.position();
        let mut visible_after = None;
        loop {
            if visible_after.is_none() && store.head().await? >= position {
                visible_after = Some(started.elapsed());
            }
            let seen: bool =
                sqlx::query_scalar("select exists (select 1 from read_model.product where product_id = $1)")
                    .bind(product_id)
                    .fetch_one(pool)
                    .await?;
            if seen {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(Error::History("a probe event was not projected within 30 s".into()));
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lags.push(started.elapsed());
        visible.push(visible_after.unwrap_or_else(|| started.elapsed()));
    }
    let _ = stop.send(true);
    let _ = runner.await;
    lags.sort_unstable();
    visible.sort_unstable();
    let percentile = |all: &[Duration], p: f64| {
        let rank = ((p / 100.0) * (all.len().saturating_sub(1)) as f64).round() as usize;
        all.get(rank).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(LagProbe {
        samples: lags.len(),
        p50_ms: percentile(&lags, 50.0),
        p99_ms: percentile(&lags, 99.0),
        max_ms: percentile(&lags, 100.0),
        visible_p50_ms: percentile(&visible, 50.0),
        visible_p99_ms: percentile(&visible, 99.0),
    })
}
