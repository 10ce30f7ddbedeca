//! One test per access rule.

use chrono::Utc;
use events::domain::accounts::Role;
use events::identity::{Caller, TokenKeys};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{SECRET, Stack, codes};

const ORDER: &str = "query($id: ID!) { order(id: $id) { id status totalCents currency \
                     lines { productId vendorId title quantity unitPriceCents totalCents } \
                     payment { state amountCents authorizationId } } }";

/// Two vendors with one product each, and a buyer's order of both.
struct Marketplace {
    vendor1: (Uuid, String),
    vendor2: (Uuid, String),
    buyer: (Uuid, String),
    product1: Uuid,
    product2: Uuid,
    order: Uuid,
    position: String,
}

async fn marketplace(stack: &Stack) -> Marketplace {
    let vendor1 = stack.account(Role::Vendor).await;
    let vendor2 = stack.account(Role::Vendor).await;
    let (product1, _) = stack.list(&vendor1.1, "Walnut desk lamp", "lighting", 4_500, 10).await;
    let (product2, _) = stack.list(&vendor2.1, "Linen cushion cover", "textiles", 1_800, 10).await;
    let buyer = stack.account(Role::Buyer).await;
    let (order, position) = stack.order(&buyer.1, &[(product1, 1), (product2, 2)]).await;
    Marketplace { vendor1, vendor2, buyer, product1, product2, order, position }
}

