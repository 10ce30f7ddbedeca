//! `read_model.account` and `read_model.vendor` (projection `accounts`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    pub account_id: Uuid,
    pub role: String,
    /// `None` once erased.
    pub email: Option<String>,
    pub name: String,
    pub erased: bool,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VendorRow {
    pub vendor_id: Uuid,
    pub display_name: String,
    pub product_count: i64,
    pub erased: bool,
}

pub async fn accounts(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<AccountRow>> {
    sqlx::query_as(
        "select account_id, role, email, name, erased, registered_at from read_model.account \
          where account_id = any($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

pub async fn vendors(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<VendorRow>> {
    sqlx::query_as(
        "select vendor_id, display_name, product_count, erased from read_model.vendor where vendor_id = any($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}
