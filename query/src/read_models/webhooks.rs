//! Webhook endpoints and deliveries, for admins. These are the operational tables of the
//! webhook dispatcher (schema `integration`), not read models built by a projection: they
//! are read here as they are, with no consistency token to wait for.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub webhook_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub registered_at: DateTime<Utc>,
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// Every endpoint with its delivery counts by state, oldest first (one statement).
pub async fn all(pool: &PgPool, limit: i64) -> Result<Vec<WebhookRow>, sqlx::Error> {
    sqlx::query_as(
        "select e.webhook_id, e.url, e.event_types, e.registered_at, \
           count(d.delivery_id) filter (where d.state = 'pending') as pending, \
           count(d.delivery_id) filter (where d.state = 'delivered') as delivered, \
           count(d.delivery_id) filter (where d.state = 'failed') as failed \
         from integration.webhook_endpoint e left join integration.webhook_delivery d using (webhook_id) \
         group by e.webhook_id order by e.registered_at, e.webhook_id limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

const DELIVERY_COLUMNS: &str = "delivery_id, webhook_id, event_id, event_type, payload, state, attempts, \
    next_attempt_at, last_status_code, last_error, created_at, delivered_at";

pub async fn delivery(pool: &PgPool, delivery_id: Uuid) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {DELIVERY_COLUMNS} from integration.webhook_delivery where delivery_id = $1"
    )))
    .bind(delivery_id)
    .fetch_optional(pool)
    .await
}

/// The newest deliveries of an endpoint, optionally in one state.
pub async fn deliveries(
    pool: &PgPool,
    webhook_id: Uuid,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {DELIVERY_COLUMNS} from integration.webhook_delivery \
         where webhook_id = $1 and ($2::text is null or state = $2) \
         order by created_at desc, delivery_id desc limit $3"
    )))
    .bind(webhook_id)
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The attempts of the given deliveries, in order (one statement for any number).
pub async fn attempts(pool: &PgPool, delivery_ids: &[Uuid]) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "select delivery_id, attempt, attempted_at, status_code, error, duration_ms \
         from integration.webhook_attempt where delivery_id = any($1) order by delivery_id, attempt",
    )
    .bind(delivery_ids)
    .fetch_all(pool)
    .await
}
