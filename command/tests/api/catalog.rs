use events::domain::accounts::Role;
use events::domain::catalog::ProductEvent;
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

#[tokio::test]
async fn vendors_list_change_restock_and_delist_their_products() {
    let app = TestApp::spawn().await;
    let (product, vendor) = app.product(5, 1999).await;
    let stream = command::catalog::handlers::product_stream(product);

    let changed = app
        .send(
            "PATCH",
            &format!("/api/v1/products/{product}"),
            Some(&vendor),
            Some(json!({ "price_cents": 2499, "title": "Walnut desk" })),
            &[],
        )
        .await;
    changed.expect(200);
    let unchanged = app
        .send("PATCH", &format!("/api/v1/products/{product}"), Some(&vendor), Some(json!({ "price_cents": 2499 })), &[])
        .await;
    unchanged.expect(200);
    assert_eq!(unchanged.body["position"], changed.body["position"], "nothing appended: the same consistency token");

    let restocked = app.post(&format!("/api/v1/products/{product}/stock"), Some(&vendor), json!({ "delta": 10 })).await;
    restocked.expect(200);
    assert_eq!(restocked.body["stock"], 15);
    app.post(
        &format!("/api/v1/products/{product}/stock"),
        Some(&vendor),
        json!({ "delta": -16, "reason": "correction" }),
    )
    .await
    .expect_problem(409, "insufficient_stock");
    app.send("DELETE", &format!("/api/v1/products/{product}"), Some(&vendor), None, &[]).await.expect(200);
    app.send("PATCH", &format!("/api/v1/products/{product}"), Some(&vendor), Some(json!({ "price_cents": 1 })), &[])
        .await
        .expect_problem(409, "product_delisted");

    let events: Vec<ProductEvent> = app.stream(&stream).await;
    let kinds: Vec<&str> = events.iter().map(|e| events::DomainEvent::event_type(e)).collect();
    assert_eq!(
        kinds,
        [
            "product.listed",
            "product.details_changed",
            "product.price_changed",
            "product.stock_adjusted",
            "product.delisted"
        ]
    );
}

#[tokio::test]
async fn only_the_owning_vendor_or_an_admin_touches_a_product() {
    let app = TestApp::spawn().await;
    let (product, _) = app.product(5, 1999).await;
    let (_, other_vendor) = app.account(Role::Vendor).await;
    let (_, buyer) = app.account(Role::Buyer).await;
    let (_, admin) = app.account(Role::Admin).await;
    let path = format!("/api/v1/products/{product}");

    app.send("PATCH", &path, Some(&other_vendor), Some(json!({ "price_cents": 1 })), &[])
        .await
        .expect_problem(403, "forbidden");
    app.post(&format!("{path}/stock"), Some(&other_vendor), json!({ "delta": 1 }))
        .await
        .expect_problem(403, "forbidden");
    app.send("DELETE", &path, Some(&other_vendor), None, &[]).await.expect_problem(403, "forbidden");
    app.send("PATCH", &path, Some(&buyer), Some(json!({ "price_cents": 1 })), &[])
        .await
        .expect_problem(403, "forbidden");
    app.post("/api/v1/products", Some(&buyer), json!({
        "title": "t", "description": "d", "category": "c", "brand": "b", "price_cents": 1, "currency": "EUR", "stock": 1
    }))
    .await
    .expect_problem(403, "forbidden");
    app.send(
        "PATCH",
        &format!("/api/v1/products/{}", Uuid::now_v7()),
        Some(&other_vendor),
        Some(json!({ "price_cents": 1 })),
        &[],
    )
    .await
    .expect_problem(404, "not_found");
    app.send("DELETE", &path, Some(&admin), None, &[]).await.expect(200);
}

#[tokio::test]
async fn idempotency_keys_return_the_first_response_and_append_nothing() {
    let app = TestApp::spawn().await;
    let (_, vendor) = app.account(Role::Vendor).await;
    let body = json!({ "title": "Lamp", "description": "Brass lamp", "category": "lighting", "brand": "Lumo", "price_cents": 4900, "currency": "EUR", "stock": 3 });
    let headers = [("idempotency-key", "listing-1")];
    let first = app.send("POST", "/api/v1/products", Some(&vendor), Some(body.clone()), &headers).await;
    first.expect(201);
    let events_after_first = app.event_count().await;

    let retry = app.send("POST", "/api/v1/products", Some(&vendor), Some(body.clone()), &headers).await;
    retry.expect(201);
    assert_eq!(retry.body, first.body, "the same response, same id and same consistency token");
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(app.event_count().await, events_after_first, "nothing appended");

    let mut other = body.clone();
    other["price_cents"] = json!(5900);
    app.send("POST", "/api/v1/products", Some(&vendor), Some(other), &headers)
        .await
        .expect_problem(422, "idempotency_mismatch");

    // Keys belong to their caller: another vendor's same key is a different request.
    let (_, other_vendor) = app.account(Role::Vendor).await;
    let theirs = app.send("POST", "/api/v1/products", Some(&other_vendor), Some(body), &headers).await;
    theirs.expect(201);
    assert_ne!(theirs.body["id"], first.body["id"]);

    app.send("POST", "/api/v1/products", Some(&vendor), Some(json!({})), &[("idempotency-key", "bad key with spaces")])
        .await
        .expect_problem(400, "invalid_idempotency_key");
}
