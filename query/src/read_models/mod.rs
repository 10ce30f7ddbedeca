//! SQL over the read models, one module per bounded context. The query side reads the views
//! of schema `read_model` (which point at each projection's live generation); it never
//! names a generation and never writes.
//!
//! Every function takes a batch of keys (`= any($1)`) or one page, so a GraphQL operation
//! issues a number of statements that does not grow with the number of items it shows.

pub mod accounts;
pub mod catalog;
pub mod deliveries;
pub mod orders;
pub mod reviews;
pub mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The read-model database of a query process (a replica, or the primary).
#[derive(Clone, Debug)]
pub struct ReadModels {
    pool: PgPool,
    recent_vendors: Arc<accounts::RecentVendors>,
}

impl ReadModels {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, recent_vendors: Arc::default() }
    }

    /// A pool of `max_connections` read-only sessions to `url`, with a statement timeout so
    /// no query can hold a connection for long.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("agora-query")
            .options([("default_transaction_read_only", "on"), ("statement_timeout", "5000")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(3))
            // A ping per checkout would double the round trips of every statement; a dead
            // connection fails its statement instead, which the client sees as INTERNAL.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self::new(pool))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Vendor rows read within the last second (see [`accounts::RecentVendors`]).
    pub fn recent_vendors(&self) -> &accounts::RecentVendors {
        &self.recent_vendors
    }
}

/// The bounds of one keyset page: `limit` rows after `after` (exclusive) in list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page<K> {
    pub after: Option<K>,
    /// Rows to fetch: the page size plus one, to know whether another page follows.
    pub limit: i64,
}

impl<K> Page<K> {
    /// A page of `size` items: fetches one more.
    pub fn of(size: usize, after: Option<K>) -> Self {
        Self { after, limit: i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1) }
    }
}
