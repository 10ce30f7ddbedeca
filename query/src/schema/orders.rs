//! Orders: `order(id)` and order lists under the access rules (a buyer its own orders, a
//! vendor the orders with its products and only those lines, an admin every order), each
//! order's payment and delivery; and the `orderUpdated` subscription.

use std::time::Duration;

use async_graphql::{Context, Enum, ID, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use events::domain::accounts::Role;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::catalog::Product;
use super::deliveries::Delivery;
use super::{request, shared};
use crate::consistency::Source;
use crate::error::Error;
use crate::loaders::{DeliveryKey, LinesKey, OrderKey, ProductKey, StatusHistoryKey};
use crate::pagination::{CursorKind, Keyset, PageInfo, page_size, parse_id, split_page};
use crate::read_models::orders::{self, LineRow, OrderRow, OrderScope};
use crate::read_models::{Page, ReadModels};
use crate::updates::OrderChanged;
use crate::viewer::{OrderAccess, order_access};

#[derive(Default)]
pub struct OrdersQuery;

#[Object]
impl OrdersQuery {
    /// An order the caller may see (needs a token); others' orders are not found.
    #[graphql(complexity = "5 + child_complexity")]
    async fn order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Order>> {
        let request = request(ctx)?;
        let caller = request.viewer.caller()?;
        let id = parse_id("order", &id)?;
        let row = request.loader.load_one(OrderKey(id)).await?.ok_or(Error::NotFound("order"))?;
        // Only a vendor's access depends on the lines.
        let vendors: Vec<Uuid> = if caller.role == Role::Vendor {
            let lines = request.loader.load_one(LinesKey(id)).await?.unwrap_or_default();
            lines.iter().map(|l| l.vendor_id).collect()
        } else {
            Vec::new()
        };
        let access = order_access(&caller, row.buyer_id, &vendors).ok_or(Error::NotFound("order"))?;
        Ok(Some(Order::new(row, access)))
    }
}

/// A page of the orders in `scope` (`None`: an empty list), most recent first.
pub(crate) async fn orders_of(
    ctx: &Context<'_>,
    scope: Option<OrderScope>,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<OrderConnection> {
    let size = page_size(first, 20)?;
    let after = Keyset::after(CursorKind::Orders, after.as_deref())?;
    let Some(scope) = scope else { return Ok(OrderConnection::empty()) };
    request(ctx)?.consistency.ready(Source::Orders).await?;
    let rows = orders::order_page(shared(ctx)?.read.pool(), scope, Page::of(size, after)).await.map_err(Error::from)?;
    let (rows, more) = split_page(rows, size);
    let access = match scope {
        OrderScope::Vendor(vendor) => OrderAccess::VendorLines(vendor),
        OrderScope::Buyer(_) | OrderScope::All => OrderAccess::Full,
    };
    let edges: Vec<OrderEdge> = rows
        .into_iter()
        .map(|row| OrderEdge {
            cursor: Keyset::new(row.placed_at(), row.order_id).encode(CursorKind::Orders),
            node: Order::new(row, access),
        })
        .collect();
    let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
    Ok(OrderConnection { page_info: PageInfo::new(&cursors, more), edges, scope: Some(scope) })
}

pub struct OrderConnection {
    edges: Vec<OrderEdge>,
    page_info: PageInfo,
    scope: Option<OrderScope>,
}

impl OrderConnection {
    fn empty() -> Self {
        Self { edges: Vec::new(), page_info: PageInfo::default(), scope: None }
    }
}

#[Object]
impl OrderConnection {
    async fn edges(&self) -> &[OrderEdge] {
        &self.edges
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// Orders in the list over all pages (one count statement, only when asked).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let Some(scope) = self.scope else { return Ok(0) };
        Ok(orders::order_count(shared(ctx)?.read.pool(), scope).await.map_err(Error::from)?)
    }
}

#[derive(SimpleObject)]
pub struct OrderEdge {
    pub cursor: String,
    pub node: Order,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum OrderStatus {
    Placed,
    Confirmed,
    Cancelled,
    Delivered,
    Refunded,
}

impl OrderStatus {
    fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text {
            "placed" => OrderStatus::Placed,
            "confirmed" => OrderStatus::Confirmed,
            "cancelled" => OrderStatus::Cancelled,
            "delivered" => OrderStatus::Delivered,
            "refunded" => OrderStatus::Refunded,
            other => return Err(Error::Internal(format!("unknown order status {other:?} in the read model"))),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum PaymentState {
    /// Not requested yet.
    None,
    Requested,
    Authorized,
    Declined,
    Refunded,
}

impl PaymentState {
    fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text {
            "none" => PaymentState::None,
            "requested" => PaymentState::Requested,
            "authorized" => PaymentState::Authorized,
            "declined" => PaymentState::Declined,
            "refunded" => PaymentState::Refunded,
            other => return Err(Error::Internal(format!("unknown payment state {other:?} in the read model"))),
        })
    }
}

/// An order as one caller may see it.
#[derive(Debug, Clone)]
pub struct Order {
    row: OrderRow,
    access: OrderAccess,
}

impl Order {
    pub fn new(row: OrderRow, access: OrderAccess) -> Self {
        Self { row, access }
    }

    async fn visible_lines(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LineRow>> {
        let lines = request(ctx)?.loader.load_one(LinesKey(self.row.order_id)).await?.unwrap_or_default();
        Ok(match self.access {
            OrderAccess::Full => lines,
            OrderAccess::VendorLines(vendor) => lines.into_iter().filter(|l| l.vendor_id == vendor).collect(),
        })
    }
}

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.row.order_id.to_string())
    }

    async fn status(&self) -> async_graphql::Result<OrderStatus> {
        Ok(OrderStatus::parse(&self.row.status)?)
    }

    async fn placed_at(&self) -> DateTime<Utc> {
        self.row.placed_at()
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }

    /// The order total; for a vendor, the total of its own lines.
    async fn total_cents(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        match self.access {
            OrderAccess::Full => Ok(self.row.total_cents),
            OrderAccess::VendorLines(_) => Ok(self.visible_lines(ctx).await?.iter().map(|l| l.total_cents).sum()),
        }
    }

    async fn currency(&self) -> &str {
        &self.row.currency
    }

    /// The lines; a vendor sees only its own.
    async fn lines(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<OrderLine>> {
        Ok(self.visible_lines(ctx).await?.into_iter().map(OrderLine).collect())
    }

    async fn payment(&self) -> async_graphql::Result<Payment> {
        let full = self.access == OrderAccess::Full;
        Ok(Payment {
            state: PaymentState::parse(&self.row.payment_state)?,
            amount_cents: self.row.total_cents,
            currency: self.row.currency.clone(),
            authorization_id: if full { self.row.authorization_id.clone() } else { None },
            decline_reason: self.row.payment_declined.clone(),
            refunded_cents: self.row.refunded_cents,
        })
    }

    /// The delivery, once the order is confirmed and the delivery opened.
    async fn delivery(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Delivery>> {
        let Some(delivery_id) = self.row.delivery_id else { return Ok(None) };
        Ok(request(ctx)?.loader.load_one(DeliveryKey(delivery_id)).await?.map(Delivery::from))
    }

    /// Why the order was cancelled, if it was.
    async fn cancellation_reason(&self) -> Option<&str> {
        self.row.cancellation_reason.as_deref()
    }

    /// Every status change, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<OrderStatusChange>> {
        let rows = request(ctx)?.loader.load_one(StatusHistoryKey(self.row.order_id)).await?.unwrap_or_default();
        rows.into_iter()
            .map(|r| Ok(OrderStatusChange { status: OrderStatus::parse(&r.status)?, reason: r.reason, at: r.at }))
            .collect::<Result<Vec<_>, Error>>()
            .map_err(Into::into)
    }
}

pub struct OrderLine(LineRow);

#[Object]
impl OrderLine {
    async fn product_id(&self) -> ID {
        ID(self.0.product_id.to_string())
    }

    /// The product as it is now (null if the catalogue does not know it).
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        Ok(request(ctx)?.loader.load_one(ProductKey(self.0.product_id)).await?.map(Product::from))
    }

    async fn vendor_id(&self) -> ID {
        ID(self.0.vendor_id.to_string())
    }

    /// The title at checkout.
    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn quantity(&self) -> i64 {
        self.0.quantity
    }

    /// The unit price at checkout.
    async fn unit_price_cents(&self) -> i64 {
        self.0.unit_price_cents
    }

    async fn total_cents(&self) -> i64 {
        self.0.total_cents
    }
}

#[derive(SimpleObject)]
pub struct Payment {
    pub state: PaymentState,
    pub amount_cents: i64,
    pub currency: String,
    /// The gateway's authorisation (buyer and admins only).
    pub authorization_id: Option<String>,
    pub decline_reason: Option<String>,
    pub refunded_cents: i64,
}

#[derive(SimpleObject)]
pub struct OrderStatusChange {
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// How long a subscription push waits for the read models to show the change it announces.
const PUSH_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct OrderSubscription;

#[Subscription]
impl OrderSubscription {
    /// The order now, then again each time its read model changes (payment, confirmation,
    /// delivery, each tracking event). Only for the buyer who placed it.
    async fn order_updated(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Order>> + use<>> {
        let request = request(ctx)?;
        let caller = request.viewer.caller()?;
        let order_id = parse_id("order", &order_id)?;
        let shared = shared(ctx)?.clone();
        // Subscribe before the first read, so no change after it is missed.
        let (receiver, seen) = shared.updates.subscribe().await?;
        // Events the hub already passed on before we subscribed must be in what we read.
        let waited = wait_sources(&shared, seen).await;
        if let Err(error) = waited {
            tracing::debug!(%error, "order subscription starts before the read models caught up");
        }
        if let Some(token) = request.consistency.token() {
            wait_sources(&shared, token).await?;
        }
        let read = shared.read.clone();
        let snapshot = load(&read, order_id).await?;
        match &snapshot {
            Some((row, _)) if row.buyer_id == Some(caller.account_id) => {}
            _ => return Err(Error::NotFound("order").into()),
        }
        let state = Pushes { shared, read, order_id, receiver, first: snapshot, last: None };
        Ok(futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        }))
    }
}

/// Wait until the orders and deliveries read models reach `position` (bounded).
async fn wait_sources(shared: &super::Shared, position: events::LogPosition) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + PUSH_WAIT;
    for source in [Source::Orders, Source::Deliveries] {
        shared.checkpoints.wait(source, position, deadline).await?;
    }
    Ok(())
}

