//! `read_model.product` and `read_model.category_count` (projection `catalog`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::Page;
use crate::pagination::Keyset;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProductRow {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub in_stock: bool,
    pub listed: bool,
    pub rating_count: i64,
    pub rating_avg: Option<f64>,
    pub created_at: DateTime<Utc>,
}

const PRODUCT_COLUMNS: &str = "product_id, vendor_id, title, description, category, brand, price_cents, currency, \
                               stock, in_stock, listed, rating_count, rating_avg, created_at";

/// Products by id, listed or not (an order line still shows a delisted product).
pub async fn products(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<ProductRow>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("select {PRODUCT_COLUMNS} from read_model.product where product_id = any($1)")
    });
    sqlx::query_as(SQL.as_str()).bind(ids).fetch_all(pool).await
}

/// A vendor's listed products, newest first.
pub async fn vendor_products(pool: &PgPool, vendor_id: Uuid, page: Page<Keyset>) -> sqlx::Result<Vec<ProductRow>> {
    static FIRST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {PRODUCT_COLUMNS} from read_model.product where vendor_id = $1 and listed \
              order by created_at desc, product_id desc limit $2"
        )
    });
    static AFTER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {PRODUCT_COLUMNS} from read_model.product where vendor_id = $1 and listed \
                and (created_at, product_id) < ($3, $4) \
              order by created_at desc, product_id desc limit $2"
        )
    });
    match page.after {
        None => sqlx::query_as(FIRST.as_str()).bind(vendor_id).bind(page.limit).fetch_all(pool).await,
        Some(after) => {
            sqlx::query_as(AFTER.as_str())
                .bind(vendor_id)
                .bind(page.limit)
                .bind(after.at)
                .bind(after.id)
                .fetch_all(pool)
                .await
        }
    }
}

/// Categories with listed products, by name.
pub async fn categories(pool: &PgPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "select category, product_count from read_model.category_count where product_count > 0 order by category",
    )
    .fetch_all(pool)
    .await
}
