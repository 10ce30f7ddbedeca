//! The reserve / compensate checkout path, on PostgreSQL with atomic multi-stream appends
//! switched off (what `MULTI_STREAM_APPENDS=off` does, and what KurrentDB always needs).
//! The crash test with a real, SIGKILLed process is in the root package (`tests/reserve_crash.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use command::CommandError;
use command::catalog::decider::ProductDecider;
use command::catalog::handlers::product_stream;
use command::handling::{Meta, load};
use command::orders::decider::{CartDecider, CheckoutInput, decide_checkout};
use command::orders::handlers::{CheckoutOrder, cart_stream, checkout, order_stream};
use command::orders::reservations::ReservationsProcess;
use command::orders::reserve::{self, FAIL_AFTER_FIRST_HOLD};
use events::domain::accounts::Role;
use events::domain::catalog::{HoldReleaseReason, ProductEvent};
use events::domain::orders::{CartEvent, OrderCheckoutExpired, OrderEvent};
use events::domain::payments::PaymentEvent;
use events::identity::Caller;
use events::reactor::Reactor;
use events::{AppendRequest, EventStore, ExpectedVersion, LogPosition, NewEvent};
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

const LONG_HOLD: Duration = Duration::from_secs(600);

/// What a product stream says about stock and holds, checked event by event.
#[derive(Debug, Default)]
struct Ledger {
    stock: i64,
    /// Holds still open, by order.
    open: HashMap<Uuid, u32>,
    held: usize,
    released: Vec<(Uuid, HoldReleaseReason)>,
}

async fn ledger(app: &TestApp, product: Uuid) -> Ledger {
    let events: Vec<ProductEvent> = app.stream(&product_stream(product)).await;
    let mut ledger = Ledger::default();
    for event in &events {
        match event {
            ProductEvent::Listed(l) => ledger.stock = i64::from(l.stock),
            ProductEvent::StockHeld(h) => {
                assert_eq!(
                    i64::from(h.stock),
                    ledger.stock - i64::from(h.quantity),
                    "each hold from the previous level"
                );
                ledger.stock = i64::from(h.stock);
                ledger.open.insert(h.order_id, h.quantity);
                ledger.held += 1;
            }
            ProductEvent::HoldReleased(r) => {
                assert_eq!(ledger.open.remove(&r.order_id), Some(r.quantity), "released an open hold");
                assert_eq!(i64::from(r.stock), ledger.stock + i64::from(r.quantity));
                ledger.stock = i64::from(r.stock);
                ledger.released.push((r.order_id, r.reason));
            }
            other => panic!("the reserve path wrote {other:?}"),
        }
        assert!(ledger.stock >= 0, "stock below zero at some version");
    }
    ledger
}

async fn order_events(app: &TestApp, order_id: Uuid) -> Vec<OrderEvent> {
    app.stream(&order_stream(order_id)).await
}

/// Run the `reservations` process over the whole log, as the runtime would (reactions are
/// idempotent, so reading from the start each time is fine).
async fn reap(app: &TestApp) {
    let process = ReservationsProcess { ctx: (*app.ctx).clone() };
    let mut after = LogPosition::START;
    loop {
        let events = app.store.read_all(after, 500).await.expect("read_all");
        let Some(last) = events.last() else { break };
        after = last.position;
        for event in events.iter().filter(|e| process.wants(&e.event_type)) {
            process.react(event).await.expect("reservations reaction");
        }
    }
}

/// A buyer with a key and a token, and `items` in the cart.
async fn buyer_with_cart(app: &TestApp, items: &[(Uuid, i64)]) -> (Uuid, String) {
    let id = Uuid::now_v7();
    app.ctx.vault.create_key(id).await.unwrap();
    let (token, _) = app.ctx.tokens.issue(Caller { account_id: id, role: Role::Buyer }, chrono::Utc::now()).unwrap();
    for (product, quantity) in items {
        app.add_to_cart(&token, *product, *quantity).await.expect(200);
    }
    (id, token)
}

fn order_input() -> CheckoutOrder {
    let address = json!({ "name": "Ada Buyer", "line1": "1 Rue de la Paix", "city": "Paris", "postal_code": "75002", "country": "FR" });
    CheckoutOrder {
        shipping_address: serde_json::from_value(address).expect("address"),
        payment_token: command::values::PaymentToken::parse("tok_visa").expect("token"),
    }
}

