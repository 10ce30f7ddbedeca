//! The storefront's other pages: my orders with payment and delivery history, the product
//! page with approved reviews, the moderation queue.

use events::domain::accounts::Role;
use serde_json::{Value, json};

use crate::support::Stack;

const MY_ORDERS: &str = "query($after: String) { me { name orders(first: 2, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { id status totalCents placedAt
    lines { title quantity product { title } }
    payment { state amountCents authorizationId }
    history { status }
    delivery { status carrier location history { status location } } } } } } }";

fn statuses(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_orders_show_payment_and_delivery_history_page_by_page() {
    let stack = Stack::start().await;
    let (_, vendor) = stack.account(Role::Vendor).await;
    let (product, _) = stack.list(&vendor, "Felt slippers", "shoes", 2_500, 100).await;
    let (_, buyer) = stack.account(Role::Buyer).await;
    let (_, carrier) = stack.named_account(Role::Carrier, "Rapid Parcels").await;
    let mut orders = Vec::new();
    for quantity in 1..=3 {
        orders.push(stack.order(&buyer, &[(product, quantity)]).await.0);
    }
    let newest = *orders.last().unwrap();
    // The payment process confirms each order and opens its delivery.
    stack
        .eventually(
            "{ me { orders(first: 3) { edges { node { delivery { status } } } } } }",
            json!({}),
            Some(&buyer),
            |d| {
                d["me"]["orders"]["edges"]
                    .as_array()
                    .is_some_and(|e| e.len() == 3 && e.iter().all(|e| !e["node"]["delivery"].is_null()))
            },
        )
        .await;
    stack.track(&carrier, newest, "picked_up", "Lyon depot").await;
    let position = stack.track(&carrier, newest, "in_transit", "Paris hub").await;

    let page1 = stack.graphql_after(MY_ORDERS, json!({}), Some(&buyer), &position).await;
    let orders_page = &page1["me"]["orders"];
    assert_eq!(orders_page["totalCount"], 3);
    assert_eq!(orders_page["pageInfo"]["hasNextPage"], true);
    let first = &orders_page["edges"][0]["node"];
    assert_eq!(first["id"], newest.to_string(), "most recent first");
    assert_eq!(first["status"], "CONFIRMED");
    assert_eq!(first["totalCents"], 7_500);
    assert_eq!(
        first["lines"],
        json!([{ "title": "Felt slippers", "quantity": 3, "product": { "title": "Felt slippers" } }])
    );
    assert_eq!(first["payment"]["state"], "AUTHORIZED");
    assert_eq!(first["payment"]["amountCents"], 7_500);
    assert!(first["payment"]["authorizationId"].as_str().is_some_and(|a| !a.is_empty()));
    assert_eq!(statuses(&first["history"]), ["PLACED", "CONFIRMED"]);
    let delivery = &first["delivery"];
    assert_eq!(delivery["status"], "IN_TRANSIT");
    assert_eq!(delivery["carrier"], "Rapid Parcels");
    assert_eq!(delivery["location"], "Paris hub");
    assert_eq!(statuses(&delivery["history"]), ["PICKED_UP", "IN_TRANSIT"]);
    let second = &orders_page["edges"][1]["node"];
    assert_eq!(second["delivery"]["status"], "CREATED");
    assert_eq!(second["delivery"]["carrier"], Value::Null);

    let after = orders_page["pageInfo"]["endCursor"].clone();
    let page2 = stack.graphql(MY_ORDERS, json!({ "after": after }), Some(&buyer)).await;
    let edges = page2["me"]["orders"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["id"], orders[0].to_string(), "the oldest last");
    assert_eq!(page2["me"]["orders"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_page_shows_approved_reviews_and_admins_moderate_the_queue() {
    let stack = Stack::start().await;
    let (_, vendor) = stack.account(Role::Vendor).await;
    let (product, _) = stack.list(&vendor, "Wool blanket", "textiles", 8_900, 50).await;
    let (_, carrier) = stack.account(Role::Carrier).await;
    let (_, admin) = stack.account(Role::Admin).await;
    let mut reviews = Vec::new();
    for (rating, text) in [(5, "Warm and soft."), (3, "Itchy at first."), (1, "Spam spam spam.")] {
        let (_, buyer) = stack.account(Role::Buyer).await;
        let (order, _) = stack.order(&buyer, &[(product, 1)]).await;
        stack
            .eventually(
                "query($id: ID!) { order(id: $id) { delivery { id } } }",
                json!({ "id": order }),
                Some(&buyer),
                |d| !d["order"]["delivery"].is_null(),
            )
            .await;
        stack.track(&carrier, order, "delivered", "Front door").await;
        // Delivered: the completion process lets the buyer review.
        let review_path = format!("/api/v1/products/{product}/reviews");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let review = loop {
            let (status, body) =
                stack.command("POST", &review_path, Some(&buyer), json!({ "rating": rating, "text": text })).await;
            if status == 201 || status == 200 {
                break body["id"].as_str().unwrap().to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "review refused: {status} {body}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        };
        reviews.push(review);
    }

    let queue = "{ moderationQueue(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { id rating text status product { title } } } } }";
    let data = stack.eventually(queue, json!({}), Some(&admin), |d| d["moderationQueue"]["totalCount"] == 3).await;
    let edges = data["moderationQueue"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["node"]["text"], "Warm and soft.", "oldest first");
    assert_eq!(edges[0]["node"]["status"], "PENDING");
    assert_eq!(edges[0]["node"]["product"]["title"], "Wool blanket");
    let after = data["moderationQueue"]["pageInfo"]["endCursor"].clone();
    let rest = stack
        .graphql(
            "query($after: String) { moderationQueue(after: $after) { edges { node { text } } } }",
            json!({ "after": after }),
            Some(&admin),
        )
        .await;
    assert_eq!(rest["moderationQueue"]["edges"][0]["node"]["text"], "Spam spam spam.");

    let mut position = String::new();
    for (review, decision) in reviews.iter().zip(["approve", "approve", "reject"]) {
        let (status, body) = stack
            .command(
                "POST",
                &format!("/api/v1/reviews/{review}/moderation"),
                Some(&admin),
                json!({ "decision": decision, "reason": "moderated in a test" }),
            )
            .await;
        assert!(status == 200 || status == 201, "moderation: {status} {body}");
        position = body["position"].as_str().unwrap().to_owned();
    }

    let page = "query($id: ID!, $after: String) { product(id: $id) { title rating { average count }
        reviews(first: 1, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { rating text status } } } } }";
    let data = stack.graphql_after(page, json!({ "id": product }), None, &position).await;
    let product_page = &data["product"];
    assert_eq!(product_page["rating"], json!({ "average": 4.0, "count": 2 }));
    assert_eq!(product_page["reviews"]["totalCount"], 2);
    assert_eq!(
        product_page["reviews"]["edges"][0]["node"],
        json!({ "rating": 3, "text": "Itchy at first.", "status": "APPROVED" })
    );
    let after = product_page["reviews"]["pageInfo"]["endCursor"].clone();
    let data = stack.graphql(page, json!({ "id": product, "after": after }), None).await;
    assert_eq!(data["product"]["reviews"]["edges"][0]["node"]["text"], "Warm and soft.");
    assert_eq!(data["product"]["reviews"]["pageInfo"]["hasNextPage"], false);
    let data = stack.graphql_after(queue, json!({}), Some(&admin), &position).await;
    assert_eq!(data["moderationQueue"]["totalCount"], 0);
}
