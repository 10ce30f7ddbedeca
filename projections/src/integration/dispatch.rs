//! The webhook dispatcher: a task (in every `project` process; several may run) that sends
//! pending deliveries from `integration.webhook_delivery`.
//!
//! - A delivery is leased before it is sent (`lease_until`), so two dispatchers never send the
//!   same attempt, and a dispatcher that dies mid-request leaves it to another once the lease
//!   ends.
//! - Each send runs in its own task, with a timeout; at most `concurrency` at once overall and
//!   `per_endpoint` per endpoint, so a hanging or failing endpoint occupies a few slots and
//!   never delays deliveries to the others (nor any projection: the reactors only write rows).
//! - Every attempt is recorded (time, status code, error, duration). A non-2xx answer or a
//!   transport error schedules the next attempt after `backoff * 2^(attempt - 1)`; after
//!   `max_attempts` the delivery is `failed` until an admin replays it.
//! - Deliveries to one endpoint may arrive out of order (retries, parallel sends): receivers
//!   order by `occurred_at` and de-duplicate by `id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use events::privacy::{KeyVault, Opened, Sealed};
use sqlx::PgPool;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::http::WebhookClient;
use super::webhooks::sign;
use crate::runtime::sleep_or_shutdown;

/// Tuning of webhook delivery (`WEBHOOK_*` settings).
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Attempts per round (a replay starts a new round).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles after each further failure.
    pub backoff: Duration,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    /// Sends in flight at once, overall and per endpoint.
    pub concurrency: usize,
    pub per_endpoint: usize,
    /// How often an idle dispatcher looks for due deliveries.
    pub poll: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        // 20 s, 40 s, 80 s, 160 s between 5 attempts: about 5 minutes in all.
        Self {
            max_attempts: 5,
            backoff: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
            concurrency: 64,
            per_endpoint: 4,
            poll: Duration::from_millis(250),
        }
    }
}

/// A leased delivery, with what is needed to send it.
#[derive(Debug, sqlx::FromRow)]
struct Due {
    delivery_id: Uuid,
    webhook_id: Uuid,
    url: String,
    secret: serde_json::Value,
    event_id: Uuid,
    event_type: String,
    payload: String,
    round_attempts: i32,
}

