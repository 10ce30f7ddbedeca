//! Each read model against PostgreSQL: events appended through the store, projected by the
//! live runtime, read through the `read_model` views.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use events::domain::DomainEvent;
use events::domain::accounts::*;
use events::domain::catalog::*;
use events::domain::deliveries::*;
use events::domain::orders::*;
use events::domain::payments::*;
use events::domain::reviews::*;
use events::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogPosition, NewEvent, StreamId};
use projections::{RebuildOptions, RunOptions, rebuild, run_projectors};
use sqlx::PgPool;
use support::{ALL, Env, digest_all, wait_caught_up};
use tokio::sync::watch;
use uuid::Uuid;

struct Writer<'a> {
    env: &'a Env,
    last: LogPosition,
}

impl<'a> Writer<'a> {
    fn new(env: &'a Env) -> Self {
        Self { env, last: LogPosition::START }
    }

    /// Append to several streams at once: (stream, expected version, events).
    async fn append(&mut self, streams: Vec<(StreamId, u64, Vec<NewEvent>)>) {
        let mut request = AppendRequest::new();
        for (stream, version, events) in streams {
            request = request.stream(stream, ExpectedVersion::at(version), events);
        }
        let appended = self.env.store.append(request).await.expect("append");
        self.last = self.last.max(appended.position());
    }

    async fn one<E: DomainEvent>(&mut self, category: &str, id: Uuid, version: u64, event: E) {
        self.append(vec![(StreamId::new(category, id), version, vec![new(&event)])]).await;
    }

    /// Project everything appended so far with the live runtime.
    async fn project(&self) {
        events::testing::contract::wait_visible(&self.env.store, self.last).await;
        let (stop, shutdown) = watch::channel(false);
        let runner = tokio::spawn(run_projectors(
            self.env.pool().clone(),
            self.env.store(),
            self.env.projections(),
            RunOptions::default(),
            shutdown,
        ));
        wait_caught_up(self.env.pool(), &self.env.store, ALL, Duration::from_secs(30)).await;
        let _ = stop.send(true);
        runner.await.expect("runner").expect("projectors");
    }
}

fn new<E: DomainEvent>(event: &E) -> NewEvent {
    NewEvent::from_domain(event, EventMetadata::default())
}

fn line(product: Uuid, vendor: Uuid, quantity: u32, price: i64) -> OrderLine {
    OrderLine {
        product_id: product,
        vendor_id: vendor,
        title: format!("item {price}"),
        quantity,
        unit_price_cents: price,
    }
}

