use std::sync::Arc;

use events::domain::accounts::Role;
use events::domain::catalog::ProductEvent;
use events::domain::orders::{CartEvent, OrderEvent};
use events::domain::payments::PaymentEvent;
use events::identity::Caller;
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

#[tokio::test]
async fn checkout_places_the_order_reserves_stock_and_empties_the_cart_in_one_append() {
    let app = TestApp::spawn().await;
    let (desk, _) = app.product(5, 19900).await;
    let (lamp, _) = app.product(3, 4900).await;
    let (buyer_id, buyer) = app.account(Role::Buyer).await;
    app.add_to_cart(&buyer, desk, 2).await.expect(200);
    app.add_to_cart(&buyer, lamp, 1).await.expect(200);

    let placed = app.checkout(&buyer, "tok_visa").await;
    placed.expect(201);
    assert_eq!(placed.body["status"], "placed");
    assert_eq!(placed.body["total_cents"], 2 * 19900 + 4900);
    assert_eq!(placed.headers["consistency-token"].to_str().unwrap(), placed.body["position"].as_str().unwrap());
    let order_id = placed.id();

    let order: Vec<OrderEvent> = app.stream(&command::orders::handlers::order_stream(order_id)).await;
    let OrderEvent::Placed(p) = &order[0] else { panic!("{order:?}") };
    assert_eq!(p.buyer_id, buyer_id);
    assert_eq!(p.lines.len(), 2);
    assert!(!p.shipping_address.ciphertext.contains("Paix"), "the address is sealed");
    let payment: Vec<PaymentEvent> = app.stream(&command::payments::handlers::payment_stream(order_id)).await;
    assert!(matches!(&payment[..], [PaymentEvent::Requested(r)] if r.amount_cents == 44700));
    let cart: Vec<CartEvent> = app.stream(&command::orders::handlers::cart_stream(buyer_id)).await;
    assert!(matches!(cart.last(), Some(CartEvent::CheckedOut(_))));
    let desk_events: Vec<ProductEvent> = app.stream(&command::catalog::handlers::product_stream(desk)).await;
    assert!(
        matches!(desk_events.last(), Some(ProductEvent::StockReserved(r)) if r.stock == 3 && r.order_id == order_id)
    );

    // One transaction: every event of the checkout carries the same commit position.
    let commits = app.checkout_transactions(order_id).await;
    assert_eq!(commits.len(), 1);

    app.checkout(&buyer, "tok_visa").await.expect_problem(409, "cart_empty");
}

#[tokio::test]
async fn a_retried_checkout_returns_the_same_order_and_places_nothing_new() {
    let app = TestApp::spawn().await;
    let (desk, _) = app.product(5, 19900).await;
    let (_, buyer) = app.account(Role::Buyer).await;
    app.add_to_cart(&buyer, desk, 1).await.expect(200);
    let key = [("idempotency-key", "checkout-7f3a")];
    let first =
        app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_visa")), &key).await;
    first.expect(201);
    let count = app.event_count().await;
    let retry =
        app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_visa")), &key).await;
    retry.expect(201);
    assert_eq!(retry.body, first.body);
    assert_eq!(app.event_count().await, count, "nothing appended by the retry");
    app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_declined")), &key)
        .await
        .expect_problem(422, "idempotency_mismatch");
    app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_visa")), &[])
        .await
        .expect_problem(400, "idempotency_key_required");
}

#[tokio::test]
async fn concurrent_retries_of_one_checkout_place_one_order() {
    let app = Arc::new(TestApp::spawn().await);
    let (desk, _) = app.product(50, 1000).await;
    let (_, buyer) = app.account(Role::Buyer).await;
    app.add_to_cart(&buyer, desk, 1).await.expect(200);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, buyer) = (app.clone(), buyer.clone());
        tasks.push(tokio::spawn(async move {
            app.send(
                "POST",
                "/api/v1/checkout",
                Some(&buyer),
                Some(TestApp::checkout_body("tok_visa")),
                &[("idempotency-key", "same-key")],
            )
            .await
        }));
    }
    let mut orders = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            201 => {
                orders.insert(response.body["id"].as_str().unwrap().to_owned());
            }
            // Waited for the first one and lost the race to read it back: still no second order.
            409 => assert!(["idempotency_in_progress", "cart_empty"].contains(&response.code()), "{}", response.body),
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    assert_eq!(orders.len(), 1, "one order for one key");
    let reserved: i64 =
        sqlx::query_scalar("select count(*) from event_store.event where event_type = 'product.stock_reserved'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(reserved, 1);
}