#[tokio::test]
async fn the_reserve_path_holds_each_product_then_writes_the_order() {
    let app = TestApp::spawn_reserving(LONG_HOLD).await;
    assert!(!app.store.capabilities().atomic_multi_stream);
    let (desk, _) = app.product(5, 19900).await;
    let (lamp, _) = app.product(3, 4900).await;
    let (buyer_id, buyer) = buyer_with_cart(&app, &[(desk, 2), (lamp, 1)]).await;

    let placed = app.checkout(&buyer, "tok_visa").await;
    placed.expect(201);
    assert_eq!((placed.body["status"].as_str(), placed.body["total_cents"].as_i64()), (Some("placed"), Some(44700)));
    let order_id = placed.id();
    let (desk_ledger, lamp_ledger) = (ledger(&app, desk).await, ledger(&app, lamp).await);
    assert_eq!((desk_ledger.stock, lamp_ledger.stock), (3, 2));
    assert_eq!(desk_ledger.open.get(&order_id), Some(&2), "the order's hold is claimed, not released");
    assert!(matches!(&order_events(&app, order_id).await[..], [OrderEvent::Placed(p)] if p.lines.len() == 2));
    let payment: Vec<PaymentEvent> = app.stream(&command::payments::handlers::payment_stream(order_id)).await;
    assert!(matches!(&payment[..], [PaymentEvent::Requested(r)] if r.amount_cents == 44700));
    let cart: Vec<CartEvent> = app.stream(&cart_stream(buyer_id)).await;
    assert!(matches!(cart.last(), Some(CartEvent::CheckedOut(_))));

    // One append per stream: every stream of the checkout committed in its own transaction.
    let commits = app.checkout_transactions(order_id).await;
    assert_eq!(commits.len(), 5, "2 holds, order, payment, cart");
    // The consistency token covers the last append.
    let token: LogPosition = placed.body["position"].as_str().unwrap().parse().unwrap();
    let last = app.store.read_stream(&cart_stream(buyer_id), 1).await.unwrap().last().unwrap().position;
    assert_eq!(token, last);
}

/// 210 buyers race for a product with 10 in stock on the reserve path: exactly 10 orders, 200
/// `out_of_stock`, stock never below zero, no hold left unclaimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reserve_path_checkouts_never_oversell() {
    const BUYERS: usize = 210;
    const STOCK: i64 = 10;
    let app = Arc::new(TestApp::spawn_reserving(LONG_HOLD).await);
    let (product, _) = app.product(STOCK, 2500).await;
    let mut buyers = Vec::new();
    for _ in 0..BUYERS {
        buyers.push(buyer_with_cart(&app, &[(product, 1)]).await.1);
    }
    let start = Arc::new(tokio::sync::Barrier::new(BUYERS));
    let mut tasks = Vec::new();
    for token in buyers {
        let (app, start) = (app.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            app.checkout(&token, "tok_visa").await
        }));
    }
    let mut orders = HashSet::new();
    let mut out_of_stock = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match (response.status, response.code()) {
            (201, _) => {
                orders.insert(response.id());
            }
            (409, "out_of_stock") => out_of_stock += 1,
            (status, code) => panic!("unexpected {status} {code}: {}", response.body),
        }
    }
    assert_eq!(orders.len(), STOCK as usize, "exactly the stock was sold");
    assert_eq!(out_of_stock, BUYERS - STOCK as usize);
    let ledger = ledger(&app, product).await;
    assert_eq!(ledger.stock, 0);
    let open: HashSet<Uuid> = ledger.open.keys().copied().collect();
    assert_eq!(open, orders, "every open hold belongs to a placed order, and every order holds its stock");
    for order_id in &orders {
        assert!(matches!(&order_events(&app, *order_id).await[..], [OrderEvent::Placed(_)]));
    }
}

