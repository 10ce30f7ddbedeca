//! What each role starts beyond the shared HTTP server: projectors and process managers
//! (`project`), the search indexer and the GraphQL API (`query`).

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::ops::Check;
use crate::startup::Services;

/// Every projector and process manager, each the one active instance across processes
/// (advisory locks): others stand by.
pub async fn start_projections(
    _settings: &Settings,
    services: &Services,
    shutdown: watch::Receiver<bool>,
    background: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    projections::migrate(&services.pool).await.context("projections migrations")?;
    let options = projections::RunOptions::default();
    let all = projections::all_projections(services.vault.clone());
    let (pool, store) = (services.pool.clone(), services.store());
    let (o, s) = (options.clone(), shutdown.clone());
    background.spawn(async move { projections::run_projectors(pool, store, all, o, s).await.context("projectors") });
    for reactor in command::reactors(&services.ctx) {
        let (pool, store, o, s) = (services.pool.clone(), services.store(), options.clone(), shutdown.clone());
        background.spawn(async move {
            projections::run_reactor(pool, store, reactor, o, s).await.context("process manager")
        });
    }
    Ok(())
}

/// The query side: the search index of this process, kept up to date from the log.
pub async fn query_routes(
    settings: &Settings,
    services: &Services,
    shutdown: watch::Receiver<bool>,
    background: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<(Router, Vec<(&'static str, Check)>)> {
    std::fs::create_dir_all(&settings.index_dir)
        .with_context(|| format!("cannot create the index directory {} (INDEX_DIR)", settings.index_dir.display()))?;
    let index = search::ProductIndex::open(&settings.index_dir)
        .with_context(|| format!("cannot open the search index in {}", settings.index_dir.display()))?;
    let (store, indexed) = (services.store(), index.clone());
    background.spawn(async move {
        search::run(store, indexed, crate::startup::wait_for(shutdown)).await.context("search indexer")
    });
    let _ = Arc::new(index);
    Ok((Router::new(), Vec::new()))
}