/// What one attempt gave.
struct Outcome {
    started: DateTime<Utc>,
    status_code: Option<u16>,
    error: Option<String>,
    elapsed: Duration,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Send due webhook deliveries until `shutdown` turns true. Returns after the sends in
/// flight finished (each is bounded by the timeout).
pub async fn run_webhook_dispatcher(
    pool: PgPool,
    vault: KeyVault,
    options: WebhookOptions,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let client = WebhookClient::new(options.timeout);
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let in_flight: Arc<Mutex<HashMap<Uuid, usize>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let lease = options.timeout + Duration::from_secs(30);
    tracing::info!(
        max_attempts = options.max_attempts,
        timeout_ms = options.timeout.as_millis() as u64,
        "webhook dispatcher running"
    );
    loop {
        while tasks.try_join_next().is_some() {}
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            let busy: HashMap<Uuid, usize> = in_flight.lock().expect("in-flight map").clone();
            match claim(&pool, free, options.per_endpoint, &busy, lease).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim webhook deliveries, retrying");
                    Vec::new()
                }
            }
        };
        if claimed.is_empty() {
            if sleep_or_shutdown(options.poll, &mut shutdown).await {
                break;
            }
            continue;
        }
        for due in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else { break };
            *in_flight.lock().expect("in-flight map").entry(due.webhook_id).or_default() += 1;
            let (pool, vault, client, options, in_flight) =
                (pool.clone(), vault.clone(), client.clone(), options.clone(), in_flight.clone());
            tasks.spawn(async move {
                let webhook_id = due.webhook_id;
                deliver(&pool, &vault, &client, &options, due).await;
                let mut map = in_flight.lock().expect("in-flight map");
                if let Some(n) = map.get_mut(&webhook_id) {
                    *n -= 1;
                    if *n == 0 {
                        map.remove(&webhook_id);
                    }
                }
                drop(permit);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("webhook dispatcher stopped");
    Ok(())
}

/// Lease up to `limit` due deliveries, at most `per_endpoint` in flight per endpoint.
async fn claim(
    pool: &PgPool,
    limit: usize,
    per_endpoint: usize,
    busy: &HashMap<Uuid, usize>,
    lease: Duration,
) -> Result<Vec<Due>, sqlx::Error> {
    let candidates: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "select delivery_id, webhook_id from integration.webhook_delivery \
         where state = 'pending' and next_attempt_at <= now() and (lease_until is null or lease_until < now()) \
         order by next_attempt_at, created_at limit $1",
    )
    .bind((limit * 4).min(1000) as i64)
    .fetch_all(pool)
    .await?;
    let mut taken: HashMap<Uuid, usize> = busy.clone();
    let mut chosen = Vec::new();
    for (delivery_id, webhook_id) in candidates {
        let n = taken.entry(webhook_id).or_default();
        if *n < per_endpoint && chosen.len() < limit {
            *n += 1;
            chosen.push(delivery_id);
        }
    }
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    // The conditions are checked again under the row locks of the update: a delivery another
    // dispatcher leased in between is not taken twice.
    sqlx::query_as(
        "update integration.webhook_delivery d set lease_until = now() + make_interval(secs => $2) \
         from integration.webhook_endpoint e \
         where d.delivery_id = any($1) and e.webhook_id = d.webhook_id and d.state = 'pending' \
           and d.next_attempt_at <= now() and (d.lease_until is null or d.lease_until < now()) \
         returning d.delivery_id, d.webhook_id, e.url, e.secret, d.event_id, d.event_type, d.payload, d.round_attempts",
    )
    .bind(&chosen)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// One attempt of one delivery, recorded.
async fn deliver(pool: &PgPool, vault: &KeyVault, client: &WebhookClient, options: &WebhookOptions, due: Due) {
    let outcome = attempt(vault, client, &due).await;
    let delivered = outcome.delivered();
    let round = due.round_attempts + 1;
    let state = if delivered {
        "delivered"
    } else if round >= options.max_attempts as i32 {
        "failed"
    } else {
        "pending"
    };
    let delay = options.backoff.saturating_mul(1u32 << (round - 1).clamp(0, 20) as u32);
    let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1));
    let status_code = outcome.status_code.map(i32::from);
    let result = sqlx::query(
        "with d as ( \
           update integration.webhook_delivery set attempts = attempts + 1, round_attempts = round_attempts + 1, \
             state = $2, next_attempt_at = $3, lease_until = null, last_status_code = $4, last_error = $5, \
             delivered_at = case when $2 = 'delivered' then now() else delivered_at end \
           where delivery_id = $1 returning attempts) \
         insert into integration.webhook_attempt (delivery_id, attempt, attempted_at, status_code, error, duration_ms) \
         select $1, d.attempts, $6, $4, $5, $7 from d",
    )
    .bind(due.delivery_id)
    .bind(state)
    .bind(next)
    .bind(status_code)
    .bind(outcome.error.as_deref())
    .bind(outcome.started)
    .bind(outcome.elapsed.as_millis().min(i32::MAX as u128) as i32)
    .execute(pool)
    .await;
    metrics::counter!("agora_webhook_attempts_total", "outcome" => if delivered { "delivered" } else { "failed" })
        .increment(1);
    match (&result, delivered) {
        (Err(error), _) => {
            // The lease runs out and the delivery is attempted again: at-least-once.
            tracing::warn!(delivery_id = %due.delivery_id, %error, "cannot record a webhook attempt");
        }
        (Ok(_), true) => {
            tracing::debug!(delivery_id = %due.delivery_id, webhook_id = %due.webhook_id, "webhook delivered");
        }
        (Ok(_), false) => {
            tracing::info!(delivery_id = %due.delivery_id, webhook_id = %due.webhook_id, event_id = %due.event_id,
                status = ?outcome.status_code, error = outcome.error.as_deref().unwrap_or(""), attempt = round, state,
                "webhook attempt failed");
        }
    }
}

async fn attempt(vault: &KeyVault, client: &WebhookClient, due: &Due) -> Outcome {
    let started = Utc::now();
    let clock = Instant::now();
    let failed = |error: String| Outcome { started, status_code: None, error: Some(error), elapsed: clock.elapsed() };
    let secret = match serde_json::from_value::<Sealed>(due.secret.clone()) {
        Ok(sealed) => match vault.open(&sealed).await {
            Ok(Opened::Value(secret)) => secret,
            Ok(Opened::Erased) => return failed("the endpoint's secret was erased".into()),
            Err(error) => return failed(format!("cannot open the endpoint's secret: {error}")),
        },
        Err(error) => return failed(format!("stored secret is unreadable: {error}")),
    };
    let timestamp = started.timestamp();
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("agora-signature", sign(secret.as_bytes(), timestamp, &due.payload)),
        ("agora-event-id", due.event_id.to_string()),
        ("agora-event-type", due.event_type.clone()),
        ("agora-delivery-id", due.delivery_id.to_string()),
    ];
    match client.post(&due.url, &headers, due.payload.clone()).await {
        Ok(status) => {
            let error = (!(200..300).contains(&status)).then(|| format!("endpoint answered {status}"));
            Outcome { started, status_code: Some(status), error, elapsed: clock.elapsed() }
        }
        Err(error) => failed(error_chain(&error)),
    }
}

/// The error and its sources in one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