/// The second product of a checkout cannot be held any more (sold out since the checkout
/// looked): the hold on the first is given back and the buyer is told `out_of_stock`.
#[tokio::test]
async fn a_later_product_out_of_stock_releases_the_earlier_holds() {
    let app = TestApp::spawn_reserving(LONG_HOLD).await;
    // Holds are taken in product-id order: `first` sorts before `second`.
    let (a, vendor_a) = app.product(5, 1000).await;
    let (b, vendor_b) = app.product(1, 1000).await;
    let ((first, _), (second, second_vendor)) =
        if a < b { ((a, vendor_a), (b, vendor_b)) } else { ((b, vendor_b), (a, vendor_a)) };
    let (buyer_id, _) = buyer_with_cart(&app, &[(first, 2), (second, 1)]).await;

    // Decide on a snapshot where both are in stock, then the second sells out.
    let order_id = Uuid::now_v7();
    let cart = load::<CartDecider>(&*app.ctx.store, &cart_stream(buyer_id)).await.unwrap().state;
    let mut products = HashMap::new();
    for id in [first, second] {
        products.insert(id, load::<ProductDecider>(&*app.ctx.store, &product_stream(id)).await.unwrap().state);
    }
    let sealed = app.ctx.vault.seal(buyer_id, "1 Rue de la Paix").await.unwrap();
    let decision = decide_checkout(&CheckoutInput {
        order_id,
        buyer_id,
        cart: &cart,
        products: &products,
        shipping_address: sealed,
        payment_token: "tok_visa".into(),
    })
    .expect("decided on the snapshot");
    app.post(&format!("/api/v1/products/{second}/stock"), Some(&second_vendor), json!({ "delta": -1 }))
        .await
        .expect(200);

    let meta = Meta::new(Some(Caller { account_id: buyer_id, role: Role::Buyer }), Uuid::now_v7());
    let error = reserve::place(&app.ctx, order_id, buyer_id, decision, &meta.metadata(), None).await.unwrap_err();
    assert!(matches!(&error, CommandError::Refused(r) if (r.status, r.code) == (409, "out_of_stock")), "{error:?}");

    let first_ledger = ledger(&app, first).await;
    assert_eq!(first_ledger.stock, 5, "the first product's hold went back");
    assert_eq!(first_ledger.released, vec![(order_id, HoldReleaseReason::Compensated)]);
    assert!(first_ledger.open.is_empty());
    assert!(order_events(&app, order_id).await.is_empty(), "no order was written");
}

/// A checkout stopped dead after its first hold (its future dropped, as when the process
/// dies): the reaper closes the order stream and releases the hold once it expires.
#[tokio::test]
async fn the_reaper_releases_the_hold_of_a_checkout_that_died_after_its_first_hold() {
    let hold = Duration::from_secs(1);
    let options = events::PgStoreOptions { atomic_multi_stream: false, ..Default::default() };
    let app = TestApp::spawn_configured(options, |ctx| {
        ctx.checkout_hold = hold;
        ctx.fail_point = Some(FAIL_AFTER_FIRST_HOLD.to_owned());
    })
    .await;
    let (a, _) = app.product(5, 1000).await;
    let (b, _) = app.product(5, 1000).await;
    let (buyer_id, _) = buyer_with_cart(&app, &[(a, 1), (b, 1)]).await;
    let caller = Caller { account_id: buyer_id, role: Role::Buyer };
    let meta = Meta::new(Some(caller), Uuid::now_v7());
    let ctx = app.ctx.clone();
    let task = tokio::spawn(async move { checkout(&ctx, caller, order_input(), &meta, None).await.map(|_| ()) });
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ledger(&app, first).await.held == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no hold within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "the fail point stops the checkout after its first hold");
    task.abort(); // the checkout's future is dropped, as when its process dies
    let held = ledger(&app, first).await;
    assert_eq!((held.stock, held.open.len()), (4, 1), "the first hold was made");
    assert_eq!(ledger(&app, second).await.held, 0, "the second product was never held");
    let order_id = *held.open.keys().next().unwrap();

    reap(&app).await; // waits inside the reaction until the hold expires
    let released = ledger(&app, first).await;
    assert_eq!(released.stock, 5, "the stock is back");
    assert_eq!(released.released, vec![(order_id, HoldReleaseReason::Expired)]);
    assert!(matches!(&order_events(&app, order_id).await[..], [OrderEvent::CheckoutExpired(_)]));
    reap(&app).await;
    assert_eq!(ledger(&app, first).await.released.len(), 1, "a replayed reaction releases nothing more");
}

/// Holds claimed by a placed order stay taken after they expire.
#[tokio::test]
async fn the_reaper_leaves_claimed_holds_alone() {
    let app = TestApp::spawn_reserving(Duration::from_millis(300)).await;
    let (product, _) = app.product(3, 1000).await;
    let (_, buyer) = buyer_with_cart(&app, &[(product, 2)]).await;
    let order_id = app.checkout(&buyer, "tok_visa").await.expect(201).id();
    tokio::time::sleep(Duration::from_millis(400)).await;
    reap(&app).await;
    let ledger = ledger(&app, product).await;
    assert_eq!((ledger.stock, ledger.released.len()), (1, 0), "nothing released");
    assert_eq!(ledger.open.get(&order_id), Some(&2));
    assert!(matches!(&order_events(&app, order_id).await[..], [OrderEvent::Placed(_)]));
}

