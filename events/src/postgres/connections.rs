//! A connection pool for hot paths, without sqlx's per-release ping.
//!
//! sqlx's `Pool` pings every connection when it is released (a whole extra round trip per
//! query, measured at ~40% of the append throughput on a 2-core machine), because a query
//! future dropped half-way can leave a connection in the middle of a response. Here a
//! connection only goes back to the pool when its user says the work finished
//! ([`Lease::release`]); a lease dropped any other way (error, cancellation) closes its
//! connection instead. So no ping is ever needed.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

struct Inner {
    options: PgConnectOptions,
    max: usize,
    idle: Mutex<Vec<PgConnection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// How many connections a pool has lent, holds idle, and may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub in_use: usize,
    pub idle: usize,
    pub max: usize,
}

/// Up to `max` connections to one database, opened on demand.
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Arc<Inner>,
}

impl ConnectionPool {
    pub fn new(options: PgConnectOptions, max: u32, acquire_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                max: max.max(1) as usize,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max.max(1) as usize)),
                acquire_timeout,
            }),
        }
    }

    /// An idle connection, or a new one; waits at most the acquire timeout.
    pub async fn acquire(&self) -> Result<Lease, sqlx::Error> {
        let inner = &self.inner;
        let permit = tokio::time::timeout(inner.acquire_timeout, inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = inner.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let conn = match idle {
            Some(conn) => conn,
            None => tokio::time::timeout(inner.acquire_timeout, inner.options.connect())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??,
        };
        Ok(Lease { conn: Some(conn), pool: self.inner.clone(), _permit: permit })
    }

    /// Connections on loan and idle, and the most there may be (for metrics).
    pub fn usage(&self) -> PoolUsage {
        let inner = &self.inner;
        PoolUsage {
            in_use: inner.max - inner.permits.available_permits().min(inner.max),
            idle: inner.idle.lock().map(|idle| idle.len()).unwrap_or(0),
            max: inner.max,
        }
    }

    /// Close every idle connection (after the server went away, they are all dead).
    pub fn purge_idle(&self) {
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.clear();
        }
    }
}

/// A connection on loan. Call [`release`](Lease::release) when the work on it finished;
/// otherwise it is closed when dropped.
pub struct Lease {
    conn: Option<PgConnection>,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// Give the connection back for reuse: only after its last query completed.
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            if let Ok(mut idle) = self.pool.idle.lock() {
                idle.push(conn);
            }
        }
    }
}

impl Deref for Lease {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a lease holds its connection until released")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lease holds its connection until released")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Not released: the work was cancelled or the connection broke mid-way, and it may be
        // in the middle of a response. Dropping it closes the socket; PostgreSQL ends the
        // session (rolling back anything open) when it sees the close.
        drop(self.conn.take());
    }
}
