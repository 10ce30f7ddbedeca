//! Wiring the roles of the one binary: connect, migrate, build the router of the roles this
//! process plays, start their background work, serve until SIGTERM / Ctrl-C, shut down
//! cleanly.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use command::payments::SandboxGateway;
use events::identity::TokenKeys;
use events::privacy::KeyVault;
use events::{EventStore, PgEventStore, PgStoreOptions};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::config::Settings;
use crate::database;
use crate::ops::{self, Check, Ops};

/// Which roles this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub command: bool,
    pub query: bool,
    pub project: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { command: true, query: true, project: true };
    pub const COMMAND: Roles = Roles { command: true, query: false, project: false };
    pub const QUERY: Roles = Roles { command: false, query: true, project: false };
    pub const PROJECT: Roles = Roles { command: false, query: false, project: true };

    fn names(self) -> String {
        let mut names = Vec::new();
        if self.command {
            names.push("command");
        }
        if self.query {
            names.push("query");
        }
        if self.project {
            names.push("project");
        }
        names.join("+")
    }
}

/// The connections and shared services every role uses.
#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub store: PgEventStore,
    pub vault: KeyVault,
    pub ctx: Arc<command::Context>,
}

impl Services {
    pub fn store(&self) -> Arc<dyn EventStore> {
        Arc::new(self.store.clone())
    }
}

/// Create the database if missing, apply every crate's migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<PgPool> {
    database::ensure_database(&settings.database_url).await?;
    let pool = database::connect(&settings.database_url, settings.db_pool_size).await?;
    events::postgres::migrate(&pool).await.context("event store migrations")?;
    Ok(pool)
}

/// Connect (migrating first) and build the services.
pub async fn services(settings: &Settings, jwt_secret: &[u8]) -> anyhow::Result<Services> {
    if settings.event_store != crate::config::EventStoreKind::Postgres {
        anyhow::bail!("EVENT_STORE={:?} is not available in this build yet; use postgres", settings.event_store);
    }
    let pool = migrate(settings).await?;
    let store = PgEventStore::new(pool.clone(), PgStoreOptions::default());
    let vault = KeyVault::new(pool.clone());
    let tokens = TokenKeys::new(jwt_secret, chrono::Duration::hours(settings.token_ttl_hours));
    let gateway = Arc::new(SandboxGateway::new());
    let ctx = Arc::new(command::Context::new(Arc::new(store.clone()), vault.clone(), tokens, gateway));
    Ok(Services { pool, store, vault, ctx })
}

/// Resolves on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            () = terminate => {}
        }
        tracing::info!("shutting down: no new requests, finishing in-flight work");
        let _ = tx.send(true);
    });
    rx
}

pub async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// `agora serve`: every role; a made-up token key if none is configured; the demo catalogue
/// in an empty store.
pub async fn serve(settings: Settings, demo: bool) -> anyhow::Result<()> {
    if demo {
        // The demo loader issues no tokens: any key will do here.
        let services = services(&settings, &[0u8; 32]).await?;
        if crate::demo::load_if_empty(&services).await? {
            eprintln!(
                "Demo accounts (password \"{}\"): buyer@agora.example, vendor1@agora.example .. vendor5@agora.example, \
                 carrier@agora.example, admin@agora.example",
                crate::demo::PASSWORD
            );
        }
        services.pool.close().await;
    }
    run_with(settings, Roles::ALL, true, None).await
}

/// Run the given roles until shutdown.
pub async fn run(settings: Settings, roles: Roles, generate_secret: bool) -> anyhow::Result<()> {
    run_with(settings, roles, generate_secret, None).await
}

/// `run`, telling `bound` the address it listens on (for in-process servers on port 0).
pub async fn run_with(
    settings: Settings,
    roles: Roles,
    generate_secret: bool,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    let metrics = crate::telemetry::metrics()?;
    let secret = settings.jwt_secret(generate_secret)?;
    let services = services(&settings, &secret).await?;
    let shutdown = shutdown_signal();
    let mut background = tokio::task::JoinSet::new();

    let mut router = Router::new();
    let mut checks: Vec<(&'static str, Check)> = Vec::new();
    let pool = services.pool.clone();
    checks.push((
        "database",
        Arc::new(move || {
            let pool = pool.clone();
            Box::pin(async move {
                sqlx::query("select 1")
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("database unreachable: {e}"))
            })
        }),
    ));

    if roles.command {
        let (commands, _) = command::http::router(services.ctx.clone());
        router = router.merge(commands);
    }
    if roles.project {
        crate::roles::start_projections(&settings, &services, shutdown.clone(), &mut background).await?;
    }
    if roles.query {
        let (queries, query_checks) =
            crate::roles::query_routes(&settings, &services, shutdown.clone(), &mut background).await?;
        router = router.merge(queries);
        checks.extend(query_checks);
    }

    let (main_pool, store) = (services.pool.clone(), services.store.clone());
    let pools: Vec<(&'static str, ops::PoolGauge)> = vec![
        (
            "main",
            Arc::new(move || {
                let (size, idle) = (main_pool.size() as usize, main_pool.num_idle());
                let max = main_pool.options().get_max_connections() as usize;
                events::postgres::PoolUsage { in_use: size.saturating_sub(idle), idle, max }
            }),
        ),
        ("event_store", Arc::new(move || store.connection_usage())),
    ];
    let router =
        ops::layers(router.merge(ops::routes(Ops { metrics, checks, pools })).fallback(command::http::not_found));
    let listener = tokio::net::TcpListener::bind(settings.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", settings.listen_addr))?;
    let address = listener.local_addr()?;
    tracing::info!(roles = %roles.names(), %address, "agora is up");
    match bound {
        Some(bound) => {
            let _ = bound.send(address);
        }
        None => print_urls(address, roles),
    }

    let grace = settings.shutdown_grace();
    // Small JSON responses must not wait for Nagle's algorithm and delayed ACKs.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
        let _ = stream.set_nodelay(true);
    });
    let mut server = tokio::spawn(
        axum::serve(listener, router.into_make_service())
            .with_graceful_shutdown(wait_for(shutdown.clone()))
            .into_future(),
    );
    tokio::select! {
        result = &mut server => result?.context("HTTP server")?,
        () = wait_for(shutdown.clone()) => match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => result?.context("HTTP server")?,
            Err(_) => {
                tracing::warn!(seconds = grace.as_secs(), "in-flight requests did not finish in time; closing them");
                server.abort();
            }
        },
    }
    // Projectors finish or abandon their current batch (no partial commit) and stop.
    while let Some(done) = background.join_next().await {
        if let Ok(Err(error)) = done {
            tracing::warn!(error = %format!("{error:#}"), "background task ended with an error");
        }
    }
    services.pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn print_urls(address: std::net::SocketAddr, roles: Roles) {
    let base = format!("http://{address}");
    let mut lines = vec![format!("Agora ({}) is running on {base}", roles.names())];
    if roles.query {
        lines.push(format!("  GraphiQL  {base}/graphql"));
    }
    if roles.command {
        lines.push(format!("  OpenAPI   {base}/api/v1/openapi.json"));
    }
    lines.push(format!("  metrics   {base}/metrics   health {base}/healthz   ready {base}/readyz"));
    eprintln!("{}", lines.join("\n"));
}
