//! The simulation: a deterministic marketplace (seeded), producing one append after another,
//! each with the exact expected version of every stream it touches.

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::domain::DomainEvent;
use events::domain::accounts::{
    AccountErased, AccountEvent, AccountNameChanged, AccountRegistered, EmailClaimed, EmailEvent, EmailReleased, Role,
};
use events::domain::catalog::*;
use events::domain::deliveries::{DeliveryCreated, DeliveryEvent, DeliveryTracked, TrackingStatus};
use events::domain::orders::*;
use events::domain::payments::*;
use events::domain::reviews::{ReviewApproved, ReviewEvent, ReviewRejected, ReviewSubmitted};
use events::privacy::{KeyVault, Sealed};
use events::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent, StreamId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::HistoryConfig;
use crate::Result;

/// One append of the plan, with what must happen just before it.
pub struct Planned {
    pub request: AppendRequest,
    /// Destroy this account's personal-data key once the append landed (erasure, in the
    /// command's order: events first, then the key).
    pub erase_key: Option<Uuid>,
}

impl Planned {
    pub fn streams(&self) -> impl Iterator<Item = &str> {
        self.request.streams.iter().map(|s| s.stream_id.as_str())
    }
}

struct Account {
    id: Uuid,
    version: u64,
    email_stream: StreamId,
    erased: bool,
    /// Orders not finished yet (an account with some is not erased).
    open_orders: u32,
    cart_version: u64,
    purchases_version: u64,
    /// Products delivered to this buyer and not reviewed yet.
    reviewable: Vec<usize>,
}

struct Product {
    id: Uuid,
    vendor: usize,
    title: String,
    price_cents: i64,
    stock: u32,
    version: u64,
    listed: bool,
}

enum Stage {
    AwaitingPayment,
    Confirmed,
    Shipping { delivery: Uuid, carrier: usize, version: u64, step: usize, route: Vec<TrackingStatus> },
}

struct Order {
    id: Uuid,
    buyer: usize,
    lines: Vec<OrderLine>,
    product_indexes: Vec<usize>,
    total_cents: i64,
    version: u64,
    payment_version: u64,
    stage: Stage,
}

struct PendingReview {
    id: Uuid,
    product: usize,
    rating: u8,
}

pub struct Simulation {
    rng: StdRng,
    vault: KeyVault,
    config: HistoryConfig,
    admins: Vec<Account>,
    carriers: Vec<Account>,
    vendors: Vec<Account>,
    buyers: Vec<Account>,
    products: Vec<Product>,
    orders: Vec<Order>,
    reviews: Vec<PendingReview>,
    /// Buyers with delivered products not reviewed yet.
    reviewers: Vec<usize>,
    /// Reviews ever submitted: one per buyer and product.
    reviewed: std::collections::HashSet<Uuid>,
    /// Registration appends still to plan: (role, index).
    to_register: Vec<(Role, usize)>,
    to_list: usize,
    clock: DateTime<Utc>,
    pub events: u64,
    pub orders_placed: usize,
    pub erased: usize,
}

const FIRST: &[&str] = &[
    "Ada", "Bea", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena", "Milo", "Noor", "Omar",
    "Pia",
];
const LAST: &[&str] = &[
    "Martin", "Okafor", "Silva", "Kowalski", "Nguyen", "Haddad", "Rossi", "Berg", "Tanaka", "Moreau", "Diaz", "Novak",
];
const CATEGORIES: &[&str] = &[
    "kitchen",
    "garden",
    "books",
    "toys",
    "electronics",
    "sports",
    "fashion",
    "beauty",
    "office",
    "pets",
    "music",
    "tools",
];
const BRANDS: &[&str] = &["Acme", "Nordlys", "Kumo", "Verde", "Atlas", "Pico", "Brava", "Lumen", "Oaken", "Zephyr"];
const ADJECTIVES: &[&str] =
    &["compact", "deluxe", "classic", "portable", "eco", "smart", "vintage", "heavy-duty", "mini", "pro"];
