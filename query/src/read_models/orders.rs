//! `read_model.customer_order`, `order_line`, `order_status_history` and `vendor_sales`
//! (projection `orders`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::Page;
use crate::pagination::Keyset;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderRow {
    pub order_id: Uuid,
    pub buyer_id: Option<Uuid>,
    pub status: String,
    pub placed_at: Option<DateTime<Utc>>,
    pub total_cents: i64,
    pub currency: String,
    pub payment_state: String,
    pub authorization_id: Option<String>,
    pub payment_declined: Option<String>,
    pub refunded_cents: i64,
    pub refund_id: Option<String>,
    pub cancellation_reason: Option<String>,
    pub delivery_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

impl OrderRow {
    /// When the order was placed (a row always has it once `order.placed` is applied).
    pub fn placed_at(&self) -> DateTime<Utc> {
        self.placed_at.unwrap_or(self.updated_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LineRow {
    pub order_id: Uuid,
    pub line_no: i32,
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusRow {
    pub order_id: Uuid,
    pub seq: i32,
    pub status: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SalesRow {
    pub currency: String,
    pub orders: i64,
    pub units: i64,
    pub revenue_cents: i64,
}

/// Whose orders a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderScope {
    /// Orders this buyer placed.
    Buyer(Uuid),
    /// Orders with at least one line of this vendor's products.
    Vendor(Uuid),
    /// Every order (admins).
    All,
}

const ORDER_COLUMNS: &str = "o.order_id, o.buyer_id, o.status, o.placed_at, o.total_cents, o.currency, \
                             o.payment_state, o.authorization_id, o.payment_declined, o.refunded_cents, \
                             o.refund_id, o.cancellation_reason, o.delivery_id, o.updated_at";

pub async fn orders(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<OrderRow>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("select {ORDER_COLUMNS} from read_model.customer_order o where o.order_id = any($1)")
    });
    sqlx::query_as(SQL.as_str()).bind(ids).fetch_all(pool).await
}

fn scope_condition(scope: OrderScope) -> &'static str {
    match scope {
        OrderScope::Buyer(_) => "o.buyer_id = $1",
        OrderScope::Vendor(_) => {
            "o.order_id in (select l.order_id from read_model.order_line l where l.vendor_id = $1)"
        }
        // `$1` is still bound (to nil) so every variant takes the same parameters.
        OrderScope::All => "$1::uuid is not null",
    }
}

fn scope_id(scope: OrderScope) -> Uuid {
    match scope {
        OrderScope::Buyer(id) | OrderScope::Vendor(id) => id,
        OrderScope::All => Uuid::nil(),
    }
}

/// One page of a scope's orders, most recent first.
pub async fn order_page(pool: &PgPool, scope: OrderScope, page: Page<Keyset>) -> sqlx::Result<Vec<OrderRow>> {
    let after = if page.after.is_some() { " and (o.placed_at, o.order_id) < ($3, $4)" } else { "" };
    // Six fixed statements (3 scopes x with/without cursor): each is prepared once per
    // connection. No value is ever formatted into SQL.
    let sql = format!(
        "select {ORDER_COLUMNS} from read_model.customer_order o \
          where {} and o.placed_at is not null{after} \
          order by o.placed_at desc, o.order_id desc limit $2",
        scope_condition(scope)
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(scope_id(scope)).bind(page.limit);
    match page.after {
        None => query.fetch_all(pool).await,
        Some(after) => query.bind(after.at).bind(after.id).fetch_all(pool).await,
    }
}

/// How many orders a scope holds.
pub async fn order_count(pool: &PgPool, scope: OrderScope) -> sqlx::Result<i64> {
    let sql = format!(
        "select count(*) from read_model.customer_order o where {} and o.placed_at is not null",
        scope_condition(scope)
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(scope_id(scope)).fetch_one(pool).await
}

/// The lines of several orders, in line order.
pub async fn lines(pool: &PgPool, order_ids: &[Uuid]) -> sqlx::Result<Vec<LineRow>> {
    sqlx::query_as(
        "select order_id, line_no, product_id, vendor_id, title, quantity, unit_price_cents, total_cents \
           from read_model.order_line where order_id = any($1) order by order_id, line_no",
    )
    .bind(order_ids)
    .fetch_all(pool)
    .await
}

/// The status timelines of several orders, oldest change first.
pub async fn status_history(pool: &PgPool, order_ids: &[Uuid]) -> sqlx::Result<Vec<StatusRow>> {
    sqlx::query_as(
        "select order_id, seq, status, reason, at from read_model.order_status_history \
          where order_id = any($1) order by order_id, seq",
    )
    .bind(order_ids)
    .fetch_all(pool)
    .await
}

/// A vendor's sales figures, per currency.
pub async fn vendor_sales(pool: &PgPool, vendor_id: Uuid) -> sqlx::Result<Vec<SalesRow>> {
    sqlx::query_as(
        "select currency, orders, units, revenue_cents from read_model.vendor_sales where vendor_id = $1 \
          order by currency",
    )
    .bind(vendor_id)
    .fetch_all(pool)
    .await
}
