//! Test support: a throwaway PostgreSQL database per test, and the store contract suite.

pub mod contract;

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};

/// The server tests run against: `TEST_DATABASE_URL` (a server URL without a database
/// name), else the local default.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database with a random name, dropped (with every connection to it) when this is dropped.
pub struct TestDatabase {
    name: String,
    url: String,
    pool: PgPool,
}

impl TestDatabase {
    /// An empty database.
    pub async fn create() -> Self {
        Self::create_with_pool_size(8).await
    }

    /// An empty database whose pool holds up to `max_connections`.
    pub async fn create_with_pool_size(max_connections: u32) -> Self {
        let name = format!("agora_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = format!("{}/{name}", server_url().trim_end_matches('/'));
        let pool = crate::postgres::pool_options(max_connections)
            .connect_with(crate::postgres::connect_options(&url).expect("test database url"))
            .await
            .expect("connect to test database");
        Self { name, url, pool }
    }

    /// A database with the event store schema.
    pub async fn with_event_store() -> Self {
        let db = Self::create().await;
        crate::postgres::migrate(&db.pool).await.expect("event store migrations");
        db
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn admin_connection() -> sqlx::PgConnection {
    let url = format!("{}/postgres", server_url().trim_end_matches('/'));
    PgConnectOptions::from_str(&url)
        .expect("TEST_DATABASE_URL is a PostgreSQL URL")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("tests need PostgreSQL at {url}: {e}"))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside (or outside) some runtime: do the async work on a thread of its own.
        // `with (force)` ends the pool's connections; the pool itself belongs to the test's
        // runtime and goes with it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let Ok(runtime) = runtime else { return };
            runtime.block_on(async move {
                let mut admin = admin_connection().await;
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop database if exists {name} with (force)")))
                    .execute(&mut admin)
                    .await;
            });
        });
        let _ = dropped.join();
    }
}
