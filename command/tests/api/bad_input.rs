//! Every bad input gets a 4xx problem+json with a stable code, never a 500.

use events::domain::accounts::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::TestApp;

struct Case {
    method: &'static str,
    path: String,
    token: Option<String>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn json_case(
    method: &'static str,
    path: &str,
    token: &Option<String>,
    body: Value,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        method,
        path: path.to_owned(),
        token: token.clone(),
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        status,
        code,
    }
}

#[tokio::test]
async fn a_table_of_bad_requests_per_endpoint() {
    let app = TestApp::spawn().await;
    let (_, vendor) = app.account(Role::Vendor).await;
    let (_, buyer) = app.account(Role::Buyer).await;
    let (_, carrier) = app.account(Role::Carrier).await;
    let (_, admin) = app.account(Role::Admin).await;
    let product = app.list_product(&vendor, 5, 1000).await;
    let (vendor, buyer, carrier, admin) = (Some(vendor), Some(buyer), Some(carrier), Some(admin));
    let none: Option<String> = None;
    let good_product = json!({ "title": "Desk", "description": "Oak", "category": "furniture", "brand": "Acme", "price_cents": 100, "currency": "EUR", "stock": 1 });
    let with = |mut base: Value, key: &str, value: Value| {
        base[key] = value;
        base
    };

    let mut cases = vec![
        // Malformed bodies, wrong content types, oversized bodies: the same for every endpoint.
        Case {
            method: "POST",
            path: "/api/v1/accounts".into(),
            token: None,
            content_type: Some("application/json"),
            body: b"{\"email\":".to_vec(),
            status: 400,
            code: "malformed_json",
        },
        Case {
            method: "POST",
            path: "/api/v1/accounts".into(),
            token: None,
            content_type: Some("text/plain"),
            body: b"{}".to_vec(),
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            method: "POST",
            path: "/api/v1/accounts".into(),
            token: None,
            content_type: None,
            body: b"{}".to_vec(),
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            method: "POST",
            path: "/api/v1/products".into(),
            token: vendor.clone(),
            content_type: Some("application/json"),
            body: vec![b' '; 70 * 1024],
            status: 413,
            code: "payload_too_large",
        },
        Case {
            method: "POST",
            path: "/api/v1/sessions".into(),
            token: None,
            content_type: Some("application/json"),
            body: b"[1,2,3]".to_vec(),
            status: 422,
            code: "validation_failed",
        },
        Case {
            method: "POST",
            path: "/api/v1/sessions".into(),
            token: None,
            content_type: Some("application/json"),
            body: "\"\u{1F600}\"".as_bytes().to_vec(),
            status: 422,
            code: "validation_failed",
        },
        Case {
            method: "POST",
            path: "/api/v1/checkout".into(),
            token: buyer.clone(),
            content_type: Some("application/json"),
            body: b"\xff\xfe".to_vec(),
            status: 400,
            code: "malformed_json",
        },
        // Accounts.
        json_case(
            "POST",
            "/api/v1/accounts",
            &none,
            json!({ "email": "x@example.com", "password": "correct horse", "name": "X" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/accounts",
            &none,
            json!({ "email": "not-an-email", "password": "short", "name": "", "role": "buyer" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/accounts",
            &none,
            json!({ "email": "x@example.com", "password": "correct horse", "name": "X", "role": "buyer", "admin": true }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/accounts",
            &none,
            json!({ "email": 42, "password": "correct horse", "name": "X", "role": "buyer" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/accounts",
            &none,
            json!({ "email": "x@example.com", "password": "p".repeat(200), "name": "X", "role": "buyer" }),
            422,
            "validation_failed",
        ),
        json_case("POST", "/api/v1/sessions", &none, json!({ "email": "x@example.com" }), 422, "validation_failed"),
        json_case(
            "POST",
            "/api/v1/sessions",
            &none,
            json!({ "email": "x@example.com", "password": "" }),
            422,
            "validation_failed",
        ),
        json_case("PATCH", "/api/v1/accounts/me", &none, json!({ "name": "X" }), 401, "unauthorized"),
        json_case("PATCH", "/api/v1/accounts/me", &buyer, json!({ "email": "nope" }), 422, "validation_failed"),
        // Products.
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "price_cents", json!(0)),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "price_cents", json!(-5)),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "price_cents", json!("12.00")),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "price_cents", json!(1.5)),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "price_cents", json!(1e300)),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "currency", json!("euro")),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "stock", json!(-1)),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "title", json!("x".repeat(201))),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "title", json!("   ")),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "title", json!("bell\u{7}")),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "colour", json!("red")),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            "/api/v1/products",
            &vendor,
            with(good_product.clone(), "title", Value::Null),
            422,
            "validation_failed",
        ),
        json_case("POST", "/api/v1/products", &buyer, good_product.clone(), 403, "forbidden"),
        json_case("PATCH", "/api/v1/products/not-a-uuid", &vendor, json!({ "price_cents": 1 }), 400, "invalid_id"),
        json_case("PATCH", &format!("/api/v1/products/{product}"), &vendor, json!({}), 422, "validation_failed"),
        json_case(
            "PATCH",
            &format!("/api/v1/products/{product}"),
            &vendor,
            json!({ "price_cents": 0 }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/products/{product}/stock"),
            &vendor,
            json!({ "delta": 0 }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/products/{product}/stock"),
            &vendor,
            json!({ "delta": 1, "reason": "gift" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/products/{product}/stock"),
            &vendor,
            json!({ "delta": 99999999999i64 }),
            422,
            "validation_failed",
        ),
        json_case("DELETE", "/api/v1/products/%27%3B--", &vendor, json!({}), 400, "invalid_id"),
        // Cart and checkout.
        json_case(
            "PUT",
            &format!("/api/v1/cart/items/{product}"),
            &buyer,
            json!({ "quantity": -1 }),
            422,
            "validation_failed",
        ),
        json_case(
            "PUT",
            &format!("/api/v1/cart/items/{product}"),
            &buyer,
            json!({ "quantity": 1001 }),
            422,
            "validation_failed",
        ),
        json_case(
            "PUT",
            &format!("/api/v1/cart/items/{product}"),
            &buyer,
            json!({ "quantity": "2" }),
            422,
            "validation_failed",
        ),
        json_case("PUT", &format!("/api/v1/cart/items/{product}"), &vendor, json!({ "quantity": 1 }), 403, "forbidden"),
        json_case("PUT", "/api/v1/cart/items/123", &buyer, json!({ "quantity": 1 }), 400, "invalid_id"),
        json_case("POST", "/api/v1/checkout", &buyer, json!({ "payment_token": "tok_visa" }), 422, "validation_failed"),
        json_case(
            "POST",
            "/api/v1/checkout",
            &buyer,
            TestApp::checkout_body("tok_visa"),
            400,
            "idempotency_key_required",
        ),
        json_case("POST", "/api/v1/checkout", &vendor, TestApp::checkout_body("tok_visa"), 403, "forbidden"),
        // Orders, deliveries, reviews.
        json_case("POST", "/api/v1/orders/zzz/cancel", &buyer, json!({}), 400, "invalid_id"),
        json_case("POST", &format!("/api/v1/orders/{}/cancel", Uuid::now_v7()), &buyer, json!({}), 404, "not_found"),
        json_case("POST", &format!("/api/v1/orders/{}/cancel", Uuid::now_v7()), &carrier, json!({}), 403, "forbidden"),
        json_case(
            "POST",
            &format!("/api/v1/deliveries/{}/tracking", Uuid::now_v7()),
            &carrier,
            json!({ "status": "teleported", "location": "Mars", "occurred_at": "2026-01-01T00:00:00Z" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/deliveries/{}/tracking", Uuid::now_v7()),
            &carrier,
            json!({ "status": "picked_up", "location": "Hub", "occurred_at": "yesterday" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/deliveries/{}/tracking", Uuid::now_v7()),
            &carrier,
            json!({ "status": "picked_up", "location": "Hub", "occurred_at": "2999-01-01T00:00:00Z" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/deliveries/{}/tracking", Uuid::now_v7()),
            &buyer,
            json!({ "status": "picked_up", "location": "Hub", "occurred_at": "2026-01-01T00:00:00Z" }),
            403,
            "forbidden",
        ),
        json_case(
            "POST",
            &format!("/api/v1/products/{product}/reviews"),
            &buyer,
            json!({ "rating": 6, "text": "Too good" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/products/{product}/reviews"),
            &buyer,
            json!({ "rating": 4, "text": "" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/products/{product}/reviews"),
            &admin,
            json!({ "rating": 4, "text": "ok" }),
            403,
            "forbidden",
        ),
        json_case(
            "POST",
            &format!("/api/v1/reviews/{}/moderation", Uuid::now_v7()),
            &admin,
            json!({ "decision": "maybe" }),
            422,
            "validation_failed",
        ),
        json_case(
            "POST",
            &format!("/api/v1/reviews/{}/moderation", Uuid::now_v7()),
            &vendor,
            json!({ "decision": "approve" }),
            403,
            "forbidden",
        ),
        // Unknown paths and methods.
        json_case("GET", "/api/v1/nothing-here", &none, json!({}), 404, "not_found"),
    ];
    cases.push(Case {
        method: "POST",
        path: "/api/v1/products".into(),
        token: Some("Bearer inside".into()),
        content_type: Some("application/json"),
        body: good_product.to_string().into_bytes(),
        status: 401,
        code: "unauthorized",
    });

    let mut failures = Vec::new();
    for case in &cases {
        let response =
            app.raw(case.method, &case.path, case.token.as_deref(), case.content_type, case.body.clone()).await;
        let ok = response.status == case.status
            && response.code() == case.code
            && response.content_type() == "application/problem+json"
            && response.body["detail"].as_str().is_some_and(|d| !d.is_empty());
        if !ok {
            failures.push(format!("{} {} -> {} {}", case.method, case.path, response.status, response.body));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
async fn validation_errors_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let response = app
        .post("/api/v1/accounts", None, json!({ "email": "nope", "password": "short", "name": " ", "role": "king" }))
        .await;
    response.expect_problem(422, "validation_failed");
    let fields: Vec<&str> =
        response.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email", "password", "name", "role"]);
    assert!(response.body["errors"].as_array().unwrap().iter().all(|e| !e["message"].as_str().unwrap().is_empty()));
}

#[tokio::test]
async fn the_openapi_description_covers_every_route() {
    let app = TestApp::spawn().await;
    let spec = app.send("GET", "/api/v1/openapi.json", None, None, &[]).await;
    spec.expect(200);
    assert!(spec.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec.body["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/accounts", &["post"][..]),
        ("/api/v1/sessions", &["post"]),
        ("/api/v1/accounts/me", &["patch", "delete"]),
        ("/api/v1/products", &["post"]),
        ("/api/v1/products/{id}", &["patch", "delete"]),
        ("/api/v1/products/{id}/stock", &["post"]),
        ("/api/v1/cart/items/{product_id}", &["put"]),
        ("/api/v1/checkout", &["post"]),
        ("/api/v1/orders/{id}/cancel", &["post"]),
        ("/api/v1/deliveries/{id}/tracking", &["post"]),
        ("/api/v1/products/{id}/reviews", &["post"]),
        ("/api/v1/reviews/{id}/moderation", &["post"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
    let schemas = spec.body["components"]["schemas"].as_object().unwrap();
    for schema in ["Problem", "CommandResponse", "CheckoutRequest", "ProductRequest"] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
}
