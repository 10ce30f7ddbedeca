use events::domain::accounts::Role;
use serde_json::json;

use crate::support::TestApp;

async fn register_log_in_and_refuse_a_second_account_with_the_same_email(app: TestApp) {
    let registered = app
        .post(
            "/api/v1/accounts",
            None,
            json!({ "email": "Ada@Example.com", "password": "correct horse", "name": "Ada", "role": "buyer" }),
        )
        .await;
    registered.expect(201);
    assert!(registered.body["position"].as_str().is_some(), "consistency token in the body");
    assert_eq!(
        registered.headers["consistency-token"].to_str().unwrap(),
        registered.body["position"].as_str().unwrap()
    );

    let again = app
        .post(
            "/api/v1/accounts",
            None,
            json!({ "email": "ada@example.com ", "password": "another one", "name": "Imposter", "role": "vendor" }),
        )
        .await;
    again.expect_problem(409, "email_taken");

    let session =
        app.post("/api/v1/sessions", None, json!({ "email": "ADA@example.com", "password": "correct horse" })).await;
    session.expect(200);
    assert_eq!(session.body["role"], "buyer");
    assert!(session.body["expires_at"].as_str().is_some());

    app.post("/api/v1/sessions", None, json!({ "email": "ada@example.com", "password": "wrong horse" }))
        .await
        .expect_problem(401, "invalid_credentials");
    app.post("/api/v1/sessions", None, json!({ "email": "nobody@example.com", "password": "correct horse" }))
        .await
        .expect_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn staff_roles_cannot_be_self_registered() {
    let app = TestApp::spawn().await;
    for role in ["admin", "carrier", "superuser"] {
        let refused = app
            .post("/api/v1/accounts", None, json!({ "email": format!("{role}@example.com"), "password": "correct horse", "name": "X", "role": role }))
            .await;
        refused.expect_problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "role");
    }
}

#[tokio::test]
async fn tokens_missing_forged_or_expired_are_refused() {
    let app = TestApp::spawn().await;
    let body = json!({ "title": "t", "description": "d", "category": "c", "brand": "b", "price_cents": 1, "currency": "EUR", "stock": 1 });
    app.post("/api/v1/products", None, body.clone()).await.expect_problem(401, "unauthorized");
    app.post("/api/v1/products", Some("not-a-jwt"), body.clone()).await.expect_problem(401, "unauthorized");

    let (id, _) = app.account(Role::Vendor).await;
    let forger = events::identity::TokenKeys::new(b"some other secret of thirty-two bytes", chrono::Duration::hours(1));
    let caller = events::identity::Caller { account_id: id, role: Role::Vendor };
    let (forged, _) = forger.issue(caller, chrono::Utc::now()).unwrap();
    app.post("/api/v1/products", Some(&forged), body.clone()).await.expect_problem(401, "unauthorized");

    let (expired, _) = app.ctx.tokens.issue(caller, chrono::Utc::now() - chrono::Duration::hours(3)).unwrap();
    let refused = app.post("/api/v1/products", Some(&expired), body.clone()).await;
    refused.expect_problem(401, "unauthorized");
    assert!(refused.body["detail"].as_str().unwrap().contains("expired"));

    let bad_scheme =
        app.send("POST", "/api/v1/products", None, Some(body), &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    bad_scheme.expect_problem(401, "unauthorized");
}

async fn profile_changes_move_the_email(app: TestApp) {
    app.post(
        "/api/v1/accounts",
        None,
        json!({ "email": "old@example.com", "password": "correct horse", "name": "Ada", "role": "buyer" }),
    )
    .await
    .expect(201);
    let session =
        app.post("/api/v1/sessions", None, json!({ "email": "old@example.com", "password": "correct horse" })).await;
    let token = session.body["token"].as_str().unwrap().to_owned();

    app.send(
        "PATCH",
        "/api/v1/accounts/me",
        Some(&token),
        Some(json!({ "email": "new@example.com", "password": "battery staple" })),
        &[],
    )
    .await
    .expect(200);
    app.post("/api/v1/sessions", None, json!({ "email": "old@example.com", "password": "correct horse" }))
        .await
        .expect_problem(401, "invalid_credentials");
    app.post("/api/v1/sessions", None, json!({ "email": "new@example.com", "password": "battery staple" }))
        .await
        .expect(200);
    // The old email is free again.
    app.post(
        "/api/v1/accounts",
        None,
        json!({ "email": "old@example.com", "password": "correct horse", "name": "Bob", "role": "buyer" }),
    )
    .await
    .expect(201);
    app.send("PATCH", "/api/v1/accounts/me", Some(&token), Some(json!({})), &[])
        .await
        .expect_problem(422, "validation_failed");
}

// Each test on both kinds of store: atomic multi-stream appends, and appends in steps
// (`MULTI_STREAM_APPENDS=off`, as on KurrentDB).
crate::support::on_both_stores!(
    register_log_in_and_refuse_a_second_account_with_the_same_email,
    profile_changes_move_the_email,
);