fn lines(data: &Value) -> Vec<(String, i64)> {
    data["order"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| (l["productId"].as_str().unwrap_or_default().to_owned(), l["quantity"].as_i64().unwrap_or(0)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_see_the_catalogue_and_nothing_else() {
    let stack = Stack::start().await;
    let m = marketplace(&stack).await;
    let data = stack
        .graphql_after(
            "query($id: ID!, $vendor: ID!) {
               products(query: \"walnut lamp\") { totalCount edges { node { id title vendor { id name } } } }
               product(id: $id) { title priceCents rating { average count } vendor { name productCount } }
               categories { name productCount }
               vendor(id: $vendor) { name productCount products { totalCount edges { node { title } } } }
             }",
            json!({ "id": m.product1, "vendor": m.vendor1.0 }),
            None,
            &m.position,
        )
        .await;
    assert_eq!(data["products"]["totalCount"], 1);
    assert_eq!(data["products"]["edges"][0]["node"]["id"], m.product1.to_string());
    assert_eq!(data["products"]["edges"][0]["node"]["vendor"]["name"], "Test Person");
    assert_eq!(data["product"]["priceCents"], 4_500);
    assert_eq!(data["product"]["rating"], json!({ "average": null, "count": 0 }));
    assert_eq!(data["vendor"]["products"]["edges"][0]["node"]["title"], "Walnut desk lamp");
    let categories: Vec<&str> =
        data["categories"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(categories, ["lighting", "textiles"]);

    // Everything about people needs a token.
    for (query, field) in [
        ("{ me { id email } }", "me"),
        ("query($id: ID!) { order(id: $id) { id } }", "order"),
        ("{ moderationQueue { totalCount } }", "moderationQueue"),
    ] {
        let (status, body) = stack.graphql_raw(query, json!({ "id": m.order }), None, Some(&m.position)).await;
        assert_eq!(status, 200);
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{query}: {body}");
        assert_eq!(body["data"][field], Value::Null, "{body}");
    }
    let (_, body) = stack
        .graphql_raw(
            "query($v: ID!) { vendor(id: $v) { sales { revenueCents } } }",
            json!({ "v": m.vendor1.0 }),
            None,
            None,
        )
        .await;
    assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_is_forged_or_expired_is_refused_where_a_caller_is_needed() {
    let stack = Stack::start().await;
    let (buyer, _) = stack.account(Role::Buyer).await;
    let keys = TokenKeys::new(SECRET, chrono::Duration::hours(1));
    let (expired, _) =
        keys.issue(Caller { account_id: buyer, role: Role::Buyer }, Utc::now() - chrono::Duration::hours(3)).unwrap();
    let forger = TokenKeys::new(b"not the server's secret, but long enough", chrono::Duration::hours(1));
    let (forged, _) = forger.issue(Caller { account_id: buyer, role: Role::Admin }, Utc::now()).unwrap();
    for (token, says) in [(expired.as_str(), "expired"), (forged.as_str(), "not valid"), ("garbage", "not valid")] {
        let (_, body) = stack.graphql_raw("{ me { id } categories { name } }", json!({}), Some(token), None).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(says), "{body}");
        // The public part still answers.
        assert!(body["data"]["categories"].is_array(), "{body}");
    }
    let (_, body) = stack.graphql_raw("{ moderationQueue { totalCount } }", json!({}), Some(&forged), None).await;
    assert_eq!(codes(&body), ["UNAUTHENTICATED"], "a forged admin token is no admin: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_sees_its_own_orders_and_others_are_not_found() {
    let stack = Stack::start().await;
    let m = marketplace(&stack).await;
    let data = stack.graphql_after(ORDER, json!({ "id": m.order }), Some(&m.buyer.1), &m.position).await;
    assert_eq!(data["order"]["id"], m.order.to_string());
    assert_eq!(data["order"]["totalCents"], 4_500 + 2 * 1_800);
    assert_eq!(lines(&data), [(m.product1.to_string(), 1), (m.product2.to_string(), 2)]);

    let mine = stack
        .graphql_after(
            "{ me { role orders { totalCount edges { node { id } } } } }",
            json!({}),
            Some(&m.buyer.1),
            &m.position,
        )
        .await;
    assert_eq!(mine["me"]["role"], "BUYER");
    assert_eq!(mine["me"]["orders"]["totalCount"], 1);
    assert_eq!(mine["me"]["orders"]["edges"][0]["node"]["id"], m.order.to_string());

    // Another buyer: the same answer as for an order that does not exist.
    let (_, other) = stack.account(Role::Buyer).await;
    stack.caught_up().await;
    let (_, body) = stack.graphql_raw(ORDER, json!({ "id": m.order }), Some(&other), Some(&m.position)).await;
    assert_eq!(codes(&body), ["NOT_FOUND"], "{body}");
    assert_eq!(body["data"]["order"], Value::Null);
    let (_, missing) = stack.graphql_raw(ORDER, json!({ "id": Uuid::now_v7() }), Some(&other), None).await;
    assert_eq!(missing["errors"][0]["message"], body["errors"][0]["message"]);
    let theirs = stack.graphql("{ me { orders { totalCount edges { node { id } } } } }", json!({}), Some(&other)).await;
    assert_eq!(theirs["me"]["orders"]["totalCount"], 0);
    // Nor can a carrier read orders.
    let (_, carrier) = stack.account(Role::Carrier).await;
    let (_, body) = stack.graphql_raw(ORDER, json!({ "id": m.order }), Some(&carrier), None).await;
    assert_eq!(codes(&body), ["NOT_FOUND"], "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_sees_orders_with_its_products_and_only_its_lines() {
    let stack = Stack::start().await;
    let m = marketplace(&stack).await;
    let data = stack.graphql_after(ORDER, json!({ "id": m.order }), Some(&m.vendor1.1), &m.position).await;
    assert_eq!(lines(&data), [(m.product1.to_string(), 1)], "only its own line");
    assert_eq!(data["order"]["totalCents"], 4_500, "the total of its own lines");
    assert_eq!(data["order"]["payment"]["authorizationId"], Value::Null);

    let data = stack.graphql_after(ORDER, json!({ "id": m.order }), Some(&m.vendor2.1), &m.position).await;
    assert_eq!(lines(&data), [(m.product2.to_string(), 2)]);
    assert_eq!(data["order"]["totalCents"], 3_600);

    let listed = stack
        .graphql_after(
            "{ me { orders { totalCount edges { node { id totalCents lines { productId } } } } } }",
            json!({}),
            Some(&m.vendor2.1),
            &m.position,
        )
        .await;
    assert_eq!(listed["me"]["orders"]["totalCount"], 1);
    let node = &listed["me"]["orders"]["edges"][0]["node"];
    assert_eq!(node["id"], m.order.to_string());
    assert_eq!(node["lines"].as_array().unwrap().len(), 1);
    assert_eq!(node["totalCents"], 3_600);

    // A vendor with nothing in the order does not see it.
    let (_, stranger) = stack.account(Role::Vendor).await;
    let (_, body) = stack.graphql_raw(ORDER, json!({ "id": m.order }), Some(&stranger), None).await;
    assert_eq!(codes(&body), ["NOT_FOUND"], "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_every_order_and_alone_sees_the_moderation_queue() {
    let stack = Stack::start().await;
    let m = marketplace(&stack).await;
    let (_, admin) = stack.account(Role::Admin).await;
    stack.caught_up().await;
    let data = stack.graphql_after(ORDER, json!({ "id": m.order }), Some(&admin), &m.position).await;
    assert_eq!(lines(&data).len(), 2);
    assert_eq!(data["order"]["totalCents"], 8_100);
    let all = stack.graphql("{ me { orders { totalCount } } }", json!({}), Some(&admin)).await;
    assert_eq!(all["me"]["orders"]["totalCount"], 1);

    let queue = "{ moderationQueue(first: 5) { totalCount edges { node { id rating text status product { id } } } } }";
    let data = stack.graphql(queue, json!({}), Some(&admin)).await;
    assert_eq!(data["moderationQueue"]["totalCount"], 0);
    for token in [&m.buyer.1, &m.vendor1.1] {
        let (_, body) = stack.graphql_raw(queue, json!({}), Some(token), None).await;
        assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
        assert_eq!(body["data"], Value::Null, "moderationQueue is non-null: the error nulls the data");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_sees_its_own_sales_figures_and_no_one_elses() {
    let stack = Stack::start().await;
    let m = marketplace(&stack).await;
    let sales = "query($v: ID!) { vendor(id: $v) { name products { totalCount } sales { currency orders units revenueCents } } }";
    // Sales count once the payment confirms the order (the payment process runs).
    let data = stack
        .eventually(sales, json!({ "v": m.vendor2.0 }), Some(&m.vendor2.1), |d| d["vendor"]["sales"][0]["orders"] == 1)
        .await;
    assert_eq!(data["vendor"]["sales"], json!([{ "currency": "EUR", "orders": 1, "units": 2, "revenueCents": 3_600 }]));
    let (_, admin) = stack.account(Role::Admin).await;
    let data = stack.graphql(sales, json!({ "v": m.vendor2.0 }), Some(&admin)).await;
    assert_eq!(data["vendor"]["sales"][0]["revenueCents"], 3_600);

    for token in [&m.vendor1.1, &m.buyer.1] {
        let (_, body) = stack.graphql_raw(sales, json!({ "v": m.vendor2.0 }), Some(token), None).await;
        assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
        assert_eq!(body["data"]["vendor"]["sales"], Value::Null, "{body}");
        assert_eq!(body["data"]["vendor"]["name"], "Test Person", "the public profile still answers");
    }
    // The public profile needs no token.
    let data = stack
        .graphql("query($v: ID!) { vendor(id: $v) { name productCount } }", json!({ "v": m.vendor2.0 }), None)
        .await;
    assert_eq!(data["vendor"]["productCount"], 1);
    let _ = (m.product1, m.product2);
}
