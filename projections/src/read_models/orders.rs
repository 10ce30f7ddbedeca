//! `orders`: orders with lines, totals, payment state and status timeline; sales figures
//! per vendor.
//!
//! Vendor sales rule: an order counts for its vendors (one order, its units, its revenue per
//! vendor, in the order's currency) from the moment it is confirmed (payment authorised);
//! a cancellation or refund of a counted order takes it out again in full. Orders that are
//! never confirmed never count.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::RecordedEvent;
use events::domain::deliveries::DeliveryEvent;
use events::domain::orders::OrderEvent;
use events::domain::payments::PaymentEvent;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::stream_uuid;
use crate::Result;
use crate::projection::Projection;

pub struct Orders;

const DDL: &str = "
create table customer_order (
    order_id             uuid primary key,
    buyer_id             uuid,
    -- placed, confirmed, cancelled, delivered, refunded
    status               text not null,
    placed_at            timestamptz,
    total_cents          bigint not null,
    currency             text not null,
    -- none, requested, authorized, declined, refunded
    payment_state        text not null,
    authorization_id     text,
    payment_declined     text,
    refunded_cents       bigint not null,
    refund_id            text,
    cancellation_reason  text,
    delivery_id          uuid,
    -- Internal: whether the order is counted in vendor_sales now.
    counted_in_sales     boolean not null,
    -- Internal: entries in order_status_history.
    status_changes       integer not null,
    updated_at           timestamptz not null
) with (fillfactor = 70);
create index customer_order_buyer on customer_order (buyer_id, placed_at desc);
create table order_line (
    order_id          uuid not null,
    line_no           integer not null,
    product_id        uuid not null,
    vendor_id         uuid not null,
    title             text not null,
    quantity          bigint not null,
    unit_price_cents  bigint not null,
    total_cents       bigint not null,
    primary key (order_id, line_no)
);
create index order_line_vendor on order_line (vendor_id);
create table order_status_history (
    order_id  uuid not null,
    seq       integer not null,
    status    text not null,
    reason    text,
    at        timestamptz not null,
    primary key (order_id, seq)
);
create table vendor_sales (
    vendor_id      uuid not null,
    currency       text not null,
    orders         bigint not null,
    units          bigint not null,
    revenue_cents  bigint not null,
    primary key (vendor_id, currency)
);
";

const EVENT_TYPES: &[&str] = &[
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "order.delivered",
    "order.refunded",
    "payment.requested",
    "payment.authorized",
    "payment.declined",
    "payment.refunded",
    "delivery.created",
];

#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub counted_in_sales: bool,
    pub status_changes: i32,
    pub updated_at: DateTime<Utc>,
}

