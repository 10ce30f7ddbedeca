//! Shared helpers of the projections tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::privacy::KeyVault;
use events::testing::TestDatabase;
use events::{EventStore, LogPosition, PgEventStore, PgStoreOptions};
use projections::{HistoryConfig, SharedProjection};
use sqlx::PgPool;

pub struct Env {
    pub db: TestDatabase,
    pub store: PgEventStore,
    pub vault: KeyVault,
}

impl Env {
    pub async fn new() -> Self {
        init_logs();
        let db = TestDatabase::with_event_store().await;
        projections::migrate(db.pool()).await.expect("projection migrations");
        let store = PgEventStore::new(db.pool().clone(), PgStoreOptions::default());
        let vault = KeyVault::new(db.pool().clone());
        Self { db, store, vault }
    }

    pub fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    pub fn store(&self) -> Arc<dyn EventStore> {
        Arc::new(self.store.clone())
    }

    pub fn projections(&self) -> Vec<SharedProjection> {
        projections::all_projections(self.vault.clone())
    }

    /// Generate a history of about `events` events and wait until it is visible.
    pub async fn history(&self, events: u64, seed: u64) -> projections::HistorySummary {
        let mut config = HistoryConfig::for_events(events, seed);
        config.concurrency = 48;
        // A store with a pool of its own, as wide as the appends in flight.
        let pool = events::postgres::pool_options(24)
            .connect_with(events::postgres::connect_options(self.db.url()).expect("url"))
            .await
            .expect("history pool");
        let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool, PgStoreOptions::default()));
        let summary = projections::generate_history(store, &self.vault, &config, |_| {}).await.expect("history");
        events::testing::contract::wait_visible(&self.store, summary.last_position).await;
        summary
    }
}

/// Logs in tests only with `TEST_LOG` set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The live checkpoint of `name`.
pub async fn checkpoint(pool: &PgPool, name: &str) -> Option<LogPosition> {
    projections::checkpoint::live(pool, name).await.expect("checkpoint").map(|c| c.position)
}

/// Wait until every named projection's live checkpoint reaches the head of the log.
pub async fn wait_caught_up(pool: &PgPool, store: &dyn EventStore, names: &[&str], within: Duration) {
    let head = store.head().await.expect("head");
    let deadline = Instant::now() + within;
    for name in names {
        loop {
            if checkpoint(pool, name).await.is_some_and(|p| p >= head) {
                break;
            }
            assert!(Instant::now() < deadline, "{name} did not reach {head} within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub const ALL: &[&str] = &["catalog", "accounts", "orders", "deliveries", "reviews"];

/// Row count and a digest of the rows of every table of the live generation of `name`.
pub async fn digest(pool: &PgPool, name: &str) -> BTreeMap<String, (i64, String)> {
    let live = projections::checkpoint::live(pool, name).await.expect("live").expect("a live generation");
    let schema = projections::projection::schema_name(name, live.generation);
    digest_schema(pool, &schema).await
}

pub async fn digest_schema(pool: &PgPool, schema: &str) -> BTreeMap<String, (i64, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = $1 order by table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("tables");
    let mut out = BTreeMap::new();
    for table in tables {
        let sql = format!(
            "select count(*), coalesce(md5(string_agg(t::text, E'\\n' order by t::text)), '') from {schema}.{table} t"
        );
        let row: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.expect("digest");
        out.insert(table, row);
    }
    out
}

pub async fn digest_all(pool: &PgPool) -> BTreeMap<String, BTreeMap<String, (i64, String)>> {
    let mut all = BTreeMap::new();
    for name in ALL {
        all.insert((*name).to_owned(), digest(pool, name).await);
    }
    all
}

/// A test projection that records every event it applies, without any uniqueness, so a
/// double application shows as a duplicate row. Fails on events whose data contains
/// "poison".
pub struct Audit {
    pub name: &'static str,
    pub version: u32,
    pub types: &'static [&'static str],
}

impl Audit {
    pub fn new(types: &'static [&'static str]) -> Self {
        Self { name: "audit", version: 1, types }
    }

    /// Every marketplace event type.
    pub fn market() -> Self {
        static TYPES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        Self::new(TYPES.get_or_init(events::MarketEvent::event_types))
    }
}

#[async_trait::async_trait]
impl projections::Projection for Audit {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn ddl(&self) -> &'static str {
        "create table applied (seq bigserial primary key, event_id uuid not null, stream_id text not null, \
                               stream_version bigint not null, commit_position bigint not null, \
                               prepare_position bigint not null)"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["applied"]
    }

    fn event_types(&self) -> &'static [&'static str] {
        self.types
    }

    async fn apply(&self, conn: &mut sqlx::PgConnection, events: &[events::RecordedEvent]) -> projections::Result<()> {
        if let Some(poison) = events.iter().find(|e| e.data.contains("poison")) {
            return Err(projections::Error::invalid_event(poison, "poisoned test event"));
        }
        sqlx::query(
            "insert into applied (event_id, stream_id, stream_version, commit_position, prepare_position) \
             select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])",
        )
        .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.stream_id.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.stream_version as i64).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.position.commit() as i64).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.position.prepare() as i64).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Event ids in `read_model.applied`, in application order.
pub async fn applied(pool: &PgPool) -> Vec<uuid::Uuid> {
    sqlx::query_scalar("select event_id from read_model.applied order by seq").fetch_all(pool).await.expect("applied")
}

/// Wait until `read_model.applied` holds `count` rows.
pub async fn wait_applied(pool: &PgPool, count: usize, within: Duration) -> Vec<uuid::Uuid> {
    let deadline = Instant::now() + within;
    loop {
        let rows: Option<i64> =
            sqlx::query_scalar("select count(*) from read_model.applied").fetch_one(pool).await.ok();
        if rows.is_some_and(|n| n as usize >= count) {
            return applied(pool).await;
        }
        assert!(Instant::now() < deadline, "fewer than {count} events applied within {within:?} (have {rows:?})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
