//! Webhook registration and replay requests through the command API.

use events::domain::accounts::Role;
use events::domain::webhooks::WebhookEvent;
use events::privacy::Opened;
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

fn body() -> serde_json::Value {
    json!({
        "url": "https://hooks.example.com/agora",
        "secret": "whsec_0123456789abcdef",
        "event_types": ["order.placed", "delivery.status_changed"],
    })
}

#[tokio::test]
async fn admins_register_webhooks_with_a_sealed_secret() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.account(Role::Admin).await;
    let created = app.post("/api/v1/webhooks", Some(&admin), body()).await;
    created.expect(201);
    assert!(created.headers.contains_key("consistency-token"));
    let id = created.id();

    let stream = command::webhooks::handlers::webhook_stream(id);
    let events: Vec<WebhookEvent> = app.stream(&stream).await;
    let [WebhookEvent::Registered(registered)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(registered.url, "https://hooks.example.com/agora");
    assert_eq!(registered.event_types, vec!["order.placed", "delivery.status_changed"]);
    assert_eq!(registered.registered_by, admin_id);
    assert_eq!(app.ctx.vault.open(&registered.secret).await.unwrap(), Opened::Value("whsec_0123456789abcdef".into()));
    let raw: String = sqlx::query_scalar("select string_agg(data::text, ' ') from event_store.event")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert!(!raw.contains("whsec_0123456789abcdef"), "the secret is never in the log in clear");

    // A replay of a delivery of this webhook is recorded for the dispatcher.
    let delivery = Uuid::now_v7();
    let replay =
        app.post(&format!("/api/v1/webhooks/{id}/deliveries/{delivery}/replay"), Some(&admin), json!({})).await;
    replay.expect(200);
    assert_eq!(replay.id(), delivery);
    let events: Vec<WebhookEvent> = app.stream(&stream).await;
    assert!(matches!(events.last(), Some(WebhookEvent::DeliveryReplayRequested(r)) if r.delivery_id == delivery));
}

#[tokio::test]
async fn webhook_commands_refuse_bad_input_and_non_admins() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.account(Role::Admin).await;
    let (_, vendor) = app.account(Role::Vendor).await;

    app.post("/api/v1/webhooks", None, body()).await.expect_problem(401, "unauthorized");
    app.post("/api/v1/webhooks", Some(&vendor), body()).await.expect_problem(403, "forbidden");

    let bad = app
        .post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({ "url": "ftp://user:pw@x.example/", "secret": "short", "event_types": ["cart.item_set"] }),
        )
        .await;
    bad.expect_problem(422, "validation_failed");
    let text = bad.body.to_string();
    for field in ["url", "secret", "event_types"] {
        assert!(text.contains(field), "{field} named in {text}");
    }
    app.post("/api/v1/webhooks", Some(&admin), json!({ "url": "http://x.example/" }))
        .await
        .expect_problem(422, "validation_failed");

    let unknown = Uuid::now_v7();
    app.post(&format!("/api/v1/webhooks/{unknown}/deliveries/{unknown}/replay"), Some(&admin), json!({}))
        .await
        .expect_problem(404, "not_found");
    app.post(&format!("/api/v1/webhooks/nope/deliveries/{unknown}/replay"), Some(&admin), json!({}))
        .await
        .expect_problem(400, "invalid_id");

    let spec = app.send("GET", "/api/v1/openapi.json", None, None, &[]).await;
    spec.expect(200);
    assert!(spec.body["paths"]["/api/v1/webhooks"]["post"].is_object());
    assert!(spec.body["paths"]["/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay"]["post"].is_object());
}
