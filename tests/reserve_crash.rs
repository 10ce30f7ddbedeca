//! The reserve checkout path with a real `agora` process killed between its steps, and the
//! start-up errors of `EVENT_STORE=eventstoredb` (no KurrentDB server needed for either).

mod common;

use std::time::Duration;

use common::{Client, Deployment, eventually};
use sqlx::Connection;

/// The PostgreSQL store without atomic multi-stream appends, holds of 5 s (long enough for
/// a checkout on a loaded machine, short enough for the test).
const RESERVE_PATH: [(&str, &str); 2] = [("MULTI_STREAM_APPENDS", "off"), ("CHECKOUT_HOLD_SECONDS", "5")];

async fn count(deployment: &Deployment, event_type: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&deployment.database_url()).await.expect("connect");
    sqlx::query_scalar("select count(*) from event_store.event where event_type = $1")
        .bind(event_type)
        .fetch_one(&mut conn)
        .await
        .expect("count")
}

/// A checkout SIGKILLed right after its first stock hold: nothing claims the hold, and the
/// `reservations` process of the next `agora` releases it once it expires. The order can no
/// longer be placed, and all the stock is for sale again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_killed_after_its_first_hold_gets_its_stock_back() {
    let deployment = Deployment::new();
    let mut env = RESERVE_PATH.to_vec();
    env.push(("AGORA_FAIL_POINT", "checkout-after-first-hold"));
    let mut doomed = deployment.start_with(&["serve", "--no-demo"], "doomed", &env);
    let client = Client::new();
    let vendor = client.account(&doomed, "vendor", "Kiln Vendor").await;
    let (product, _) = client.list(&doomed, &vendor, "Stoneware mug", 3).await;
    let buyer = client.account(&doomed, "buyer", "Ada Buyer").await;

    // The checkout stops dead after its hold (the fail point); kill the process there.
    let cart = client
        .http
        .put(doomed.url(&format!("/api/v1/cart/items/{product}")))
        .bearer_auth(&buyer)
        .json(&serde_json::json!({ "quantity": 2 }))
        .send()
        .await
        .expect("cart");
    assert_eq!(cart.status(), 200);
    let body = serde_json::json!({
        "shipping_address": { "name": "Ada Buyer", "line1": "1 Rue de la Paix", "city": "Paris",
                              "postal_code": "75002", "country": "FR" },
        "payment_token": "tok_visa"
    });
    let request = client
        .http
        .post(doomed.url("/api/v1/checkout"))
        .bearer_auth(&buyer)
        .header("Idempotency-Key", "doomed-checkout")
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send();
    let checkout = tokio::spawn(request);
    eventually(Duration::from_secs(20), "the first hold is written", || async {
        match count(&deployment, "product.stock_held").await {
            1 => Ok(()),
            n => Err(format!("{n} holds")),
        }
    })
    .await;
    doomed.kill();
    assert!(checkout.await.expect("task").is_err(), "the killed process never answered the checkout");
    assert_eq!(count(&deployment, "order.placed").await, 0, "the order was never written");

    // A fresh process (no fail point) runs the reservations process.
    let agora = deployment.start_with(&["serve", "--no-demo"], "fresh", &RESERVE_PATH);
    eventually(Duration::from_secs(30), "the hold is released", || async {
        let released = count(&deployment, "product.hold_released").await;
        let expired = count(&deployment, "order.checkout_expired").await;
        if (released, expired) == (1, 1) { Ok(()) } else { Err(format!("released {released}, expired {expired}")) }
    })
    .await;
    // All 3 are for sale again: a new checkout of 3 goes through on the same reserve path.
    let (order, _) = client.buy(&agora, &buyer, &product, 3).await;
    assert!(!order.is_empty());
    let status = deployment.status();
    let reservations = status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "reservations")
        .unwrap_or_else(|| panic!("agora status lists the reservations process: {status}"));
    assert_eq!(reservations["kind"], "reactor", "{reservations}");
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn eventstoredb_without_a_url_is_one_clear_start_up_error() {
    let deployment = Deployment::new();
    let output = deployment.tool_with(&["serve", "--no-demo"], &[("EVENT_STORE", "eventstoredb")]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("EVENT_STORE=eventstoredb needs EVENTSTORE_URL"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn a_malformed_eventstore_url_is_named_without_its_password() {
    let deployment = Deployment::new();
    for url in ["http://admin:s3cret@127.0.0.1:2113", "esdb://admin:s3cret@:::x?tls=maybe"] {
        let env = [("EVENT_STORE", "eventstoredb"), ("EVENTSTORE_URL", url)];
        let output = deployment.tool_with(&["serve", "--no-demo"], &env);
        assert!(!output.status.success());
        let text = stderr(&output);
        assert!(text.contains("EVENTSTORE_URL"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("panicked"), "{text}");
    }
}

#[test]
fn an_unreachable_kurrentdb_stops_start_up_naming_the_url() {
    let deployment = Deployment::new();
    // Nothing listens on port 9 of loopback.
    let env = [("EVENT_STORE", "eventstoredb"), ("EVENTSTORE_URL", "esdb://admin:s3cret@127.0.0.1:9?tls=false")];
    let started = std::time::Instant::now();
    let output = deployment.tool_with(&["serve", "--no-demo"], &env);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("cannot reach KurrentDB at esdb://***@127.0.0.1:9"), "{text}");
    assert!(!text.contains("s3cret") && !text.contains("panicked"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(40), "gave up within the start-up timeout");
}
