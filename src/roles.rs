//! What each role starts beyond the shared HTTP server: projectors and process managers
//! (`project`), the search indexer and the GraphQL API (`query`).

use std::sync::Arc;
use std::time::Duration;

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
    settings: &Settings,
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
    start_integration(settings, services, &options, shutdown, background)
}

/// Integration with the outside world: the JetStream relay (when NATS_URL is set), the
/// webhook outbox and its dispatcher, the notifier and its sender (SMTP or the log). The
/// reactors run one event at a time in log order; the senders in every project process
/// (leases keep them from sending anything twice at once).
fn start_integration(
    settings: &Settings,
    services: &Services,
    options: &projections::RunOptions,
    shutdown: watch::Receiver<bool>,
    background: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    use projections::integration::{
        NatsRelay, Notifier, WebhookOutbox, in_order, run_notification_sender, run_webhook_dispatcher,
    };
    let in_order = in_order(options.clone());
    let channel = crate::notify::channel(settings)?;
    let mut reactors: Vec<Arc<dyn events::reactor::Reactor>> = vec![
        Arc::new(WebhookOutbox::new(services.pool.clone())),
        Arc::new(Notifier::new(services.pool.clone(), services.vault.clone(), settings.notification_options())),
    ];
    match settings.relay() {
        Some(config) => {
            tracing::info!(url = %config.url, stream = %config.stream, prefix = %config.subject_prefix, "integration relay on");
            reactors.push(Arc::new(NatsRelay::new(config)));
        }
        None => tracing::info!("NATS_URL is not set: integration events are not published to a broker"),
    }
    for reactor in reactors {
        let (pool, store, o, s) = (services.pool.clone(), services.store(), in_order.clone(), shutdown.clone());
        background.spawn(async move {
            projections::run_reactor(pool, store, reactor, o, s).await.context("integration reactor")
        });
    }
    let (pool, vault, s) = (services.pool.clone(), services.vault.clone(), shutdown.clone());
    let webhooks = settings.webhook_options();
    background
        .spawn(async move { run_webhook_dispatcher(pool, vault, webhooks, s).await.context("webhook dispatcher") });
    let (pool, vault) = (services.pool.clone(), services.vault.clone());
    let notifications = settings.notification_options();
    background.spawn(async move {
        run_notification_sender(pool, vault, channel, notifications, shutdown).await.context("notification sender")
    });
    Ok(())
}

/// The query side: the search index of this process, kept up to date from the log, and the
/// GraphQL API (`/graphql`, GraphiQL, subscriptions on `/graphql/ws`) over the read models
/// (`READ_DATABASE_URL`, a small pool of its own) and that index. Ready while every read
/// model and the index are within `READY_MAX_LAG_SECONDS` of the log.
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
    let (store, indexed, stop) = (services.store(), index.clone(), shutdown.clone());
    background.spawn(async move {
        search::run(store, indexed, crate::startup::wait_for(stop)).await.context("search indexer")
    });

    let read_url = settings.read_database_url();
    let read = query::ReadModels::connect_lazy(read_url, settings.db_pool_size.clamp(2, 16)).with_context(|| {
        format!("READ_DATABASE_URL is not a PostgreSQL URL: {}", crate::database::redacted(read_url))
    })?;
    let options = query::QueryOptions { consistency_wait: settings.consistency_wait(), ..Default::default() };
    let api = query::QueryApi::new(read, index, services.store(), services.ctx.tokens.clone(), options);

    // Subscriptions end (cleanly, with `complete`) when the process shuts down.
    let closing = api.clone();
    background.spawn(async move {
        crate::startup::wait_for(shutdown).await;
        closing.shutdown();
        Ok(())
    });

    let max_lag = Duration::from_secs(settings.ready_max_lag_seconds);
    let (ready_api, ready_store) = (api.clone(), services.store());
    let lag: Check = Arc::new(move || {
        let (api, store) = (ready_api.clone(), ready_store.clone());
        Box::pin(async move { query::readiness::check(&api, &*store, max_lag).await })
    });
    Ok((query::router(api), vec![("read_models", lag)]))
}
