//! Two command processes over one database. Each keeps the aggregate states it read or
//! wrote (`command::aggregates`); what the other process appended must never be missed:
//! a stale state may only cost a retry, never a wrong decision or a wrong refusal.

use events::domain::accounts::Role;
use events::domain::catalog::ProductEvent;
use events::domain::orders::OrderEvent;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn a_product_delisted_by_another_process_is_refused() {
    let a = TestApp::spawn().await;
    let b = a.beside().await;
    let (product, vendor) = a.product(5, 1000).await;
    let (_, buyer) = a.account(Role::Buyer).await;
    a.add_to_cart(&buyer, product, 2).await.expect(200);

    b.send("DELETE", &format!("/api/v1/products/{product}"), Some(&vendor), None, &[]).await.expect(200);

    a.add_to_cart(&buyer, product, 1).await.expect_problem(409, "product_unavailable");
    a.checkout(&buyer, "tok_visa").await.expect_problem(409, "product_unavailable");
}

#[tokio::test]
async fn stock_taken_by_another_process_is_not_sold_twice() {
    let a = TestApp::spawn().await;
    let b = a.beside().await;
    let (product, _) = a.product(3, 1000).await;
    let (_, first) = a.account(Role::Buyer).await;
    let (_, second) = a.account(Role::Buyer).await;
    a.add_to_cart(&first, product, 1).await.expect(200);
    a.checkout(&first, "tok_visa").await.expect(201);
    // `a` now holds the product with 2 in stock; `b` sells both.
    a.add_to_cart(&first, product, 1).await.expect(200);
    b.add_to_cart(&second, product, 2).await.expect(200);
    b.checkout(&second, "tok_visa").await.expect(201);

    a.checkout(&first, "tok_visa").await.expect_problem(409, "out_of_stock");
    let events: Vec<ProductEvent> = a.stream(&command::catalog::handlers::product_stream(product)).await;
    let reserved: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            ProductEvent::StockReserved(r) => Some(r.stock),
            _ => None,
        })
        .collect();
    assert_eq!(reserved, [2, 0], "stock after each reservation");
}

#[tokio::test]
async fn stock_added_by_another_process_is_sold() {
    let a = TestApp::spawn().await;
    let b = a.beside().await;
    let (product, vendor) = a.product(1, 1000).await;
    let (_, first) = a.account(Role::Buyer).await;
    let (_, second) = a.account(Role::Buyer).await;
    a.add_to_cart(&first, product, 1).await.expect(200);
    a.checkout(&first, "tok_visa").await.expect(201);
    a.add_to_cart(&second, product, 1).await.expect(200);
    // `a` holds the product sold out; `b` restocks it.
    b.post(&format!("/api/v1/products/{product}/stock"), Some(&vendor), json!({ "delta": 4 })).await.expect(200);

    // Refused on the cached state, the checkout is decided again on the current one.
    a.checkout(&second, "tok_visa").await.expect(201);
}

#[tokio::test]
async fn a_cart_changed_in_another_process_is_checked_out_whole() {
    let a = TestApp::spawn().await;
    let b = a.beside().await;
    let (desk, _) = a.product(5, 19900).await;
    let (lamp, _) = a.product(5, 4900).await;
    let (_, buyer) = a.account(Role::Buyer).await;
    a.add_to_cart(&buyer, desk, 1).await.expect(200);
    b.add_to_cart(&buyer, lamp, 2).await.expect(200);

    let placed = a.checkout(&buyer, "tok_visa").await;
    placed.expect(201);
    assert_eq!(placed.body["total_cents"], 19900 + 2 * 4900);
    let order: Vec<OrderEvent> = a.stream(&command::orders::handlers::order_stream(placed.id())).await;
    let OrderEvent::Placed(p) = &order[0] else { panic!("{order:?}") };
    assert_eq!(p.lines.len(), 2);
    // And the cart `a` remembers after its own checkout is the empty one.
    a.checkout(&buyer, "tok_visa").await.expect_problem(409, "cart_empty");
    b.checkout(&buyer, "tok_visa").await.expect_problem(409, "cart_empty");
}

#[tokio::test]
async fn a_retried_checkout_after_the_cart_was_filled_again_places_nothing_new() {
    let app = TestApp::spawn().await;
    let (desk, _) = app.product(5, 19900).await;
    let (_, buyer) = app.account(Role::Buyer).await;
    app.add_to_cart(&buyer, desk, 1).await.expect(200);
    let key = [("idempotency-key", "checkout-retry-after-refill")];
    let first =
        app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_visa")), &key).await;
    first.expect(201);
    app.add_to_cart(&buyer, desk, 2).await.expect(200);
    let count = app.event_count().await;

    // The retry decides a new order from the refilled cart, but its append carries the used
    // key and fails: the first response answers.
    let retry =
        app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_visa")), &key).await;
    retry.expect(201);
    assert_eq!(retry.body, first.body);
    assert_eq!(app.event_count().await, count, "nothing appended by the retry");
    app.send("POST", "/api/v1/checkout", Some(&buyer), Some(TestApp::checkout_body("tok_declined")), &key)
        .await
        .expect_problem(422, "idempotency_mismatch");
    // The cart is still there for a checkout with a new key.
    app.checkout(&buyer, "tok_visa").await.expect(201);
}
