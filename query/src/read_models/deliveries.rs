//! `read_model.delivery` and `read_model.delivery_tracking` (projection `deliveries`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub delivery_id: Uuid,
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    pub carrier_id: Option<Uuid>,
    pub status: String,
    pub location: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TrackingRow {
    pub delivery_id: Uuid,
    pub seq: i32,
    pub status: String,
    pub location: String,
    pub carrier_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

pub async fn deliveries(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as(
        "select delivery_id, order_id, buyer_id, carrier_id, status, location, created_at, updated_at \
           from read_model.delivery where delivery_id = any($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// The tracking histories of several deliveries, in the order the carrier reported them.
pub async fn tracking(pool: &PgPool, delivery_ids: &[Uuid]) -> sqlx::Result<Vec<TrackingRow>> {
    sqlx::query_as(
        "select delivery_id, seq, status, location, carrier_id, occurred_at, recorded_at \
           from read_model.delivery_tracking where delivery_id = any($1) order by delivery_id, seq",
    )
    .bind(delivery_ids)
    .fetch_all(pool)
    .await
}
