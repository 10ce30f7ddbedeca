//! Webhooks in GraphQL (admins only): endpoints with delivery counts, deliveries with their
//! attempts in order; a failed delivery replayed through the command API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use events::domain::accounts::Role;
use events::privacy::KeyVault;
use projections::integration::{WebhookOptions, WebhookOutbox, in_order, run_webhook_dispatcher};
use serde_json::{Value, json};

use crate::support::{Options, Stack, codes, fast_run_options};

async fn receiver() -> (String, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(true));
    let app = Router::new()
        .route("/ok", post(|| async { StatusCode::OK }))
        .route(
            "/fail",
            post(|State(failing): State<Arc<AtomicBool>>| async move {
                if failing.load(Ordering::SeqCst) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }
            }),
        )
        .with_state(failing.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, failing)
}

const WEBHOOKS: &str = "{ webhooks { id url eventTypes pendingDeliveries deliveredDeliveries failedDeliveries } }";
const DELIVERIES: &str = "query($w: ID!, $s: WebhookDeliveryState) { webhookDeliveries(webhookId: $w, state: $s) { \
    id eventType state attemptCount lastStatusCode payload attempts { number statusCode error durationMs } } }";
const DELIVERY: &str =
    "query($id: ID!) { webhookDelivery(id: $id) { id webhookId state attemptCount attempts { number statusCode } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_webhook_deliveries_and_their_attempts() {
    let stack = Stack::start_with(Options { reactors: false, ..Options::default() }).await;
    let (base, failing) = receiver().await;
    let pool = stack.db.pool().clone();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let outbox = Arc::new(WebhookOutbox::new(pool.clone()));
    tokio::spawn(projections::run_reactor(
        pool.clone(),
        Arc::new(stack.store.clone()),
        outbox,
        in_order(fast_run_options()),
        shutdown.clone(),
    ));
    let options = WebhookOptions {
        max_attempts: 2,
        backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        poll: Duration::from_millis(50),
        ..WebhookOptions::default()
    };
    tokio::spawn(run_webhook_dispatcher(pool.clone(), KeyVault::new(pool.clone()), options, shutdown));

    let (_, admin) = stack.account(Role::Admin).await;
    let (_, vendor) = stack.account(Role::Vendor).await;
    let register = |url: String| {
        let admin = admin.clone();
        let stack = &stack;
        async move {
            let (status, body) = stack
                .command(
                    "POST",
                    "/api/v1/webhooks",
                    Some(&admin),
                    json!({ "url": url, "secret": "0123456789abcdef-secret", "event_types": ["product.listed"] }),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let ok = register(format!("{base}/ok")).await;
    let fail = register(format!("{base}/fail")).await;
    stack.list(&vendor, "Teapot", "kitchen", 2500, 3).await;

    let data = stack
        .eventually(WEBHOOKS, json!({}), Some(&admin), |d| {
            d["webhooks"]
                .as_array()
                .is_some_and(|w| w.len() == 2 && w[0]["deliveredDeliveries"] == 1 && w[1]["failedDeliveries"] == 1)
        })
        .await;
    assert_eq!(data["webhooks"][0]["id"], ok.as_str());
    assert_eq!(data["webhooks"][1]["url"], format!("{base}/fail"));
    assert_eq!(data["webhooks"][1]["eventTypes"], json!(["product.listed"]));

    let failed = stack.graphql(DELIVERIES, json!({ "w": fail, "s": "FAILED" }), Some(&admin)).await;
    let delivery = &failed["webhookDeliveries"][0];
    assert_eq!(delivery["eventType"], "product.listed");
    assert_eq!(delivery["attemptCount"], 2);
    assert_eq!(delivery["lastStatusCode"], 503);
    let attempts: Vec<(i64, i64)> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["number"].as_i64().unwrap(), a["statusCode"].as_i64().unwrap()))
        .collect();
    assert_eq!(attempts, vec![(1, 503), (2, 503)]);
    assert!(delivery["attempts"][0]["error"].as_str().unwrap().contains("503"));
    let payload: Value = serde_json::from_str(delivery["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["title"], "Teapot");
    let delivery_id = delivery["id"].as_str().unwrap().to_owned();

    // Replayed once the endpoint recovers: a third attempt, delivered.
    failing.store(false, Ordering::SeqCst);
    let (status, body) = stack
        .command("POST", &format!("/api/v1/webhooks/{fail}/deliveries/{delivery_id}/replay"), Some(&admin), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let data = stack
        .eventually(DELIVERY, json!({ "id": delivery_id }), Some(&admin), |d| {
            d["webhookDelivery"]["state"] == "DELIVERED"
        })
        .await;
    assert_eq!(data["webhookDelivery"]["attemptCount"], 3);
    assert_eq!(data["webhookDelivery"]["attempts"][2], json!({ "number": 3, "statusCode": 200 }));
    assert_eq!(data["webhookDelivery"]["webhookId"], fail.as_str());

    // Admins only; ids checked; unknown ids are null.
    let (_, body) = stack.graphql_raw(WEBHOOKS, json!({}), Some(&vendor), None).await;
    assert_eq!(codes(&body), vec!["FORBIDDEN"]);
    let (_, body) = stack.graphql_raw(DELIVERY, json!({ "id": delivery_id }), None, None).await;
    assert_eq!(codes(&body), vec!["UNAUTHENTICATED"]);
    let (_, body) = stack.graphql_raw(DELIVERY, json!({ "id": "nope" }), Some(&admin), None).await;
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"]);
    let data = stack.graphql(DELIVERY, json!({ "id": uuid::Uuid::now_v7() }), Some(&admin)).await;
    assert!(data["webhookDelivery"].is_null());
    let _ = stop.send(true);
}