impl OrderRow {
    fn new(order_id: Uuid, at: DateTime<Utc>) -> Self {
        Self {
            order_id,
            buyer_id: None,
            status: "placed".into(),
            placed_at: None,
            total_cents: 0,
            currency: String::new(),
            payment_state: "none".into(),
            authorization_id: None,
            payment_declined: None,
            refunded_cents: 0,
            refund_id: None,
            cancellation_reason: None,
            delivery_id: None,
            counted_in_sales: false,
            status_changes: 0,
            updated_at: at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    pub order_id: Uuid,
    pub line_no: i32,
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

impl LineRow {
    pub fn total_cents(&self) -> i64 {
        self.unit_price_cents * self.quantity
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub order_id: Uuid,
    pub seq: i32,
    pub status: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SalesDelta {
    pub orders: i64,
    pub units: i64,
    pub revenue_cents: i64,
}

/// A decoded event of this projection.
pub enum OrdersEvent {
    Order(OrderEvent),
    Payment(PaymentEvent),
    Delivery(DeliveryEvent),
}

impl OrdersEvent {
    pub fn decode(event: &RecordedEvent) -> Result<Self> {
        let family = event.event_type.split_once('.').map_or("", |(f, _)| f);
        Ok(match family {
            "payment" => OrdersEvent::Payment(event.decode()?),
            "delivery" => OrdersEvent::Delivery(event.decode()?),
            _ => OrdersEvent::Order(event.decode()?),
        })
    }

    /// The order the event is about.
    fn order_id(&self, event: &RecordedEvent) -> Result<Uuid> {
        Ok(match self {
            OrdersEvent::Order(OrderEvent::Placed(p)) => p.order_id,
            OrdersEvent::Order(_) => stream_uuid(event)?,
            OrdersEvent::Payment(PaymentEvent::Requested(p)) => p.order_id,
            OrdersEvent::Payment(PaymentEvent::Authorized(p)) => p.order_id,
            OrdersEvent::Payment(PaymentEvent::Declined(p)) => p.order_id,
            OrdersEvent::Payment(PaymentEvent::Refunded(p)) => p.order_id,
            OrdersEvent::Delivery(DeliveryEvent::Created(d)) => d.order_id,
            OrdersEvent::Delivery(DeliveryEvent::Tracked(t)) => t.order_id,
        })
    }

    /// Whether folding it needs the order's lines (to count sales).
    fn needs_lines(&self) -> bool {
        matches!(
            self,
            OrdersEvent::Order(OrderEvent::Confirmed(_) | OrderEvent::Cancelled(_) | OrderEvent::Refunded(_))
        )
    }
}

/// The pure part.
#[derive(Debug, Default)]
pub struct OrdersChanges {
    pub orders: HashMap<Uuid, OrderRow>,
    pub changed: BTreeSet<Uuid>,
    /// Lines of the orders that need them (loaded, or placed in this batch).
    pub lines: HashMap<Uuid, Vec<LineRow>>,
    pub new_lines: Vec<LineRow>,
    pub history: Vec<HistoryRow>,
    pub sales: BTreeMap<(Uuid, String), SalesDelta>,
}

impl OrdersChanges {
    fn order(&mut self, order_id: Uuid, at: DateTime<Utc>) -> &mut OrderRow {
        self.changed.insert(order_id);
        let order = self.orders.entry(order_id).or_insert_with(|| OrderRow::new(order_id, at));
        order.updated_at = at;
        order
    }

    fn status(&mut self, order_id: Uuid, status: &str, reason: Option<String>, at: DateTime<Utc>) {
        let order = self.order(order_id, at);
        order.status = status.to_owned();
        order.status_changes += 1;
        let seq = order.status_changes;
        self.history.push(HistoryRow { order_id, seq, status: status.to_owned(), reason, at });
    }

    /// Add (`sign` 1) or take out (`sign` -1) an order's lines from its vendors' sales.
    fn count_sales(&mut self, order_id: Uuid, sign: i64) {
        let Some(order) = self.orders.get_mut(&order_id) else { return };
        order.counted_in_sales = sign > 0;
        let currency = order.currency.clone();
        let Some(lines) = self.lines.get(&order_id) else { return };
        let mut per_vendor: BTreeMap<Uuid, SalesDelta> = BTreeMap::new();
        for line in lines {
            let delta = per_vendor.entry(line.vendor_id).or_default();
            delta.orders = 1;
            delta.units += line.quantity;
            delta.revenue_cents += line.total_cents();
        }
        for (vendor_id, delta) in per_vendor {
            let sales = self.sales.entry((vendor_id, currency.clone())).or_default();
            sales.orders += sign * delta.orders;
            sales.units += sign * delta.units;
            sales.revenue_cents += sign * delta.revenue_cents;
        }
    }

    pub fn apply(&mut self, event: &RecordedEvent, decoded: OrdersEvent) -> Result<()> {
        let at = event.recorded_at;
        let order_id = decoded.order_id(event)?;
        match decoded {
            OrdersEvent::Order(OrderEvent::Placed(placed)) => {
                let order = self.order(order_id, at);
                order.buyer_id = Some(placed.buyer_id);
                order.placed_at = Some(at);
                order.total_cents = placed.total_cents;
                order.currency = placed.currency;
                let lines: Vec<LineRow> = placed
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, line)| LineRow {
                        order_id,
                        line_no: i32::try_from(i + 1).unwrap_or(i32::MAX),
                        product_id: line.product_id,
                        vendor_id: line.vendor_id,
                        title: line.title.clone(),
                        quantity: i64::from(line.quantity),
                        unit_price_cents: line.unit_price_cents,
                    })
                    .collect();
                self.new_lines.extend(lines.iter().cloned());
                self.lines.insert(order_id, lines);
                self.status(order_id, "placed", None, at);
            }
            OrdersEvent::Order(OrderEvent::Confirmed(confirmed)) => {
                let order = self.order(order_id, at);
                order.authorization_id = Some(confirmed.authorization_id);
                order.payment_state = "authorized".into();
                let count = !order.counted_in_sales;
                self.status(order_id, "confirmed", None, at);
                if count {
                    self.count_sales(order_id, 1);
                }
            }
            OrdersEvent::Order(OrderEvent::Cancelled(cancelled)) => {
                let order = self.order(order_id, at);
                order.cancellation_reason = Some(cancelled.reason.clone());
                let counted = order.counted_in_sales;
                self.status(order_id, "cancelled", Some(cancelled.reason), at);
                if counted {
                    self.count_sales(order_id, -1);
                }
            }
            OrdersEvent::Order(OrderEvent::Delivered(delivered)) => {
                self.order(order_id, at).delivery_id = Some(delivered.delivery_id);
                self.status(order_id, "delivered", None, at);
            }
            OrdersEvent::Order(OrderEvent::Refunded(refunded)) => {
                let order = self.order(order_id, at);
                order.refunded_cents += refunded.amount_cents;
                order.refund_id = Some(refunded.refund_id);
                let counted = order.counted_in_sales;
                self.status(order_id, "refunded", None, at);
                if counted {
                    self.count_sales(order_id, -1);
                }
            }
            // A reserve-path checkout that never placed its order: there is no order to show.
            OrdersEvent::Order(OrderEvent::CheckoutExpired(_)) => {}
            OrdersEvent::Payment(payment) => {
                let order = self.order(order_id, at);
                match payment {
                    PaymentEvent::Requested(_) => order.payment_state = "requested".into(),
                    PaymentEvent::Authorized(authorized) => {
                        order.payment_state = "authorized".into();
                        order.authorization_id = Some(authorized.authorization_id);
                    }
                    PaymentEvent::Declined(declined) => {
                        order.payment_state = "declined".into();
                        order.payment_declined = Some(declined.reason);
                    }
                    PaymentEvent::Refunded(_) => order.payment_state = "refunded".into(),
                }
            }
            OrdersEvent::Delivery(DeliveryEvent::Created(created)) => {
                self.order(order_id, at).delivery_id = Some(created.delivery_id);
            }
            OrdersEvent::Delivery(DeliveryEvent::Tracked(_)) => {}
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn version(&self) -> u32 {
        1
    }

    fn ddl(&self) -> &'static str {
        DDL
    }

    fn tables(&self) -> &'static [&'static str] {
        &["customer_order", "order_line", "order_status_history", "vendor_sales"]
    }

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<()> {
        let decoded = events.iter().map(OrdersEvent::decode).collect::<Result<Vec<_>>>()?;
        let mut order_ids = BTreeSet::new();
        let mut need_lines = BTreeSet::new();
        let mut placed_here = BTreeSet::new();
        for (event, decoded) in events.iter().zip(&decoded) {
            let id = decoded.order_id(event)?;
            order_ids.insert(id);
            if matches!(decoded, OrdersEvent::Order(OrderEvent::Placed(_))) {
                placed_here.insert(id);
            } else if decoded.needs_lines() && !placed_here.contains(&id) {
                need_lines.insert(id);
            }
        }
        let mut changes = OrdersChanges {
            orders: sql::load_orders(conn, &order_ids.into_iter().collect::<Vec<_>>()).await?,
            lines: sql::load_lines(conn, &need_lines.into_iter().collect::<Vec<_>>()).await?,
            ..Default::default()
        };
        for (event, decoded) in events.iter().zip(decoded) {
            changes.apply(event, decoded)?;
        }
        sql::save(conn, &changes).await
    }
}

mod sql {
    use super::*;

    const ORDER_COLUMNS: &str = "order_id, buyer_id, status, placed_at, total_cents, currency, payment_state, \
         authorization_id, payment_declined, refunded_cents, refund_id, cancellation_reason, delivery_id, \
         counted_in_sales, status_changes, updated_at";

    fn order(row: PgRow) -> sqlx::Result<OrderRow> {
        Ok(OrderRow {
            order_id: row.try_get(0)?,
            buyer_id: row.try_get(1)?,
            status: row.try_get(2)?,
            placed_at: row.try_get(3)?,
            total_cents: row.try_get(4)?,
            currency: row.try_get(5)?,
            payment_state: row.try_get(6)?,
            authorization_id: row.try_get(7)?,
            payment_declined: row.try_get(8)?,
            refunded_cents: row.try_get(9)?,
            refund_id: row.try_get(10)?,
            cancellation_reason: row.try_get(11)?,
            delivery_id: row.try_get(12)?,
            counted_in_sales: row.try_get(13)?,
            status_changes: row.try_get(14)?,
            updated_at: row.try_get(15)?,
        })
    }

    pub async fn load_orders(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, OrderRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("select {ORDER_COLUMNS} from customer_order where order_id = any($1)"));
        let rows = sqlx::query(SQL.as_str()).bind(ids).try_map(order).fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(|o| (o.order_id, o)).collect())
    }

    pub async fn load_lines(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<LineRow>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, i32, Uuid, Uuid, String, i64, i64)> = sqlx::query_as(
            "select order_id, line_no, product_id, vendor_id, title, quantity, unit_price_cents \
               from order_line where order_id = any($1) order by order_id, line_no",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
        let mut lines: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
        for (order_id, line_no, product_id, vendor_id, title, quantity, unit_price_cents) in rows {
            lines.entry(order_id).or_default().push(LineRow {
                order_id,
                line_no,
                product_id,
                vendor_id,
                title,
                quantity,
                unit_price_cents,
            });
        }
        Ok(lines)
    }

    pub async fn save(conn: &mut PgConnection, changes: &OrdersChanges) -> Result<()> {
        let orders: Vec<&OrderRow> = changes.changed.iter().filter_map(|id| changes.orders.get(id)).collect();
        if !orders.is_empty() {
            static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!(
                    "insert into customer_order ({ORDER_COLUMNS}) \
                     select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::bigint[], \
                                          $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], \
                                          $12::text[], $13::uuid[], $14::bool[], $15::int[], $16::timestamptz[]) \
                     on conflict (order_id) do update set buyer_id = excluded.buyer_id, status = excluded.status, \
                        placed_at = excluded.placed_at, total_cents = excluded.total_cents, \
                        currency = excluded.currency, payment_state = excluded.payment_state, \
                        authorization_id = excluded.authorization_id, payment_declined = excluded.payment_declined, \
                        refunded_cents = excluded.refunded_cents, refund_id = excluded.refund_id, \
                        cancellation_reason = excluded.cancellation_reason, delivery_id = excluded.delivery_id, \
                        counted_in_sales = excluded.counted_in_sales, status_changes = excluded.status_changes, \
                        updated_at = excluded.updated_at"
                )
            });
            sqlx::query(SQL.as_str())
                .bind(orders.iter().map(|o| o.order_id).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.buyer_id).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.status.as_str()).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.placed_at).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.total_cents).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.currency.as_str()).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.payment_state.as_str()).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.authorization_id.as_deref()).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.payment_declined.as_deref()).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.refunded_cents).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.refund_id.as_deref()).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.cancellation_reason.as_deref()).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.delivery_id).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.counted_in_sales).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.status_changes).collect::<Vec<_>>())
                .bind(orders.iter().map(|o| o.updated_at).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
        }
        let lines = &changes.new_lines;
        if !lines.is_empty() {
            sqlx::query(
                "insert into order_line (order_id, line_no, product_id, vendor_id, title, quantity, \
                                         unit_price_cents, total_cents) \
                 select * from unnest($1::uuid[], $2::int[], $3::uuid[], $4::uuid[], $5::text[], $6::bigint[], \
                                      $7::bigint[], $8::bigint[]) \
                 on conflict (order_id, line_no) do update set product_id = excluded.product_id, \
                    vendor_id = excluded.vendor_id, title = excluded.title, quantity = excluded.quantity, \
                    unit_price_cents = excluded.unit_price_cents, total_cents = excluded.total_cents",
            )
            .bind(lines.iter().map(|l| l.order_id).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.line_no).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.product_id).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.vendor_id).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.title.as_str()).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.unit_price_cents).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.total_cents()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let history = &changes.history;
        if !history.is_empty() {
            sqlx::query(
                "insert into order_status_history (order_id, seq, status, reason, at) \
                 select * from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::timestamptz[])",
            )
            .bind(history.iter().map(|h| h.order_id).collect::<Vec<_>>())
            .bind(history.iter().map(|h| h.seq).collect::<Vec<_>>())
            .bind(history.iter().map(|h| h.status.as_str()).collect::<Vec<_>>())
            .bind(history.iter().map(|h| h.reason.as_deref()).collect::<Vec<_>>())
            .bind(history.iter().map(|h| h.at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let sales: Vec<(&(Uuid, String), &SalesDelta)> =
            changes.sales.iter().filter(|(_, d)| **d != SalesDelta::default()).collect();
        if !sales.is_empty() {
            sqlx::query(
                "insert into vendor_sales (vendor_id, currency, orders, units, revenue_cents) \
                 select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) \
                 on conflict (vendor_id, currency) do update set orders = vendor_sales.orders + excluded.orders, \
                    units = vendor_sales.units + excluded.units, \
                    revenue_cents = vendor_sales.revenue_cents + excluded.revenue_cents",
            )
            .bind(sales.iter().map(|((v, _), _)| *v).collect::<Vec<_>>())
            .bind(sales.iter().map(|((_, c), _)| c.as_str()).collect::<Vec<_>>())
            .bind(sales.iter().map(|(_, d)| d.orders).collect::<Vec<_>>())
            .bind(sales.iter().map(|(_, d)| d.units).collect::<Vec<_>>())
            .bind(sales.iter().map(|(_, d)| d.revenue_cents).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_models::testing::{at, recorded};
    use events::domain::orders::{
        OrderCancelled, OrderConfirmed, OrderDelivered, OrderLine, OrderPlaced, OrderRefunded,
    };
    use events::domain::payments::{PaymentAuthorized, PaymentRequested};
    use events::privacy::Sealed;

    fn sealed() -> Sealed {
        Sealed { key_id: Uuid::nil(), nonce: String::new(), ciphertext: String::new() }
    }

    struct Scenario {
        order: Uuid,
        buyer: Uuid,
        vendors: (Uuid, Uuid),
        changes: OrdersChanges,
        version: u64,
    }

    impl Scenario {
        fn new() -> Self {
            Self {
                order: Uuid::now_v7(),
                buyer: Uuid::now_v7(),
                vendors: (Uuid::now_v7(), Uuid::now_v7()),
                changes: OrdersChanges::default(),
                version: 0,
            }
        }

        fn lines(&self) -> Vec<OrderLine> {
            vec![
                OrderLine {
                    product_id: Uuid::now_v7(),
                    vendor_id: self.vendors.0,
                    title: "Kettle".into(),
                    quantity: 2,
                    unit_price_cents: 1000,
                },
                OrderLine {
                    product_id: Uuid::now_v7(),
                    vendor_id: self.vendors.1,
                    title: "Mug".into(),
                    quantity: 3,
                    unit_price_cents: 500,
                },
            ]
        }

        fn order_event(&mut self, event: OrderEvent) -> &mut Self {
            self.version += 1;
            let recorded = recorded("order", self.order, self.version, &event);
            self.changes.apply(&recorded, OrdersEvent::Order(event)).expect("apply");
            self
        }

        fn payment_event(&mut self, event: PaymentEvent) -> &mut Self {
            self.version += 1;
            let recorded = recorded("payment", self.order, self.version, &event);
            self.changes.apply(&recorded, OrdersEvent::Payment(event)).expect("apply");
            self
        }

        fn placed(&mut self) -> &mut Self {
            let placed = OrderPlaced {
                order_id: self.order,
                buyer_id: self.buyer,
                lines: self.lines(),
                currency: "EUR".into(),
                total_cents: 3500,
                shipping_address: sealed(),
            };
            self.order_event(OrderEvent::Placed(placed))
        }

        fn sales(&self) -> Vec<(Uuid, SalesDelta)> {
            self.changes.sales.iter().map(|((v, _), d)| (*v, *d)).collect()
        }

        fn history(&self) -> Vec<(&str, Option<&str>)> {
            self.changes.history.iter().map(|h| (h.status.as_str(), h.reason.as_deref())).collect()
        }
    }

    #[test]
    fn a_confirmed_and_delivered_order_counts_for_each_vendor() {
        let mut s = Scenario::new();
        let (order, buyer) = (s.order, s.buyer);
        s.placed();
        s.payment_event(PaymentEvent::Requested(PaymentRequested {
            order_id: order,
            buyer_id: buyer,
            amount_cents: 3500,
            currency: "EUR".into(),
            payment_token: "tok".into(),
        }));
        s.payment_event(PaymentEvent::Authorized(PaymentAuthorized {
            order_id: order,
            authorization_id: "auth-1".into(),
            amount_cents: 3500,
        }));
        s.order_event(OrderEvent::Confirmed(OrderConfirmed { authorization_id: "auth-1".into() }));
        let delivery = Uuid::now_v7();
        s.order_event(OrderEvent::Delivered(OrderDelivered { delivery_id: delivery }));

        let row = &s.changes.orders[&order];
        assert_eq!(row.status, "delivered");
        assert_eq!((row.payment_state.as_str(), row.authorization_id.as_deref()), ("authorized", Some("auth-1")));
        assert_eq!(
            (row.total_cents, row.buyer_id, row.delivery_id, row.placed_at),
            (3500, Some(buyer), Some(delivery), Some(at(1)))
        );
        assert_eq!(s.changes.new_lines.len(), 2);
        assert_eq!(s.history(), [("placed", None), ("confirmed", None), ("delivered", None)]);
        let mut sales = s.sales();
        sales.sort_by_key(|(v, _)| *v == s.vendors.1);
        assert_eq!(
            sales,
            [
                (s.vendors.0, SalesDelta { orders: 1, units: 2, revenue_cents: 2000 }),
                (s.vendors.1, SalesDelta { orders: 1, units: 3, revenue_cents: 1500 }),
            ]
        );
    }

    #[test]
    fn cancelling_and_refunding_a_confirmed_order_takes_it_out_of_sales_once() {
        let mut s = Scenario::new();
        s.placed();
        s.order_event(OrderEvent::Confirmed(OrderConfirmed { authorization_id: "auth-1".into() }));
        let lines = s.lines();
        s.order_event(OrderEvent::Cancelled(OrderCancelled { reason: "buyer_request".into(), released: lines }));
        s.order_event(OrderEvent::Refunded(OrderRefunded { amount_cents: 3500, refund_id: "re-1".into() }));
        let row = &s.changes.orders[&s.order];
        assert_eq!(
            (row.status.as_str(), row.cancellation_reason.as_deref(), row.refunded_cents),
            ("refunded", Some("buyer_request"), 3500)
        );
        assert!(!row.counted_in_sales);
        assert!(s.sales().iter().all(|(_, d)| *d == SalesDelta::default()), "{:?}", s.sales());
        assert_eq!(
            s.history(),
            [("placed", None), ("confirmed", None), ("cancelled", Some("buyer_request")), ("refunded", None)]
        );
    }

    #[test]
    fn a_declined_order_never_counts() {
        let mut s = Scenario::new();
        s.placed();
        let lines = s.lines();
        s.order_event(OrderEvent::Cancelled(OrderCancelled { reason: "payment_declined".into(), released: lines }));
        assert!(s.sales().is_empty());
        assert_eq!(s.changes.orders[&s.order].status, "cancelled");
    }
}