/// What a push compares to tell a change: the order row's and the delivery row's last
/// update.
type Fingerprint = (DateTime<Utc>, Option<DateTime<Utc>>);

/// The order row and its fingerprint, read fresh (no request cache).
async fn load(read: &ReadModels, order_id: Uuid) -> Result<Option<(OrderRow, Fingerprint)>, Error> {
    let Some(row) = orders::orders(read.pool(), &[order_id]).await?.into_iter().next() else { return Ok(None) };
    let delivery_at = match row.delivery_id {
        Some(delivery_id) => crate::read_models::deliveries::deliveries(read.pool(), &[delivery_id])
            .await?
            .into_iter()
            .next()
            .map(|d| d.updated_at),
        None => None,
    };
    let fingerprint = (row.updated_at, delivery_at);
    Ok(Some((row, fingerprint)))
}

/// The state of one subscription.
struct Pushes {
    shared: std::sync::Arc<super::Shared>,
    read: ReadModels,
    order_id: Uuid,
    receiver: tokio::sync::broadcast::Receiver<OrderChanged>,
    first: Option<(OrderRow, Fingerprint)>,
    last: Option<Fingerprint>,
}

impl Pushes {
    /// The next order to push; `None` ends the subscription (server shutting down).
    async fn next(&mut self) -> Option<async_graphql::Result<Order>> {
        if let Some((row, fingerprint)) = self.first.take() {
            self.last = Some(fingerprint);
            return Some(Ok(Order::new(row, OrderAccess::Full)));
        }
        loop {
            let position = match self.receiver.recv().await {
                Ok(changed) if changed.order_id == self.order_id => Some(changed.position),
                Ok(_) => continue,
                // Missed some announcements: look whether ours was among them.
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return None,
            };
            if let Some(position) = position
                && let Err(error) = wait_sources(&self.shared, position).await
            {
                tracing::warn!(order_id = %self.order_id, %error, "pushing an order update before its read model caught up");
            }
            match load(&self.read, self.order_id).await {
                Ok(Some((row, fingerprint))) if Some(fingerprint) != self.last => {
                    self.last = Some(fingerprint);
                    return Some(Ok(Order::new(row, OrderAccess::Full)));
                }
                Ok(_) => continue,
                Err(error) => return Some(Err(error.into())),
            }
        }
    }
}
