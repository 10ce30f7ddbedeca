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
    /// Read models, personal-data keys, projection bookkeeping (and, by default, events).
    pub pool: PgPool,
    /// The event store `EVENT_STORE` chose.
    pub store: Arc<dyn EventStore>,
    /// The PostgreSQL event store, when it is the one in use (for its connection metrics).
    pub pg_store: Option<PgEventStore>,
    pub vault: KeyVault,
    pub ctx: Arc<command::Context>,
}

impl Services {
    pub fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
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
    // Checked before PostgreSQL is touched: a bad EVENTSTORE_URL is the error to report.
    let kurrent = event_store_url(settings)?;
    let pool = migrate(settings).await?;
    let (store, pg_store): (Arc<dyn EventStore>, Option<PgEventStore>) = match kurrent {
        None => {
            let atomic_multi_stream = settings.multi_stream_appends == crate::config::Switch::On;
            let store = PgEventStore::new(pool.clone(), PgStoreOptions { atomic_multi_stream, ..Default::default() });
            (Arc::new(store.clone()), Some(store))
        }
        Some(url) => (connect_kurrent(url).await?, None),
    };
    let vault = KeyVault::new(pool.clone());
    let tokens = TokenKeys::new(jwt_secret, chrono::Duration::hours(settings.token_ttl_hours));
    let gateway = Arc::new(SandboxGateway::new());
    let mut ctx = command::Context::new(store.clone(), vault.clone(), tokens, gateway);
    ctx.checkout_hold = settings.checkout_hold();
    ctx.fail_point = settings.fail_point.clone();
    Ok(Services { pool, store, pg_store, vault, ctx: Arc::new(ctx) })
}

/// `EVENTSTORE_URL` when `EVENT_STORE=eventstoredb`, or `None` for PostgreSQL.
fn event_store_url(settings: &Settings) -> anyhow::Result<Option<&str>> {
    match (settings.event_store, settings.eventstore_url.as_deref()) {
        (crate::config::EventStoreKind::Postgres, _) => Ok(None),
        (crate::config::EventStoreKind::Eventstoredb, None | Some("")) => anyhow::bail!(
            "EVENT_STORE=eventstoredb needs EVENTSTORE_URL, e.g. EVENTSTORE_URL=esdb://127.0.0.1:2113?tls=false"
        ),
        (crate::config::EventStoreKind::Eventstoredb, Some(url)) => Ok(Some(url)),
    }
}

#[cfg(feature = "kurrentdb")]
async fn connect_kurrent(url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    let store = events::KurrentStore::connect(url, std::time::Duration::from_secs(10)).await?;
    tracing::info!("event store: KurrentDB (no atomic multi-stream appends: checkout reserves stock per product)");
    Ok(Arc::new(store))
}

#[cfg(not(feature = "kurrentdb"))]
async fn connect_kurrent(_url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    anyhow::bail!(
        "EVENT_STORE=eventstoredb needs the `kurrentdb` cargo feature, which this build of agora was compiled without"
    )
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
    run_until(settings, roles, generate_secret, bound, shutdown_signal()).await
}

/// `run_with`, stopping when `shutdown` turns true (in-process servers of the benchmarks,
/// which must stop before the next one starts).
pub async fn run_until(
    settings: Settings,
    roles: Roles,
    generate_secret: bool,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let metrics = crate::telemetry::metrics()?;
    let secret = settings.jwt_secret(generate_secret)?;
    let services = services(&settings, &secret).await?;
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

    let (main_pool, pg_store) = (services.pool.clone(), services.pg_store.clone());
    let pools: Vec<(&'static str, ops::PoolGauge)> = vec![
        (
            "main",
            Arc::new(move || {
                let (size, idle) = (main_pool.size() as usize, main_pool.num_idle());
                let max = main_pool.options().get_max_connections() as usize;
                events::postgres::PoolUsage { in_use: size.saturating_sub(idle), idle, max }
            }),
        ),
        (
            "event_store",
            Arc::new(move || {
                pg_store
                    .as_ref()
                    .map_or(events::postgres::PoolUsage { in_use: 0, idle: 0, max: 0 }, |s| s.connection_usage())
            }),
        ),
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
