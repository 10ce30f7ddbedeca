//! A small marketplace story appended straight to the log as domain events.

use std::time::Duration;

use chrono::Utc;
use events::domain::DomainEvent;
use events::domain::accounts::{AccountErased, AccountEvent, AccountRegistered, Role};
use events::domain::catalog::{ProductEvent, ProductListed, ProductPriceChanged, ProductStockReserved};
use events::domain::deliveries::{DeliveryEvent, DeliveryTracked, TrackingStatus};
use events::domain::orders::{CartEvent, CartItemSet, OrderConfirmed, OrderEvent, OrderLine, OrderPlaced};
use events::domain::reviews::{ReviewApproved, ReviewEvent};
use events::domain::webhooks::{WebhookDeliveryReplayRequested, WebhookEvent, WebhookRegistered};
use events::privacy::KeyVault;
use events::testing::contract::wait_visible;
use events::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogPosition, NewEvent, StreamId};
use uuid::Uuid;

pub struct Market<'a> {
    pub store: &'a dyn EventStore,
    pub vault: &'a KeyVault,
    pub last: LogPosition,
}

impl<'a> Market<'a> {
    pub fn new(store: &'a dyn EventStore, vault: &'a KeyVault) -> Self {
        Self { store, vault, last: LogPosition::START }
    }

    pub async fn append<E: DomainEvent>(&mut self, category: &str, id: Uuid, event: E) -> Uuid {
        let new = NewEvent::from_domain(&event, EventMetadata::default());
        let event_id = new.event_id;
        let request = AppendRequest::new().stream(StreamId::new(category, id), ExpectedVersion::Any, vec![new]);
        self.last = self.last.max(self.store.append(request).await.expect("append").position());
        event_id
    }

    pub async fn visible(&self) {
        wait_visible(self.store, self.last).await;
    }

    pub async fn account(&mut self, role: Role, name: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.vault.create_key(id).await.expect("key");
        let email = self.vault.seal(id, &format!("{}@example.test", name.to_lowercase())).await.expect("seal");
        let name = self.vault.seal(id, name).await.expect("seal");
        let registered = AccountRegistered { account_id: id, role, email, name, password_hash: "x".into() };
        self.append("account", id, AccountEvent::Registered(registered)).await;
        id
    }

    pub async fn erase(&mut self, account: Uuid) {
        self.vault.erase(account).await.expect("erase");
        self.append("account", account, AccountEvent::Erased(AccountErased { account_id: account })).await;
    }

    pub async fn product(&mut self, vendor: Uuid, title: &str) -> Uuid {
        let id = Uuid::now_v7();
        let listed = ProductListed {
            product_id: id,
            vendor_id: vendor,
            title: title.into(),
            description: "A fine thing".into(),
            category: "home".into(),
            brand: "Acme".into(),
            price_cents: 1999,
            currency: "EUR".into(),
            stock: 1,
        };
        self.append("product", id, ProductEvent::Listed(listed)).await;
        id
    }

    pub async fn reprice(&mut self, product: Uuid, cents: i64) {
        let changed = ProductPriceChanged { price_cents: cents, currency: "EUR".into() };
        self.append("product", product, ProductEvent::PriceChanged(changed)).await;
    }

    /// A cart change: an internal event, never published.
    pub async fn cart(&mut self, buyer: Uuid, product: Uuid) {
        self.append("cart", buyer, CartEvent::ItemSet(CartItemSet { product_id: product, quantity: 1 })).await;
    }

    /// Order placed (and the last unit of the product reserved), returns the order id.
    pub async fn order(&mut self, buyer: Uuid, vendor: Uuid, product: Uuid) -> Uuid {
        let order_id = Uuid::now_v7();
        let shipping_address = self.vault.seal(buyer, "1 Secret Lane, Hometown").await.expect("seal");
        let placed = OrderPlaced {
            order_id,
            buyer_id: buyer,
            lines: vec![OrderLine {
                product_id: product,
                vendor_id: vendor,
                title: "Kettle".into(),
                quantity: 1,
                unit_price_cents: 1999,
            }],
            currency: "EUR".into(),
            total_cents: 1999,
            shipping_address,
        };
        self.append("order", order_id, OrderEvent::Placed(placed)).await;
        let reserved = ProductStockReserved { order_id, quantity: 1, stock: 0 };
        self.append("product", product, ProductEvent::StockReserved(reserved)).await;
        order_id
    }

    pub async fn confirm(&mut self, order: Uuid) {
        self.append("order", order, OrderEvent::Confirmed(OrderConfirmed { authorization_id: "auth-1".into() })).await;
    }

    pub async fn track(&mut self, order: Uuid, status: TrackingStatus) {
        let delivery = events::ids::derived("test-delivery", &[order.as_bytes()]);
        let tracked = DeliveryTracked {
            delivery_id: delivery,
            order_id: order,
            carrier_id: Uuid::nil(),
            status,
            location: "Lyon hub".into(),
            occurred_at: Utc::now(),
        };
        self.append("delivery", delivery, DeliveryEvent::Tracked(tracked)).await;
    }

    pub async fn approve_review(&mut self, product: Uuid) {
        let review = Uuid::now_v7();
        let approved = ReviewApproved { review_id: review, product_id: product, rating: 5, moderator_id: Uuid::nil() };
        self.append("review", review, ReviewEvent::Approved(approved)).await;
    }

    pub async fn webhook(&mut self, url: &str, secret: &str, types: &[&str]) -> Uuid {
        let id = Uuid::now_v7();
        self.vault.create_key(id).await.expect("key");
        let secret = self.vault.seal(id, secret).await.expect("seal");
        let registered = WebhookRegistered {
            webhook_id: id,
            url: url.into(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            secret,
            registered_by: Uuid::nil(),
        };
        self.append("webhook", id, WebhookEvent::Registered(registered)).await;
        id
    }

    pub async fn replay(&mut self, webhook: Uuid, delivery: Uuid) {
        let replay =
            WebhookDeliveryReplayRequested { webhook_id: webhook, delivery_id: delivery, requested_by: Uuid::nil() };
        self.append("webhook", webhook, WebhookEvent::DeliveryReplayRequested(replay)).await;
    }

    /// A full story: a vendor lists two products, a buyer orders one (it sells out), the
    /// order is confirmed and tracked, a price changes, a review is approved; plus internal
    /// events. Returns how many integration events it makes (in log order, by type).
    pub async fn story(&mut self) -> Vec<&'static str> {
        let vendor = self.account(Role::Vendor, "Vera").await;
        let buyer = self.account(Role::Buyer, "Bob").await;
        let kettle = self.product(vendor, "Kettle").await;
        let lamp = self.product(vendor, "Lamp").await;
        self.cart(buyer, kettle).await;
        let order = self.order(buyer, vendor, kettle).await;
        self.confirm(order).await;
        self.track(order, TrackingStatus::PickedUp).await;
        self.reprice(lamp, 2499).await;
        self.approve_review(kettle).await;
        self.visible().await;
        vec![
            "product.listed",
            "product.listed",
            "order.placed",
            "product.out_of_stock",
            "order.confirmed",
            "delivery.status_changed",
            "product.price_changed",
            "review.approved",
        ]
    }
}

/// Poll `check` until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
