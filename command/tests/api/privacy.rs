use events::domain::accounts::{AccountEvent, Role};
use events::domain::orders::OrderEvent;
use events::privacy::Opened;
use serde_json::json;

use crate::support::TestApp;

async fn closing_an_account_makes_its_personal_data_unreadable_everywhere(app: TestApp) {
    app.post(
        "/api/v1/accounts",
        None,
        json!({ "email": "grace@example.com", "password": "correct horse", "name": "Grace Hopper", "role": "buyer" }),
    )
    .await
    .expect(201);
    let session =
        app.post("/api/v1/sessions", None, json!({ "email": "grace@example.com", "password": "correct horse" })).await;
    let token = session.body["token"].as_str().unwrap().to_owned();
    let account_id = uuid::Uuid::parse_str(session.body["account_id"].as_str().unwrap()).unwrap();
    let (product, _) = app.product(5, 1000).await;
    app.add_to_cart(&token, product, 1).await.expect(200);
    let order = app.checkout(&token, "tok_visa").await;
    order.expect(201);

    let account_stream = command::accounts::handlers::account_stream(account_id);
    let events: Vec<AccountEvent> = app.stream(&account_stream).await;
    let AccountEvent::Registered(registered) = &events[0] else { panic!() };
    assert_eq!(app.ctx.vault.open(&registered.name).await.unwrap(), Opened::Value("Grace Hopper".into()));
    let raw: String = sqlx::query_scalar("select string_agg(data::text, ' ') from event_store.event")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert!(
        !raw.contains("grace") && !raw.contains("Hopper") && !raw.contains("Paix"),
        "no personal data in clear in the log"
    );

    let closed = app.send("DELETE", "/api/v1/accounts/me", Some(&token), None, &[]).await;
    closed.expect(200);
    assert_eq!(closed.body["erased"], true);

    let vault = events::privacy::KeyVault::new(app.db.pool().clone());
    assert_eq!(vault.open(&registered.email).await.unwrap(), Opened::Erased);
    assert_eq!(vault.open(&registered.name).await.unwrap(), Opened::Erased);
    let order_events: Vec<OrderEvent> = app.stream(&command::orders::handlers::order_stream(order.id())).await;
    let OrderEvent::Placed(placed) = &order_events[0] else { panic!() };
    assert_eq!(vault.open(&placed.shipping_address).await.unwrap(), Opened::Erased, "the shipping address too");
    let events: Vec<AccountEvent> = app.stream(&account_stream).await;
    assert!(matches!(events.last(), Some(AccountEvent::Erased(_))));

    app.post("/api/v1/sessions", None, json!({ "email": "grace@example.com", "password": "correct horse" }))
        .await
        .expect_problem(401, "invalid_credentials");
    app.send("DELETE", "/api/v1/accounts/me", Some(&token), None, &[]).await.expect(200);
    app.send("PATCH", "/api/v1/accounts/me", Some(&token), Some(json!({ "name": "Ghost" })), &[])
        .await
        .expect_problem(410, "account_closed");
    app.checkout(&token, "tok_visa").await.expect_problem(410, "account_closed");
    // The email can be used again by someone else.
    app.post(
        "/api/v1/accounts",
        None,
        json!({ "email": "grace@example.com", "password": "correct horse", "name": "G", "role": "vendor" }),
    )
    .await
    .expect(201);
    let _ = Role::Buyer;
}

crate::support::on_both_stores!(closing_an_account_makes_its_personal_data_unreadable_everywhere);
