//! A realistic marketplace history for benchmarks, `agora seed --bulk` and the crash tests.
//!
//! A seeded simulation ([`plan`]) decides every step: accounts register (personal data
//! sealed with keys created in the `KeyVault`), vendors list products, prices change,
//! vendors restock, buyers fill carts and check out (order, stock reservations, payment
//! request and cart in ONE multi-stream append), payments are authorised or declined,
//! confirmed orders get deliveries with tracking histories, delivered buyers review, admins
//! moderate, some orders are cancelled and some accounts erased. Every append carries the
//! exact expected version of each stream it touches, and goes through `EventStore::append`.
//!
//! Many appends are in flight at once: an append waits only for the earlier appends that
//! touch one of its streams (so per-stream order, and with it every expected version, is the
//! plan's). The same seed always gives the same events (ids, payloads, per-stream order);
//! the interleaving of unrelated streams in the global log may differ between runs.

mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::privacy::KeyVault;
use events::{EventStore, LogPosition};
use futures_util::FutureExt;
use futures_util::future::Shared;
use serde::Serialize;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

use crate::{Error, Result};

/// What to generate.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub seed: u64,
    /// Stop once about this many events were planned.
    pub events: u64,
    /// Place at most this many orders; with a limit, the history ends once they are all
    /// settled (delivered, cancelled or returned) and every review is moderated.
    pub orders: Option<usize>,
    pub admins: usize,
    pub carriers: usize,
    pub vendors: usize,
    pub buyers: usize,
    pub products: usize,
    /// Appends in flight at once.
    pub concurrency: usize,
    /// Stored as every generated account's password hash (an argon2 PHC string, for
    /// accounts that should be able to log in; the default matches no password).
    pub password_hash: String,
    pub currency: String,
}

impl HistoryConfig {
    /// A population in proportion to `events` (about 1 product per 100 events, 1 buyer per
    /// 40, 1 vendor per 20 products).
    pub fn for_events(events: u64, seed: u64) -> Self {
        let events_f = events as f64;
        let products = ((events_f / 100.0) as usize).max(10);
        Self {
            seed,
            events,
            orders: None,
            admins: 3,
            carriers: 8,
            vendors: (products / 20).max(2),
            buyers: ((events_f / 40.0) as usize).max(10),
            products,
            concurrency: 32,
            password_hash: "!generated-account-without-password".to_owned(),
            currency: "EUR".to_owned(),
        }
    }
}

impl HistoryConfig {
    /// A population given in numbers (as `agora seed --accounts N --products N --orders N`):
    /// `accounts` buyers (plus vendors, one per 20 products, carriers and admins).
    pub fn for_population(accounts: usize, products: usize, orders: usize, seed: u64) -> Self {
        Self {
            events: u64::MAX,
            orders: Some(orders),
            vendors: (products / 20).max(2),
            buyers: accounts.max(1),
            products: products.max(1),
            ..Self::for_events(0, seed)
        }
    }
}

/// Progress of a generation.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HistoryProgress {
    /// Events appended so far.
    pub events_done: u64,
    pub events_total: u64,
    pub events_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistorySummary {
    pub events: u64,
    pub appends: u64,
    pub accounts: usize,
    pub products: usize,
    pub orders: usize,
    pub erased_accounts: usize,
    pub seconds: f64,
    pub events_per_s: f64,
    /// The position of the last event appended (wait for it to be visible before reading).
    pub last_position: LogPosition,
}

type Done = Shared<oneshot::Receiver<()>>;

/// Generate and append a history (see the module docs). `progress` is called about four
/// times a second and once at the end.
pub async fn generate_history(
    store: Arc<dyn EventStore>,
    vault: &KeyVault,
    config: &HistoryConfig,
    progress: impl Fn(HistoryProgress) + Send + Sync,
) -> Result<HistorySummary> {
    let started = Instant::now();
    let mut simulation = plan::Simulation::new(vault.clone(), config.clone()).await?;
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    // The last append touching each stream: the next one on that stream waits for it.
    let mut last_on_stream: HashMap<String, Done> = HashMap::new();
    let mut tasks: JoinSet<Result<(u64, LogPosition)>> = JoinSet::new();
    let mut appended = 0u64;
    let mut appends = 0u64;
    let mut last_position = LogPosition::START;
    let mut last_report = Instant::now();
    let report = |done: u64| {
        let seconds = started.elapsed().as_secs_f64();
        progress(HistoryProgress {
            events_done: done,
            events_total: if config.events == u64::MAX { done } else { config.events.max(done) },
            events_per_s: if seconds > 0.0 { done as f64 / seconds } else { 0.0 },
        });
    };
    while let Some(planned) = simulation.next().await? {
        let permit = permits.clone().acquire_owned().await.map_err(|_| Error::History("executor closed".into()))?;
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let done_rx = done_rx.shared();
        let mut waits: Vec<Done> = Vec::new();
        for stream in planned.streams() {
            if let Some(previous) = last_on_stream.insert(stream.to_owned(), done_rx.clone()) {
                waits.push(previous);
            }
        }
        let (store, vault) = (store.clone(), vault.clone());
        tasks.spawn(async move {
            for wait in waits {
                // An earlier append that failed ends the whole run; its error is reported there.
                if wait.await.is_err() {
                    return Err(Error::History("an earlier append failed".into()));
                }
            }
            let events = planned.request.event_count() as u64;
            let result = store.append(planned.request).await?;
            if let Some(key) = planned.erase_key {
                vault.erase(key).await?;
            }
            let _ = done_tx.send(());
            drop(permit);
            Ok((events, result.position()))
        });
        appends += 1;
        while let Some(joined) = tasks.try_join_next() {
            let (events, position) = joined.map_err(|e| Error::History(format!("append task failed: {e}")))??;
            appended += events;
            last_position = last_position.max(position);
        }
        if last_report.elapsed() >= Duration::from_millis(250) {
            last_report = Instant::now();
            report(appended);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (events, position) = joined.map_err(|e| Error::History(format!("append task failed: {e}")))??;
        appended += events;
        last_position = last_position.max(position);
    }
    report(appended);
    let seconds = started.elapsed().as_secs_f64();
    Ok(HistorySummary {
        events: appended,
        appends,
        accounts: config.admins.max(1) + config.carriers.max(1) + config.vendors.max(1) + config.buyers.max(1),
        products: config.products.max(1),
        orders: simulation.orders_placed,
        erased_accounts: simulation.erased,
        seconds,
        events_per_s: if seconds > 0.0 { appended as f64 / seconds } else { 0.0 },
        last_position,
    })
}
