//! What projectors and reactors share: options, the leadership loop (standby until the
//! advisory lock is free, then lead until shutdown or until the session is lost), backoff
//! and shutdown-aware sleeping.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

use crate::leader::{connect_dedicated, try_lock, unlock};
use crate::rebuild::RebuildOptions;
use crate::telemetry::Meter;
use crate::{Error, Result};

/// Tuning of projectors and reactors.
#[derive(Clone)]
pub struct RunOptions {
    /// Most events per batch transaction.
    pub batch_size: usize,
    /// Events read ahead of the batch being applied.
    pub read_ahead: usize,
    /// While catching up, wait this long to fill a batch (fewer, larger transactions).
    pub catch_up_linger: Duration,
    /// How often a standby tries to take the lock, and how often an idle leader checks it
    /// still holds it.
    pub standby_retry: Duration,
    /// Retry delays after an error: doubling from `min_backoff` up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Reactions running at once within a batch (different streams). 1 reacts to every event
    /// in log order, across streams.
    pub reactor_concurrency: usize,
    /// Used when a projector finds its live generation built by an older version.
    pub rebuild: RebuildOptions,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            read_ahead: 8192,
            catch_up_linger: Duration::from_millis(20),
            standby_retry: Duration::from_secs(1),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            reactor_concurrency: 8,
            rebuild: RebuildOptions::default(),
        }
    }
}

/// Doubling retry delays.
pub(crate) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(options: &RunOptions) -> Self {
        Self { next: options.min_backoff, min: options.min_backoff, max: options.max_backoff }
    }

    pub fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Whether shutdown was requested (a dropped sender counts as a request).
pub(crate) fn is_shutdown(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Sleep, unless shutdown is requested first. Returns whether it was.
pub(crate) async fn sleep_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if is_shutdown(shutdown) {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => is_shutdown(shutdown),
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
    }
}

/// Resolves when shutdown is requested.
pub(crate) async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    while !is_shutdown(shutdown) {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// The work done while holding the lock.
#[async_trait]
pub(crate) trait Worker: Send {
    fn role(&self) -> &'static str;
    /// Work until shutdown (`Ok`) or until something needs a fresh start (`Err`): a lost
    /// session, a failed set-up. Must not keep a transaction open when it returns.
    async fn lead(&mut self, conn: &mut PgConnection, shutdown: &mut watch::Receiver<bool>) -> Result<()>;
}

/// Stand by until the lock `key` is free, lead, and start over when leadership is lost;
/// return after a graceful shutdown (lock released).
pub(crate) async fn run_with_leadership<W: Worker>(
    pool: &PgPool,
    key: i32,
    meter: Meter,
    options: &RunOptions,
    shutdown: &mut watch::Receiver<bool>,
    worker: &mut W,
) -> Result<()> {
    let mut backoff = Backoff::new(options);
    loop {
        if is_shutdown(shutdown) {
            return Ok(());
        }
        let mut conn = match connect_dedicated(pool, worker.role()).await {
            Ok(conn) => conn,
            Err(error) => {
                meter.error();
                tracing::warn!(projection = meter.name, %error, "cannot open the leader connection, retrying");
                if sleep_or_shutdown(backoff.next(), shutdown).await {
                    return Ok(());
                }
                continue;
            }
        };
        let mut announced = false;
        let acquired = loop {
            match try_lock(&mut conn, key).await {
                Ok(true) => break true,
                Ok(false) => {
                    if !announced {
                        tracing::info!(projection = meter.name, "standing by: another process is active");
                        announced = true;
                    }
                    if sleep_or_shutdown(options.standby_retry, shutdown).await {
                        let _ = conn.close().await;
                        return Ok(());
                    }
                }
                Err(error) => {
                    meter.error();
                    tracing::warn!(projection = meter.name, %error, "cannot try the leader lock");
                    break false;
                }
            }
        };
        if !acquired {
            drop(conn);
            if sleep_or_shutdown(backoff.next(), shutdown).await {
                return Ok(());
            }
            continue;
        }
        tracing::info!(projection = meter.name, kind = meter.kind, "active");
        meter.leader(true);
        let result = worker.lead(&mut conn, shutdown).await;
        meter.leader(false);
        match result {
            Ok(()) => {
                let _ = unlock(&mut conn, key).await;
                let _ = conn.close().await;
                tracing::info!(projection = meter.name, "stopped");
                return Ok(());
            }
            Err(error @ Error::NewerGeneration { .. }) => {
                // A newer build owns the read model: leave it to that one.
                tracing::warn!(projection = meter.name, %error, "standing down");
                drop(conn);
                if sleep_or_shutdown(options.standby_retry * 10, shutdown).await {
                    return Ok(());
                }
            }
            Err(error) => {
                meter.error();
                tracing::warn!(projection = meter.name, %error, "no longer active, starting over");
                // Closing the session releases the lock and anything left open.
                drop(conn);
                if sleep_or_shutdown(backoff.next(), shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}