/// A checkout slower than its holds: the reaper closed the order stream first, so the order
/// is refused (`checkout_expired`) and the holds go back; the stock is never sold twice.
#[tokio::test]
async fn a_checkout_that_outlives_its_holds_is_refused_and_compensated() {
    let app = TestApp::spawn_reserving(LONG_HOLD).await;
    let (product, _) = app.product(4, 1000).await;
    let (buyer_id, _) = buyer_with_cart(&app, &[(product, 3)]).await;
    let order_id = Uuid::now_v7();
    let cart = load::<CartDecider>(&*app.ctx.store, &cart_stream(buyer_id)).await.unwrap().state;
    let products = HashMap::from([(
        product,
        load::<ProductDecider>(&*app.ctx.store, &product_stream(product)).await.unwrap().state,
    )]);
    let decision = decide_checkout(&CheckoutInput {
        order_id,
        buyer_id,
        cart: &cart,
        products: &products,
        shipping_address: app.ctx.vault.seal(buyer_id, "x").await.unwrap(),
        payment_token: "tok_visa".into(),
    })
    .unwrap();
    // What the reaper writes when a hold of this order expires.
    let expired = OrderEvent::CheckoutExpired(OrderCheckoutExpired { order_id });
    app.store
        .append(AppendRequest::new().stream(
            order_stream(order_id),
            ExpectedVersion::NoStream,
            vec![NewEvent::from_domain(&expired, Default::default())],
        ))
        .await
        .unwrap();

    let meta = Meta::new(None, Uuid::now_v7());
    let error = reserve::place(&app.ctx, order_id, buyer_id, decision, &meta.metadata(), None).await.unwrap_err();
    assert!(matches!(&error, CommandError::Refused(r) if (r.status, r.code) == (409, "checkout_expired")), "{error:?}");
    let ledger = ledger(&app, product).await;
    assert_eq!(ledger.stock, 4);
    assert_eq!(ledger.released, vec![(order_id, HoldReleaseReason::Compensated)]);
    assert!(matches!(&order_events(&app, order_id).await[..], [OrderEvent::CheckoutExpired(_)]), "no order placed");
}

/// The same `Idempotency-Key` on the reserve path: the first response again, nothing new
/// appended; a different request under the key is refused as on the atomic path.
#[tokio::test]
async fn a_retried_reserve_path_checkout_returns_the_same_order() {
    let app = TestApp::spawn_reserving(LONG_HOLD).await;
    let (desk, _) = app.product(5, 19900).await;
    let (_, buyer) = buyer_with_cart(&app, &[(desk, 1)]).await;
    let key = [("idempotency-key", "checkout-reserve-1")];
    let body = || Some(TestApp::checkout_body("tok_visa"));
    let first = app.send("POST", "/api/v1/checkout", Some(&buyer), body(), &key).await;
    first.expect(201);
    let count = app.event_count().await;
    let retry = app.send("POST", "/api/v1/checkout", Some(&buyer), body(), &key).await;
    retry.expect(201);
    assert_eq!(retry.body["id"], first.body["id"]);
    assert_eq!(app.event_count().await, count, "nothing appended by the retry");
    app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_declined")), &key)
        .await
        .expect_problem(422, "idempotency_mismatch");
}

/// Concurrent retries of one checkout: one order; the losers' holds are all given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_on_the_reserve_path_place_one_order_and_leave_no_hold() {
    let app = Arc::new(TestApp::spawn_reserving(LONG_HOLD).await);
    let (desk, _) = app.product(50, 1000).await;
    let (_, buyer) = buyer_with_cart(&app, &[(desk, 1)]).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, buyer) = (app.clone(), buyer.clone());
        tasks.push(tokio::spawn(async move {
            let key = [("idempotency-key", "same-reserve-key")];
            app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_visa")), &key).await
        }));
    }
    let mut orders = HashSet::new();
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            201 => {
                orders.insert(response.id());
            }
            409 => assert!(["idempotency_in_progress", "cart_empty"].contains(&response.code()), "{}", response.body),
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    assert_eq!(orders.len(), 1, "one order for one key");
    let ledger = ledger(&app, desk).await;
    assert_eq!(ledger.stock, 49, "only the order's unit is taken");
    assert_eq!(ledger.open.keys().copied().collect::<HashSet<_>>(), orders);
}

/// Refusals found on the snapshot (here: more than in stock) append nothing at all.
#[tokio::test]
async fn a_refused_reserve_path_checkout_appends_nothing() {
    let app = TestApp::spawn_reserving(LONG_HOLD).await;
    let (desk, _) = app.product(1, 1000).await;
    let (_, buyer) = buyer_with_cart(&app, &[(desk, 2)]).await;
    let count = app.event_count().await;
    app.checkout(&buyer, "tok_visa").await.expect_problem(409, "out_of_stock");
    assert_eq!(app.event_count().await, count);
}

