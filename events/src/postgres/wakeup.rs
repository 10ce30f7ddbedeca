//! Waking subscribers when new events commit.
//!
//! In this process: every successful append bumps a counter that live subscriptions watch.
//! Across processes: a publisher task sends `NOTIFY agora_events` after appends, coalescing
//! bursts into one notification (NOTIFY inside each append transaction would serialise all
//! commits on PostgreSQL's notification queue lock); a listener task turns notifications
//! from other processes into the same counter bump. Subscriptions also poll, so a lost
//! notification only costs latency, never an event.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::{Mutex, mpsc, watch};

use super::sql;

pub const CHANNEL: &str = "agora_events";

/// Cross-process wake-ups lag appends by at most this (plus a round trip).
const PUBLISH_INTERVAL: Duration = Duration::from_millis(10);

pub struct Wakeup {
    counter: watch::Sender<u64>,
    publish: mpsc::Sender<()>,
    listener: Mutex<bool>,
}

impl Wakeup {
    pub fn new(pool: PgPool) -> Arc<Self> {
        let (publish, mut requests) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            // A connection of its own: a pooled one would cost a second round trip per
            // NOTIFY (the pool pings connections it takes back), up to 500 times a second.
            let mut conn: Option<PgConnection> = None;
            // Ends when the store (the only sender) is dropped.
            while requests.recv().await.is_some() {
                if conn.is_none() {
                    // Without waiting for the WAL flush: NOTIFY takes a transaction id, so each
                    // one was a commit with an fsync of its own, beside the appends' (at one
                    // client, up to one in five). A notification is never durable anyway.
                    let options = (*pool.connect_options()).clone().options([("synchronous_commit", "off")]);
                    conn = options.connect().await.ok();
                }
                let published = match conn.as_mut() {
                    Some(conn) => sql::notify(conn, CHANNEL).await,
                    None => sql::notify(&pool, CHANNEL).await,
                };
                if let Err(error) = published {
                    tracing::debug!(%error, "could not publish event notification");
                    conn = None;
                }
                // At most one NOTIFY per interval: appends in between ride on the next one.
                tokio::time::sleep(PUBLISH_INTERVAL).await;
            }
        });
        Arc::new(Self { counter: watch::channel(0).0, publish, listener: Mutex::new(false) })
    }

    /// Called after an append committed.
    pub fn appended(&self) {
        self.counter.send_modify(|n| *n = n.wrapping_add(1));
        // Full channel = a notification is already on its way: that one covers us too.
        let _ = self.publish.try_send(());
    }

    /// A receiver that sees every wake-up from now on.
    pub async fn watch(self: &Arc<Self>, pool: &PgPool) -> watch::Receiver<u64> {
        let mut started = self.listener.lock().await;
        if !*started {
            *started = true;
            tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
        }
        self.counter.subscribe()
    }
}

/// Turns NOTIFYs from other processes into wake-ups, until the store is dropped.
async fn listen(wakeup: Weak<Wakeup>, pool: PgPool) {
    let mut backoff = Duration::from_millis(100);
    'connect: while wakeup.strong_count() > 0 {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "event listener cannot connect, subscriptions fall back to polling");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::debug!(%error, "event listener cannot LISTEN");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        loop {
            match tokio::time::timeout(Duration::from_secs(1), listener.recv()).await {
                Ok(Ok(_)) => match wakeup.upgrade() {
                    Some(w) => w.counter.send_modify(|n| *n = n.wrapping_add(1)),
                    None => return,
                },
                Ok(Err(error)) => {
                    tracing::debug!(%error, "event listener lost its connection");
                    continue 'connect;
                }
                Err(_idle) => {
                    if wakeup.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
    }
}