const NOUNS: &[&str] = &[
    "kettle", "lamp", "backpack", "notebook", "speaker", "trowel", "puzzle", "racket", "jacket", "brush", "stapler",
    "leash", "ukulele", "drill", "mug", "blender",
];
const CITIES: &[&str] = &["Lyon", "Berlin", "Porto", "Milan", "Gdansk", "Ghent", "Bilbao", "Tallinn", "Graz", "Aarhus"];

impl Simulation {
    /// Create every account's personal-data key (needed to seal at planning time).
    pub async fn new(vault: KeyVault, config: HistoryConfig) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let make = |count: usize, rng: &mut StdRng| -> Vec<Account> {
            (0..count)
                .map(|_| Account {
                    id: random_uuid(rng),
                    version: 0,
                    email_stream: StreamId::from_raw(""),
                    erased: false,
                    open_orders: 0,
                    cart_version: 0,
                    purchases_version: 0,
                    reviewable: Vec::new(),
                })
                .collect()
        };
        let admins = make(config.admins.max(1), &mut rng);
        let carriers = make(config.carriers.max(1), &mut rng);
        let vendors = make(config.vendors.max(1), &mut rng);
        let buyers = make(config.buyers.max(1), &mut rng);
        let mut to_register = Vec::new();
        to_register.extend((0..admins.len()).map(|i| (Role::Admin, i)));
        to_register.extend((0..carriers.len()).map(|i| (Role::Carrier, i)));
        to_register.extend((0..vendors.len()).map(|i| (Role::Vendor, i)));
        to_register.extend((0..buyers.len()).map(|i| (Role::Buyer, i)));
        to_register.reverse();
        let ids: Vec<Uuid> = admins.iter().chain(&carriers).chain(&vendors).chain(&buyers).map(|a| a.id).collect();
        for chunk in ids.chunks(64) {
            let created = futures_util::future::join_all(chunk.iter().map(|id| vault.create_key(*id))).await;
            created.into_iter().collect::<std::result::Result<Vec<()>, _>>()?;
        }
        vault.preload(&ids).await?;
        let clock = Utc.with_ymd_and_hms(2025, 1, 1, 8, 0, 0).single().unwrap_or_else(Utc::now);
        let to_list = config.products.max(1);
        Ok(Self {
            rng,
            vault,
            config,
            admins,
            carriers,
            vendors,
            buyers,
            products: Vec::new(),
            orders: Vec::new(),
            reviews: Vec::new(),
            reviewers: Vec::new(),
            reviewed: std::collections::HashSet::new(),
            to_register,
            to_list,
            clock,
            events: 0,
            orders_placed: 0,
            erased: 0,
        })
    }

    fn pick<'a>(&mut self, list: &'a [&'a str]) -> &'a str {
        list[self.rng.random_range(0..list.len())]
    }

    fn event<E: DomainEvent>(&mut self, event: &E, actor: Uuid) -> NewEvent {
        let metadata = EventMetadata { correlation_id: None, causation_id: None, actor: Some(actor.to_string()) };
        NewEvent::from_domain_with_id(random_uuid(&mut self.rng), event, metadata)
    }

    async fn seal(&self, key: Uuid, text: &str) -> Result<Sealed> {
        Ok(self.vault.seal(key, text).await?)
    }

    fn done(&mut self, request: AppendRequest, erase_key: Option<Uuid>) -> Planned {
        self.events += request.event_count() as u64;
        Planned { request, erase_key }
    }

    /// The next append; `None` once the target is reached.
    pub async fn next(&mut self) -> Result<Option<Planned>> {
        if let Some((role, index)) = self.to_register.pop() {
            return self.register(role, index).await.map(Some);
        }
        if self.to_list > 0 {
            self.to_list -= 1;
            return Ok(Some(self.list_product()));
        }
        if self.events >= self.config.events {
            return Ok(None);
        }
        let orders_done = self.config.orders.is_some_and(|max| self.orders_placed >= max);
        if orders_done && self.orders.is_empty() && self.reviews.is_empty() && self.reviewers.is_empty() {
            return Ok(None);
        }
        self.clock += Duration::seconds(self.rng.random_range(5..90));
        for _ in 0..8 {
            let roll: f64 = self.rng.random();
            let planned = match roll {
                r if r < 0.28 && !orders_done => self.place_order(),
                r if r < 0.28 => None,
                r if r < 0.78 => self.advance_order().await?,
                r if r < 0.82 => self.change_price(),
                r if r < 0.86 => Some(self.restock(None)),
                r if r < 0.875 => self.change_details(),
                r if r < 0.878 => self.delist(),
                r if r < 0.945 => self.submit_review(),
                r if r < 0.985 => self.moderate_review(),
                r if r < 0.997 => self.rename().await?,
                _ => self.erase(),
            };
            if let Some(planned) = planned {
                return Ok(Some(planned));
            }
        }
        Ok(Some(self.restock(None)))
    }

    fn accounts(&mut self, role: Role) -> &mut Vec<Account> {
        match role {
            Role::Admin => &mut self.admins,
            Role::Carrier => &mut self.carriers,
            Role::Vendor => &mut self.vendors,
            Role::Buyer => &mut self.buyers,
        }
    }

    async fn register(&mut self, role: Role, index: usize) -> Result<Planned> {
        let name = format!("{} {}", self.pick(FIRST), self.pick(LAST));
        let email = format!("{}{}.s{}@example.com", role.as_str(), index, self.config.seed);
        let id = self.accounts(role)[index].id;
        let email_stream = email_stream(&email);
        let registered = AccountEvent::Registered(AccountRegistered {
            account_id: id,
            role,
            email: self.seal(id, &email).await?,
            name: self.seal(id, &name).await?,
            password_hash: self.config.password_hash.clone(),
        });
        let claimed = EmailEvent::Claimed(EmailClaimed { account_id: id });
        let (registered, claimed) = (self.event(&registered, id), self.event(&claimed, id));
        let account = &mut self.accounts(role)[index];
        account.version = 1;
        account.email_stream = email_stream.clone();
        let request = AppendRequest::new()
            .stream(StreamId::new("account", id), ExpectedVersion::NoStream, vec![registered])
            .stream(email_stream, ExpectedVersion::NoStream, vec![claimed]);
        Ok(self.done(request, None))
    }

    fn list_product(&mut self) -> Planned {
        let vendor = self.rng.random_range(0..self.vendors.len());
        let vendor_id = self.vendors[vendor].id;
        let id = random_uuid(&mut self.rng);
        let title = format!("{} {} {}", self.pick(BRANDS), self.pick(ADJECTIVES), self.pick(NOUNS));
        let category = self.pick(CATEGORIES).to_owned();
        let brand = title.split(' ').next().unwrap_or("Acme").to_owned();
        let price_cents = self.rng.random_range(3..400) * 100 + 99;
        let stock = self.rng.random_range(20..200);
        let listed = ProductEvent::Listed(ProductListed {
            product_id: id,
            vendor_id,
            title: title.clone(),
            description: format!(
                "A {} for everyday use, sold in {} by a trusted vendor.",
                title.to_lowercase(),
                category
            ),
            category,
            brand,
            price_cents,
            currency: self.config.currency.clone(),
            stock,
        });
        let event = self.event(&listed, vendor_id);
        self.products.push(Product { id, vendor, title, price_cents, stock, version: 1, listed: true });
        self.done(
            AppendRequest::new().stream(StreamId::new("product", id), ExpectedVersion::NoStream, vec![event]),
            None,
        )
    }

    fn product_stream(&self, index: usize) -> (StreamId, ExpectedVersion) {
        let p = &self.products[index];
        (StreamId::new("product", p.id), ExpectedVersion::at(p.version))
    }

    fn random_listed_product(&mut self) -> Option<usize> {
        for _ in 0..8 {
            let i = self.rng.random_range(0..self.products.len());
            if self.products[i].listed {
                return Some(i);
            }
        }
        None
    }

    fn random_buyer(&mut self) -> Option<usize> {
        for _ in 0..8 {
            let i = self.rng.random_range(0..self.buyers.len());
            if !self.buyers[i].erased {
                return Some(i);
            }
        }
        None
    }

    /// A cart change (own append), or the checkout (order, payment, cart, stock in one).
    fn place_order(&mut self) -> Option<Planned> {
        let buyer = self.random_buyer()?;
        let buyer_id = self.buyers[buyer].id;
        let address = format!("{} {} street, {}", self.rng.random_range(1..200), self.pick(LAST), self.pick(CITIES));
        // The key is in the vault's cache (every key is preloaded at start): sealing needs no
        // await, so the order is planned in one step.
        let shipping_address = self.seal_now(buyer_id, &address)?;
        let wanted = self.rng.random_range(1..=3);
        let mut picked: Vec<usize> = Vec::new();
        for _ in 0..wanted * 3 {
            if picked.len() == wanted {
                break;
            }
            if let Some(i) = self.random_listed_product()
                && self.products[i].stock > 0
                && !picked.contains(&i)
            {
                picked.push(i);
            }
        }
        if picked.is_empty() {
            let i = self.random_listed_product()?;
            return Some(self.restock(Some(i)));
        }
        let order_id = random_uuid(&mut self.rng);
        let cart_stream = StreamId::new("cart", buyer_id);
        let mut cart_events = Vec::new();
        let mut lines = Vec::new();
        let mut request = AppendRequest::new();
        for &i in &picked {
            let quantity = self.rng.random_range(1..=3u32).min(self.products[i].stock);
            let product = &self.products[i];
            let line = OrderLine {
                product_id: product.id,
                vendor_id: self.vendors[product.vendor].id,
                title: product.title.clone(),
                quantity,
                unit_price_cents: product.price_cents,
            };
            let item = CartEvent::ItemSet(CartItemSet { product_id: line.product_id, quantity });
            cart_events.push(self.event(&item, buyer_id));
            let (stream, expected) = self.product_stream(i);
            let product = &mut self.products[i];
            product.stock -= quantity;
            product.version += 1;
            let reserved =
                ProductEvent::StockReserved(ProductStockReserved { order_id, quantity, stock: product.stock });
            let event = self.event(&reserved, buyer_id);
            request = request.stream(stream, expected, vec![event]);
            lines.push(line);
        }
        let checked_out = CartEvent::CheckedOut(CartCheckedOut { order_id });
        cart_events.push(self.event(&checked_out, buyer_id));
        let total_cents: i64 = lines.iter().map(OrderLine::total_cents).sum();
        let placed = OrderEvent::Placed(OrderPlaced {
            order_id,
            buyer_id,
            lines: lines.clone(),
            currency: self.config.currency.clone(),
            total_cents,
            shipping_address,
        });
        let requested = PaymentEvent::Requested(PaymentRequested {
            order_id,
            buyer_id,
            amount_cents: total_cents,
            currency: self.config.currency.clone(),
            payment_token: format!("tok_{:016x}", self.rng.random::<u64>()),
        });
        let (placed, requested) = (self.event(&placed, buyer_id), self.event(&requested, buyer_id));
        let account = &mut self.buyers[buyer];
        let cart_expected = ExpectedVersion::at(account.cart_version);
        account.cart_version += cart_events.len() as u64;
        account.open_orders += 1;
        request = request
            .stream(cart_stream, cart_expected, cart_events)
            .stream(StreamId::new("order", order_id), ExpectedVersion::NoStream, vec![placed])
            .stream(StreamId::new("payment", order_id), ExpectedVersion::NoStream, vec![requested]);
        self.orders.push(Order {
            id: order_id,
            buyer,
            lines,
            product_indexes: picked,
            total_cents,
            version: 1,
            payment_version: 1,
            stage: Stage::AwaitingPayment,
        });
        self.orders_placed += 1;
        Some(self.done(request, None))
    }

    /// Seal with a key already in the vault's cache (every key is preloaded at start).
    fn seal_now(&self, key: Uuid, text: &str) -> Option<Sealed> {
        let vault = self.vault.clone();
        let text = text.to_owned();
        // KeyVault::seal only awaits when the key is not cached; it is, so this completes at
        // once. `now_or_never` keeps the planner free of a second await point per order.
        futures_util::FutureExt::now_or_never(async move { vault.seal(key, &text).await }).and_then(|r| r.ok())
    }

    fn release(&mut self, order: &Order, mut request: AppendRequest, actor: Uuid) -> AppendRequest {
        for (line, &i) in order.lines.iter().zip(&order.product_indexes) {
            let (stream, expected) = self.product_stream(i);
            let product = &mut self.products[i];
            product.stock += line.quantity;
            product.version += 1;
            let released = ProductEvent::StockReleased(ProductStockReleased {
                order_id: order.id,
                quantity: line.quantity,
                stock: product.stock,
            });
            let event = self.event(&released, actor);
            request = request.stream(stream, expected, vec![event]);
        }
        request
    }

    fn finish(&mut self, index: usize) -> Order {
        let order = self.orders.swap_remove(index);
        let buyer = &mut self.buyers[order.buyer];
        buyer.open_orders = buyer.open_orders.saturating_sub(1);
        order
    }

    async fn advance_order(&mut self) -> Result<Option<Planned>> {
        if self.orders.is_empty() {
            return Ok(None);
        }
        let index = self.rng.random_range(0..self.orders.len());
        let system = self.admins[0].id;
        let order_id = self.orders[index].id;
        let order_stream = StreamId::new("order", order_id);
        let payment_stream = StreamId::new("payment", order_id);
        let roll: f64 = self.rng.random();
        let stage = std::mem::replace(&mut self.orders[index].stage, Stage::AwaitingPayment);
        match stage {
            Stage::AwaitingPayment if roll < 0.9 => {
                let authorization_id = format!("auth_{:016x}", self.rng.random::<u64>());
                let (total_cents, payment_version, version) = {
                    let order = &self.orders[index];
                    (order.total_cents, order.payment_version, order.version)
                };
                let authorized = PaymentEvent::Authorized(PaymentAuthorized {
                    order_id,
                    authorization_id: authorization_id.clone(),
                    amount_cents: total_cents,
                });
                let confirmed = OrderEvent::Confirmed(OrderConfirmed { authorization_id });
                let (authorized, confirmed) = (self.event(&authorized, system), self.event(&confirmed, system));
                let request = AppendRequest::new()
                    .stream(payment_stream, ExpectedVersion::at(payment_version), vec![authorized])
                    .stream(order_stream, ExpectedVersion::at(version), vec![confirmed]);
                let order = &mut self.orders[index];
                order.payment_version += 1;
                order.version += 1;
                order.stage = Stage::Confirmed;
                Ok(Some(self.done(request, None)))
            }
            Stage::AwaitingPayment => {
                let order = self.finish(index);
                let declined =
                    PaymentEvent::Declined(PaymentDeclined { order_id, reason: "insufficient_funds".into() });
                let cancelled = OrderEvent::Cancelled(OrderCancelled {
                    reason: "payment_declined".into(),
                    released: order.lines.clone(),
                });
                let request = AppendRequest::new()
                    .stream(
                        payment_stream,
                        ExpectedVersion::at(order.payment_version),
                        vec![self.event(&declined, system)],
                    )
                    .stream(order_stream, ExpectedVersion::at(order.version), vec![self.event(&cancelled, system)]);
                let request = self.release(&order, request, system);
                Ok(Some(self.done(request, None)))
            }
            Stage::Confirmed if roll < 0.05 => {
                let order = self.finish(index);
                let buyer_id = self.buyers[order.buyer].id;
                let refund_id = format!("re_{:016x}", self.rng.random::<u64>());
                let cancelled = OrderEvent::Cancelled(OrderCancelled {
                    reason: "buyer_request".into(),
                    released: order.lines.clone(),
                });
                let refunded = OrderEvent::Refunded(OrderRefunded {
                    amount_cents: order.total_cents,
                    refund_id: refund_id.clone(),
                });
                let payment_refunded =
                    PaymentEvent::Refunded(PaymentRefunded { order_id, refund_id, amount_cents: order.total_cents });
                let order_events = vec![self.event(&cancelled, buyer_id), self.event(&refunded, buyer_id)];
                let request =
                    AppendRequest::new().stream(order_stream, ExpectedVersion::at(order.version), order_events).stream(
                        payment_stream,
                        ExpectedVersion::at(order.payment_version),
                        vec![self.event(&payment_refunded, buyer_id)],
                    );
                let request = self.release(&order, request, buyer_id);
                Ok(Some(self.done(request, None)))
            }
            Stage::Confirmed => {
                let delivery = random_uuid(&mut self.rng);
                let carrier = self.rng.random_range(0..self.carriers.len());
                let buyer_id = self.buyers[self.orders[index].buyer].id;
                let address =
                    format!("{} {} street, {}", self.rng.random_range(1..200), self.pick(LAST), self.pick(CITIES));
                let shipping_address = self.seal(buyer_id, &address).await?;
                let created = DeliveryEvent::Created(DeliveryCreated {
                    delivery_id: delivery,
                    order_id,
                    buyer_id,
                    shipping_address,
                });
                let order = &self.orders[index];
                // The order stream is checked, not written: the delivery follows its confirmation.
                let request =
                    AppendRequest::new().stream(order_stream, ExpectedVersion::at(order.version), vec![]).stream(
                        StreamId::new("delivery", delivery),
                        ExpectedVersion::NoStream,
                        vec![self.event(&created, system)],
                    );
                let mut route = vec![TrackingStatus::PickedUp, TrackingStatus::InTransit];
                if self.rng.random_bool(0.1) {
                    route.push(TrackingStatus::FailedAttempt);
                }
                route.push(TrackingStatus::OutForDelivery);
                route.push(if self.rng.random_bool(0.02) {
                    TrackingStatus::Returned
                } else {
                    TrackingStatus::Delivered
                });
                self.orders[index].stage = Stage::Shipping { delivery, carrier, version: 1, step: 0, route };
                Ok(Some(self.done(request, None)))
            }
            Stage::Shipping { delivery, carrier, version, step, route } => {
                let status = route[step];
                let carrier_id = self.carriers[carrier].id;
                self.clock += Duration::minutes(self.rng.random_range(30..600));
                let tracked = DeliveryEvent::Tracked(DeliveryTracked {
                    delivery_id: delivery,
                    order_id,
                    carrier_id,
                    status,
                    location: self.pick(CITIES).to_owned(),
                    occurred_at: self.clock,
                });
                let delivery_stream = StreamId::new("delivery", delivery);
                let mut request = AppendRequest::new().stream(
                    delivery_stream,
                    ExpectedVersion::at(version),
                    vec![self.event(&tracked, carrier_id)],
                );
                if !status.is_final() {
                    self.orders[index].stage =
                        Stage::Shipping { delivery, carrier, version: version + 1, step: step + 1, route };
                    return Ok(Some(self.done(request, None)));
                }
                let order = self.finish(index);
                if status == TrackingStatus::Delivered {
                    let buyer = &self.buyers[order.buyer];
                    let (buyer_id, purchases) = (buyer.id, buyer.purchases_version);
                    let delivered = OrderEvent::Delivered(OrderDelivered { delivery_id: delivery });
                    let purchase = PurchaseEvent::Delivered(PurchaseDelivered {
                        order_id,
                        product_ids: order.lines.iter().map(|l| l.product_id).collect(),
                    });
                    request = request
                        .stream(
                            order_stream,
                            ExpectedVersion::at(order.version),
                            vec![self.event(&delivered, carrier_id)],
                        )
                        .stream(
                            StreamId::new("purchases", buyer_id),
                            ExpectedVersion::at(purchases),
                            vec![self.event(&purchase, carrier_id)],
                        );
                    let buyer = &mut self.buyers[order.buyer];
                    buyer.purchases_version += 1;
                    buyer.reviewable.extend(order.product_indexes.iter().copied());
                    self.reviewers.push(order.buyer);
                }
                Ok(Some(self.done(request, None)))
            }
        }
    }

    fn change_price(&mut self) -> Option<Planned> {
        let i = self.random_listed_product()?;
        let vendor_id = self.vendors[self.products[i].vendor].id;
        let percent: i64 = self.rng.random_range(80..125);
        let price_cents = ((self.products[i].price_cents * percent) / 100).max(99);
        let (stream, expected) = self.product_stream(i);
        let changed =
            ProductEvent::PriceChanged(ProductPriceChanged { price_cents, currency: self.config.currency.clone() });
        let event = self.event(&changed, vendor_id);
        let product = &mut self.products[i];
        product.price_cents = price_cents;
        product.version += 1;
        Some(self.done(AppendRequest::new().stream(stream, expected, vec![event]), None))
    }

    fn restock(&mut self, product: Option<usize>) -> Planned {
        let i = product.unwrap_or_else(|| self.rng.random_range(0..self.products.len()));
        let vendor_id = self.vendors[self.products[i].vendor].id;
        let delta = self.rng.random_range(10..60u32);
        let (stream, expected) = self.product_stream(i);
        let product = &mut self.products[i];
        product.stock += delta;
        product.version += 1;
        let adjusted = ProductEvent::StockAdjusted(ProductStockAdjusted {
            delta: i64::from(delta),
            reason: StockAdjustmentReason::Restock,
            stock: product.stock,
        });
        let event = self.event(&adjusted, vendor_id);
        self.done(AppendRequest::new().stream(stream, expected, vec![event]), None)
    }

    fn change_details(&mut self) -> Option<Planned> {
        let i = self.random_listed_product()?;
        let vendor_id = self.vendors[self.products[i].vendor].id;
        let title = format!("{} {} {}", self.pick(BRANDS), self.pick(ADJECTIVES), self.pick(NOUNS));
        let category = self.pick(CATEGORIES).to_owned();
        let changed = ProductEvent::DetailsChanged(ProductDetailsChanged {
            title: title.clone(),
            description: format!("New and improved: {}.", title.to_lowercase()),
            category,
            brand: title.split(' ').next().unwrap_or("Acme").to_owned(),
        });
        let (stream, expected) = self.product_stream(i);
        let event = self.event(&changed, vendor_id);
        let product = &mut self.products[i];
        product.title = title;
        product.version += 1;
        Some(self.done(AppendRequest::new().stream(stream, expected, vec![event]), None))
    }

    fn delist(&mut self) -> Option<Planned> {
        let i = self.random_listed_product()?;
        let vendor_id = self.vendors[self.products[i].vendor].id;
        let (stream, expected) = self.product_stream(i);
        let delisted = ProductEvent::Delisted(ProductDelisted { product_id: self.products[i].id });
        let event = self.event(&delisted, vendor_id);
        let product = &mut self.products[i];
        product.listed = false;
        product.version += 1;
        Some(self.done(AppendRequest::new().stream(stream, expected, vec![event]), None))
    }

    fn submit_review(&mut self) -> Option<Planned> {
        if self.reviewers.is_empty() {
            return None;
        }
        let slot = self.rng.random_range(0..self.reviewers.len());
        let buyer = self.reviewers[slot];
        let product = self.buyers[buyer].reviewable.pop();
        if self.buyers[buyer].reviewable.is_empty() || self.buyers[buyer].erased {
            self.reviewers.swap_remove(slot);
        }
        let product = product.filter(|_| !self.buyers[buyer].erased)?;
        let buyer_id = self.buyers[buyer].id;
        let review_id = events::ids::derived("review", &[buyer_id.as_bytes(), self.products[product].id.as_bytes()]);
        if !self.reviewed.insert(review_id) {
            return None;
        }
        let rating = self.rng.random_range(1..=5u8);
        let submitted = ReviewEvent::Submitted(ReviewSubmitted {
            review_id,
            product_id: self.products[product].id,
            buyer_id,
            rating,
            text: format!("{} stars: {} {}.", rating, self.pick(ADJECTIVES), self.pick(NOUNS)),
        });
        let event = self.event(&submitted, buyer_id);
        let purchases = self.buyers[buyer].purchases_version;
        self.reviews.push(PendingReview { id: review_id, product, rating });
        // The buyer's purchases stream is checked (the review rule reads it), not written.
        let request = AppendRequest::new()
            .stream(StreamId::new("purchases", buyer_id), ExpectedVersion::at(purchases), vec![])
            .stream(StreamId::new("review", review_id), ExpectedVersion::NoStream, vec![event]);
        Some(self.done(request, None))
    }

    fn moderate_review(&mut self) -> Option<Planned> {
        if self.reviews.is_empty() {
            return None;
        }
        let index = self.rng.random_range(0..self.reviews.len());
        let review = self.reviews.swap_remove(index);
        let admin = self.admins[self.rng.random_range(0..self.admins.len())].id;
        let product_id = self.products[review.product].id;
        let event = if self.rng.random_bool(0.8) {
            self.event(
                &ReviewEvent::Approved(ReviewApproved {
                    review_id: review.id,
                    product_id,
                    rating: review.rating,
                    moderator_id: admin,
                }),
                admin,
            )
        } else {
            self.event(
                &ReviewEvent::Rejected(ReviewRejected {
                    review_id: review.id,
                    product_id,
                    moderator_id: admin,
                    reason: "off_topic".into(),
                }),
                admin,
            )
        };
        let request =
            AppendRequest::new().stream(StreamId::new("review", review.id), ExpectedVersion::Exact(1), vec![event]);
        Some(self.done(request, None))
    }

    async fn rename(&mut self) -> Result<Option<Planned>> {
        let role = if self.rng.random_bool(0.2) { Role::Vendor } else { Role::Buyer };
        let count = self.accounts(role).len();
        let index = self.rng.random_range(0..count);
        if self.accounts(role)[index].erased {
            return Ok(None);
        }
        let id = self.accounts(role)[index].id;
        let name = format!("{} {}", self.pick(FIRST), self.pick(LAST));
        let changed = AccountEvent::NameChanged(AccountNameChanged { name: self.seal(id, &name).await? });
        let event = self.event(&changed, id);
        let account = &mut self.accounts(role)[index];
        let expected = ExpectedVersion::at(account.version);
        account.version += 1;
        Ok(Some(self.done(AppendRequest::new().stream(StreamId::new("account", id), expected, vec![event]), None)))
    }

    /// Erase a buyer with no open order: key destroyed, account erased, email released.
    fn erase(&mut self) -> Option<Planned> {
        let buyer = self.random_buyer()?;
        let account = &self.buyers[buyer];
        if account.open_orders > 0 {
            return None;
        }
        let (id, version, email_stream) = (account.id, account.version, account.email_stream.clone());
        let erased = AccountEvent::Erased(AccountErased { account_id: id });
        let released = EmailEvent::Released(EmailReleased { account_id: id });
        let (erased, released) = (self.event(&erased, id), self.event(&released, id));
        let account = &mut self.buyers[buyer];
        account.erased = true;
        account.version += 1;
        self.erased += 1;
        let request = AppendRequest::new()
            .stream(StreamId::new("account", id), ExpectedVersion::at(version), vec![erased])
            .stream(email_stream, ExpectedVersion::Exact(1), vec![released]);
        Some(self.done(request, Some(id)))
    }
}

/// The email registry stream, named as the command side names it (SHA-256 of the
/// normalised address, in hex), so generated and real histories look alike.
pub fn email_stream(email: &str) -> StreamId {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    StreamId::new(events::domain::accounts::EMAIL_CATEGORY, hex)
}

/// A random (v4-shaped) UUID from the seeded generator.
fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}