/// On a store without atomic multi-stream appends a cancellation is appended in steps:
/// the order first, then each product's release. Cut off after the first step (here: the
/// order's cancellation written alone), the next cancel request gives the stock back, once.
#[tokio::test]
async fn a_cancellation_cut_off_between_its_steps_is_finished_by_a_retry() {
    let app = TestApp::spawn_reserving(LONG_HOLD).await;
    let (product, _) = app.product(5, 1000).await;
    let (buyer_id, buyer) = buyer_with_cart(&app, &[(product, 2)]).await;
    let order_id = app.checkout(&buyer, "tok_visa").await.expect(201).id();
    let lines = match &order_events(&app, order_id).await[..] {
        [OrderEvent::Placed(placed)] => placed.lines.clone(),
        other => panic!("{other:?}"),
    };
    let cancelled = OrderEvent::Cancelled(events::domain::orders::OrderCancelled {
        reason: "buyer_request".into(),
        released: lines,
    });
    let metadata = Meta::new(Some(Caller { account_id: buyer_id, role: Role::Buyer }), Uuid::now_v7()).metadata();
    app.store
        .append(AppendRequest::new().stream(
            order_stream(order_id),
            ExpectedVersion::Exact(1),
            vec![NewEvent::from_domain(&cancelled, metadata)],
        ))
        .await
        .unwrap();
    let stock = |events: Vec<ProductEvent>| match events.last() {
        Some(ProductEvent::StockHeld(h)) => h.stock,
        Some(ProductEvent::StockReleased(r)) => r.stock,
        other => panic!("{other:?}"),
    };
    assert_eq!(stock(app.stream(&product_stream(product)).await), 3, "cut off: the stock is still taken");

    let path = format!("/api/v1/orders/{order_id}/cancel");
    app.post(&path, Some(&buyer), json!({})).await.expect(200);
    assert_eq!(stock(app.stream(&product_stream(product)).await), 5, "the retry released it");
    let count = app.event_count().await;
    app.post(&path, Some(&buyer), json!({})).await.expect(200);
    assert_eq!(app.event_count().await, count, "released once only");
}

/// A declined payment, recorded in steps, cut off after the order's cancellation: the
/// payment process runs again (at-least-once) and finishes, releasing the stock once.
#[tokio::test]
async fn a_declined_payment_cut_off_between_its_steps_is_finished_by_the_next_run() {
    let app = TestApp::spawn_reserving(LONG_HOLD).await;
    let (product, _) = app.product(5, 1000).await;
    let (_, buyer) = buyer_with_cart(&app, &[(product, 2)]).await;
    let order_id = app.checkout(&buyer, "tok_declined").await.expect(201).id();
    let lines = match &order_events(&app, order_id).await[..] {
        [OrderEvent::Placed(placed)] => placed.lines.clone(),
        other => panic!("{other:?}"),
    };
    // The decline's first step (the order cancelled) landed; the releases and the payment's
    // own `payment.declined` did not.
    let cancelled = OrderEvent::Cancelled(events::domain::orders::OrderCancelled {
        reason: "payment_declined".into(),
        released: lines,
    });
    app.store
        .append(AppendRequest::new().stream(
            order_stream(order_id),
            ExpectedVersion::Exact(1),
            vec![NewEvent::from_domain(&cancelled, Default::default())],
        ))
        .await
        .unwrap();

    let payment = command::payments::handlers::PaymentProcess::new((*app.ctx).clone());
    let requested = app.store.read_stream(&command::payments::handlers::payment_stream(order_id), 1).await.unwrap();
    payment.react(&requested[0]).await.expect("payment reaction");
    payment.react(&requested[0]).await.expect("and once more, as a replay");

    let product_events: Vec<ProductEvent> = app.stream(&product_stream(product)).await;
    let released: Vec<u32> = product_events
        .iter()
        .filter_map(|e| match e {
            ProductEvent::StockReleased(r) => Some(r.stock),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![5], "the stock came back, once");
    let payment_events: Vec<PaymentEvent> = app.stream(&command::payments::handlers::payment_stream(order_id)).await;
    assert!(
        matches!(&payment_events[..], [PaymentEvent::Requested(_), PaymentEvent::Declined(_)]),
        "{payment_events:?}"
    );
    assert!(matches!(&order_events(&app, order_id).await[..], [OrderEvent::Placed(_), OrderEvent::Cancelled(_)]));
}