fn listed(product: Uuid, vendor: Uuid, category: &str) -> ProductEvent {
    ProductEvent::Listed(ProductListed {
        product_id: product,
        vendor_id: vendor,
        title: "Tea kettle".into(),
        description: "Whistles".into(),
        category: category.into(),
        brand: "Acme".into(),
        price_cents: 3000,
        currency: "EUR".into(),
        stock: 4,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_products_ratings_and_category_counts() {
    let env = Env::new().await;
    let mut w = Writer::new(&env);
    let (vendor, p1, p2, admin) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    w.one("product", p1, 0, listed(p1, vendor, "kitchen")).await;
    w.one("product", p2, 0, listed(p2, vendor, "garden")).await;
    w.one(
        "product",
        p1,
        1,
        ProductEvent::PriceChanged(ProductPriceChanged { price_cents: 2500, currency: "EUR".into() }),
    )
    .await;
    w.one(
        "product",
        p1,
        2,
        ProductEvent::StockReserved(ProductStockReserved { order_id: Uuid::now_v7(), quantity: 4, stock: 0 }),
    )
    .await;
    w.one("product", p2, 1, ProductEvent::Delisted(ProductDelisted { product_id: p2 })).await;
    for (rating, approve) in [(4u8, true), (2, true), (5, false)] {
        let review = Uuid::now_v7();
        let submitted =
            ReviewSubmitted { review_id: review, product_id: p1, buyer_id: Uuid::now_v7(), rating, text: "ok".into() };
        w.one("review", review, 0, ReviewEvent::Submitted(submitted)).await;
        let moderated = if approve {
            ReviewEvent::Approved(ReviewApproved { review_id: review, product_id: p1, rating, moderator_id: admin })
        } else {
            ReviewEvent::Rejected(ReviewRejected {
                review_id: review,
                product_id: p1,
                moderator_id: admin,
                reason: "spam".into(),
            })
        };
        w.one("review", review, 1, moderated).await;
    }
    w.project().await;

    let row: (String, i64, i64, bool, bool, Option<f64>, i64) = sqlx::query_as(
        "select category, price_cents, stock, in_stock, listed, rating_avg, rating_count from read_model.product \
          where product_id = $1",
    )
    .bind(p1)
    .fetch_one(env.pool())
    .await
    .expect("p1");
    assert_eq!(row, ("kitchen".into(), 2500, 0, false, true, Some(3.0), 2));
    let delisted: (bool, bool, Option<DateTime<Utc>>) =
        sqlx::query_as("select listed, in_stock, delisted_at from read_model.product where product_id = $1")
            .bind(p2)
            .fetch_one(env.pool())
            .await
            .expect("p2");
    assert!(!delisted.0 && !delisted.1 && delisted.2.is_some());
    let counts: Vec<(String, i64)> =
        sqlx::query_as("select category, product_count from read_model.category_count order by category")
            .fetch_all(env.pool())
            .await
            .expect("counts");
    assert_eq!(counts, [("kitchen".to_owned(), 1)]);
    let reviews: Vec<(String, i16)> =
        sqlx::query_as("select status, rating from read_model.review where product_id = $1 order by submitted_at")
            .bind(p1)
            .fetch_all(env.pool())
            .await
            .expect("reviews");
    assert_eq!(reviews, [("approved".to_owned(), 4), ("approved".to_owned(), 2), ("rejected".to_owned(), 5)]);
}

async fn register(w: &mut Writer<'_>, id: Uuid, role: Role, email: &str, name: &str) {
    let vault = &w.env.vault;
    vault.create_key(id).await.expect("key");
    let registered = AccountEvent::Registered(AccountRegistered {
        account_id: id,
        role,
        email: vault.seal(id, email).await.expect("seal"),
        name: vault.seal(id, name).await.expect("seal"),
        password_hash: "x".into(),
    });
    let email_stream = StreamId::new("email", events::ids::derived("email", &[email.as_bytes()]).simple());
    let claimed = EmailEvent::Claimed(EmailClaimed { account_id: id });
    w.append(vec![(StreamId::new("account", id), 0, vec![new(&registered)]), (email_stream, 0, vec![new(&claimed)])])
        .await;
}

async fn account(pool: &PgPool, id: Uuid) -> (String, Option<String>, String, bool) {
    sqlx::query_as("select role, email, name, erased from read_model.account where account_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("account")
}

/// Accounts show their opened personal data; after erasure (key destroyed) they show as
/// erased, in the live read model and in any rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_vendors_and_erasure() {
    let env = Env::new().await;
    let mut w = Writer::new(&env);
    let (vendor, buyer, product) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    register(&mut w, vendor, Role::Vendor, "shop@example.com", "Corner Shop").await;
    register(&mut w, buyer, Role::Buyer, "bea@example.com", "Bea").await;
    w.one("product", product, 0, listed(product, vendor, "kitchen")).await;
    let renamed =
        AccountEvent::NameChanged(AccountNameChanged { name: env.vault.seal(buyer, "Bea B.").await.expect("seal") });
    w.one("account", buyer, 1, renamed).await;
    w.project().await;
    assert_eq!(
        account(env.pool(), buyer).await,
        ("buyer".into(), Some("bea@example.com".into()), "Bea B.".into(), false)
    );
    let shop: (String, i64, bool) =
        sqlx::query_as("select display_name, product_count, erased from read_model.vendor where vendor_id = $1")
            .bind(vendor)
            .fetch_one(env.pool())
            .await
            .expect("vendor");
    assert_eq!(shop, ("Corner Shop".into(), 1, false));

    // Erasure: the key goes first, then the event.
    env.vault.erase(buyer).await.expect("erase key");
    w.one("account", buyer, 2, AccountEvent::Erased(AccountErased { account_id: buyer })).await;
    w.project().await;
    let erased = ("buyer".to_owned(), None, projections::read_models::ERASED_NAME.to_owned(), true);
    assert_eq!(account(env.pool(), buyer).await, erased);
    let before = digest_all(env.pool()).await;
    rebuild(env.pool(), env.store(), &env.projections(), RebuildOptions::default()).await.expect("rebuild");
    assert_eq!(account(env.pool(), buyer).await, erased, "still erased after a rebuild (key gone)");
    assert_eq!(digest_all(env.pool()).await, before, "a rebuild after erasure gives the same rows");
    assert_eq!(account(env.pool(), vendor).await.2, "Corner Shop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_payments_deliveries_and_vendor_sales() {
    let env = Env::new().await;
    let mut w = Writer::new(&env);
    let (buyer, v1, v2, p1, p2, carrier) =
        (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    env.vault.create_key(buyer).await.expect("key");
    let address = env.vault.seal(buyer, "1 Main street").await.expect("seal");
    let (delivered_order, cancelled_order, delivery) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for order in [delivered_order, cancelled_order] {
        let placed = OrderEvent::Placed(OrderPlaced {
            order_id: order,
            buyer_id: buyer,
            lines: vec![line(p1, v1, 2, 1000), line(p2, v2, 1, 500)],
            currency: "EUR".into(),
            total_cents: 2500,
            shipping_address: address.clone(),
        });
        let requested = PaymentEvent::Requested(PaymentRequested {
            order_id: order,
            buyer_id: buyer,
            amount_cents: 2500,
            currency: "EUR".into(),
            payment_token: "tok".into(),
        });
        w.append(vec![
            (StreamId::new("order", order), 0, vec![new(&placed)]),
            (StreamId::new("payment", order), 0, vec![new(&requested)]),
        ])
        .await;
        let authorized = PaymentEvent::Authorized(PaymentAuthorized {
            order_id: order,
            authorization_id: format!("auth-{order}"),
            amount_cents: 2500,
        });
        let confirmed = OrderEvent::Confirmed(OrderConfirmed { authorization_id: format!("auth-{order}") });
        w.append(vec![
            (StreamId::new("payment", order), 1, vec![new(&authorized)]),
            (StreamId::new("order", order), 1, vec![new(&confirmed)]),
        ])
        .await;
    }
    let created = DeliveryEvent::Created(DeliveryCreated {
        delivery_id: delivery,
        order_id: delivered_order,
        buyer_id: buyer,
        shipping_address: address.clone(),
    });
    w.one("delivery", delivery, 0, created).await;
    for (version, status) in
        [(1, TrackingStatus::PickedUp), (2, TrackingStatus::InTransit), (3, TrackingStatus::Delivered)]
    {
        let tracked = DeliveryEvent::Tracked(DeliveryTracked {
            delivery_id: delivery,
            order_id: delivered_order,
            carrier_id: carrier,
            status,
            location: format!("hub {version}"),
            occurred_at: Utc::now(),
        });
        w.one("delivery", delivery, version, tracked).await;
    }
    w.one("order", delivered_order, 2, OrderEvent::Delivered(OrderDelivered { delivery_id: delivery })).await;
    let cancelled =
        OrderEvent::Cancelled(OrderCancelled { reason: "buyer_request".into(), released: vec![line(p1, v1, 2, 1000)] });
    let refunded = OrderEvent::Refunded(OrderRefunded { amount_cents: 2500, refund_id: "re-1".into() });
    let payment_refunded = PaymentEvent::Refunded(PaymentRefunded {
        order_id: cancelled_order,
        refund_id: "re-1".into(),
        amount_cents: 2500,
    });
    w.append(vec![
        (StreamId::new("order", cancelled_order), 2, vec![new(&cancelled), new(&refunded)]),
        (StreamId::new("payment", cancelled_order), 2, vec![new(&payment_refunded)]),
    ])
    .await;
    w.project().await;

    let order: (String, String, Option<Uuid>, i64, Option<Uuid>) = sqlx::query_as(
        "select status, payment_state, delivery_id, total_cents, buyer_id from read_model.customer_order where order_id = $1",
    )
    .bind(delivered_order)
    .fetch_one(env.pool())
    .await
    .expect("order");
    assert_eq!(order, ("delivered".into(), "authorized".into(), Some(delivery), 2500, Some(buyer)));
    let timeline: Vec<String> =
        sqlx::query_scalar("select status from read_model.order_status_history where order_id = $1 order by seq")
            .bind(delivered_order)
            .fetch_all(env.pool())
            .await
            .expect("history");
    assert_eq!(timeline, ["placed", "confirmed", "delivered"]);
    let cancelled: (String, String, Option<String>, i64) = sqlx::query_as(
        "select status, payment_state, cancellation_reason, refunded_cents from read_model.customer_order where order_id = $1",
    )
    .bind(cancelled_order)
    .fetch_one(env.pool())
    .await
    .expect("order");
    assert_eq!(cancelled, ("refunded".into(), "refunded".into(), Some("buyer_request".into()), 2500));
    let lines: i64 =
        sqlx::query_scalar("select count(*) from read_model.order_line").fetch_one(env.pool()).await.expect("lines");
    assert_eq!(lines, 4);
    let sales: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
        "select vendor_id, orders, units, revenue_cents from read_model.vendor_sales where orders <> 0 or units <> 0 \
          order by revenue_cents desc",
    )
    .fetch_all(env.pool())
    .await
    .expect("sales");
    assert_eq!(sales, [(v1, 1, 2, 2000), (v2, 1, 1, 500)], "only the delivered order still counts");
    let delivery_row: (String, Option<Uuid>, Option<String>) =
        sqlx::query_as("select status, carrier_id, location from read_model.delivery where delivery_id = $1")
            .bind(delivery)
            .fetch_one(env.pool())
            .await
            .expect("delivery");
    assert_eq!(delivery_row, ("delivered".into(), Some(carrier), Some("hub 3".into())));
    let tracking: Vec<String> =
        sqlx::query_scalar("select status from read_model.delivery_tracking where delivery_id = $1 order by seq")
            .bind(delivery)
            .fetch_all(env.pool())
            .await
            .expect("tracking");
    assert_eq!(tracking, ["picked_up", "in_transit", "delivered"]);
}

/// Over a generated history, the read models agree with each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generated_history_gives_consistent_read_models() {
    let env = Env::new().await;
    let summary = env.history(10_000, 3).await;
    assert!(summary.events >= 10_000 && summary.orders > 200, "{summary:?}");
    let w = Writer::new(&env);
    w.project().await;
    let pool = env.pool();
    let scalar = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.expect(sql) };
    let listed = scalar("select count(*) from read_model.product where listed").await;
    assert!(listed > 50);
    assert_eq!(scalar("select coalesce(sum(product_count), 0)::bigint from read_model.category_count").await, listed);
    assert_eq!(scalar("select coalesce(sum(product_count), 0)::bigint from read_model.vendor").await, listed);
    assert_eq!(scalar("select count(*) from read_model.product where stock < 0").await, 0);
    assert_eq!(
        scalar("select coalesce(sum(orders), 0)::bigint from read_model.vendor_sales").await,
        scalar(
            "select count(*) from (select distinct l.order_id, l.vendor_id from read_model.order_line l \
               join read_model.customer_order o using (order_id) where o.status in ('confirmed', 'delivered')) s"
        )
        .await,
        "vendor sales count the confirmed, not cancelled orders"
    );
    assert_eq!(
        scalar("select coalesce(sum(rating_count), 0)::bigint from read_model.product").await,
        scalar("select count(*) from read_model.review where status = 'approved'").await
    );
    assert_eq!(
        scalar("select count(*) from read_model.customer_order where status = 'delivered'").await,
        scalar("select count(*) from read_model.delivery where status = 'delivered'").await
    );
    assert_eq!(
        scalar(
            "select count(*) from read_model.account where erased and (email is not null or name <> 'erased account')"
        )
        .await,
        0
    );
    assert_eq!(
        scalar("select count(*) from read_model.account").await,
        i64::try_from(summary.accounts).expect("count")
    );
    assert_eq!(scalar("select count(*) from read_model.account where erased").await, summary.erased_accounts as i64);
    assert_eq!(scalar("select count(*) from read_model.customer_order").await, summary.orders as i64);
    assert!(scalar("select count(*) from read_model.review where status = 'pending'").await > 0);
    assert!(scalar("select count(*) from read_model.delivery_tracking").await > 0);
}