/// 210 buyers race for a product with 10 in stock: exactly 10 orders, 200 `out_of_stock`, and
/// the product's stock never below zero at any version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_never_oversell() {
    const BUYERS: usize = 210;
    const STOCK: i64 = 10;
    let app = Arc::new(TestApp::spawn().await);
    let (product, _) = app.product(STOCK, 2500).await;

    // Buyers with keys and tokens (registration itself is tested elsewhere; 210 argon2 hashes
    // would only slow this test down).
    let mut buyers = Vec::new();
    for _ in 0..BUYERS {
        let id = Uuid::now_v7();
        app.ctx.vault.create_key(id).await.unwrap();
        let (token, _) =
            app.ctx.tokens.issue(Caller { account_id: id, role: Role::Buyer }, chrono::Utc::now()).unwrap();
        app.add_to_cart(&token, product, 1).await.expect(200);
        buyers.push(token);
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
    let (mut accepted, mut out_of_stock) = (0, 0);
    for task in tasks {
        let response = task.await.unwrap();
        match (response.status, response.code()) {
            (201, _) => accepted += 1,
            (409, "out_of_stock") => out_of_stock += 1,
            (status, code) => panic!("unexpected {status} {code}: {}", response.body),
        }
    }
    assert_eq!(accepted, STOCK as usize, "exactly the stock was sold");
    assert_eq!(out_of_stock, BUYERS - STOCK as usize, "everyone else was told out_of_stock");

    let events: Vec<ProductEvent> = app.stream(&command::catalog::handlers::product_stream(product)).await;
    let mut stock = i64::MIN;
    let mut reservations = 0;
    for event in &events {
        match event {
            ProductEvent::Listed(l) => stock = i64::from(l.stock),
            ProductEvent::StockReserved(r) => {
                reservations += 1;
                assert_eq!(
                    i64::from(r.stock),
                    stock - i64::from(r.quantity),
                    "each reservation from the previous level"
                );
                stock = i64::from(r.stock);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(stock >= 0, "stock below zero at some version");
    }
    assert_eq!((reservations, stock), (STOCK, 0));
}

#[tokio::test]
async fn unavailable_products_cannot_be_added_or_bought() {
    let app = TestApp::spawn().await;
    let (product, vendor) = app.product(5, 1000).await;
    let (_, buyer) = app.account(Role::Buyer).await;
    app.add_to_cart(&buyer, Uuid::now_v7(), 1).await.expect_problem(404, "not_found");
    app.add_to_cart(&buyer, product, 1001).await.expect_problem(422, "validation_failed");
    app.add_to_cart(&buyer, product, 2).await.expect(200);
    app.send("DELETE", &format!("/api/v1/products/{product}"), Some(&vendor), None, &[]).await.expect(200);
    app.checkout(&buyer, "tok_visa").await.expect_problem(409, "product_unavailable");
    app.add_to_cart(&buyer, product, 1).await.expect_problem(409, "product_unavailable");
    // Removing works even for a delisted product.
    app.add_to_cart(&buyer, product, 0).await.expect(200);
    app.checkout(&buyer, "tok_visa").await.expect_problem(409, "cart_empty");

    let (eur, _) = app.product(5, 1000).await;
    let (_, usd_vendor) = app.account(Role::Vendor).await;
    let usd = app
        .post("/api/v1/products", Some(&usd_vendor), json!({
            "title": "Mug", "description": "A mug", "category": "kitchen", "brand": "Cup", "price_cents": 900, "currency": "USD", "stock": 4
        }))
        .await;
    app.add_to_cart(&buyer, eur, 1).await.expect(200);
    app.add_to_cart(&buyer, usd.id(), 1).await.expect(200);
    app.checkout(&buyer, "tok_visa").await.expect_problem(409, "mixed_currencies");
}
