//! `read_model.review` (projection `reviews`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::Page;
use crate::pagination::Keyset;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReviewRow {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub buyer_id: Uuid,
    pub rating: i16,
    pub text: String,
    pub status: String,
    pub submitted_at: DateTime<Utc>,
    pub moderated_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "review_id, product_id, buyer_id, rating, text, status, submitted_at, moderated_at";

/// The same page (newest first) of the approved reviews of several products, in one
/// statement: the first `page.limit` rows per product.
pub async fn approved_pages(pool: &PgPool, product_ids: &[Uuid], page: Page<Keyset>) -> sqlx::Result<Vec<ReviewRow>> {
    static FIRST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {COLUMNS} from ( \
                 select r.*, row_number() over (partition by r.product_id order by r.submitted_at desc, r.review_id desc) as n \
                   from read_model.review r where r.product_id = any($1) and r.status = 'approved' \
             ) ranked where n <= $2 order by product_id, n"
        )
    });
    static AFTER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {COLUMNS} from ( \
                 select r.*, row_number() over (partition by r.product_id order by r.submitted_at desc, r.review_id desc) as n \
                   from read_model.review r where r.product_id = any($1) and r.status = 'approved' \
                    and (r.submitted_at, r.review_id) < ($3, $4) \
             ) ranked where n <= $2 order by product_id, n"
        )
    });
    match page.after {
        None => sqlx::query_as(FIRST.as_str()).bind(product_ids).bind(page.limit).fetch_all(pool).await,
        Some(after) => {
            sqlx::query_as(AFTER.as_str())
                .bind(product_ids)
                .bind(page.limit)
                .bind(after.at)
                .bind(after.id)
                .fetch_all(pool)
                .await
        }
    }
}

/// Reviews waiting for moderation, oldest first.
pub async fn pending_page(pool: &PgPool, page: Page<Keyset>) -> sqlx::Result<Vec<ReviewRow>> {
    static FIRST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {COLUMNS} from read_model.review where status = 'pending' \
              order by submitted_at, review_id limit $1"
        )
    });
    static AFTER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select {COLUMNS} from read_model.review where status = 'pending' \
                and (submitted_at, review_id) > ($2, $3) \
              order by submitted_at, review_id limit $1"
        )
    });
    match page.after {
        None => sqlx::query_as(FIRST.as_str()).bind(page.limit).fetch_all(pool).await,
        Some(after) => {
            sqlx::query_as(AFTER.as_str()).bind(page.limit).bind(after.at).bind(after.id).fetch_all(pool).await
        }
    }
}

pub async fn pending_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from read_model.review where status = 'pending'").fetch_one(pool).await
}
