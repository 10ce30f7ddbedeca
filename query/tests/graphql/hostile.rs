//! Hostile and broken requests: each gets a GraphQL error with a code, quickly; never a 500,
//! never a hang.

use std::time::{Duration, Instant};

use events::domain::accounts::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Stack, codes};

fn nested(depth: usize) -> String {
    // vendor -> products -> edges -> node -> vendor -> ... deeper than the limit.
    let mut query = String::from("id");
    for _ in 0..depth {
        query = format!("vendor {{ products(first: 1) {{ edges {{ node {{ {query} }} }} }} }}");
    }
    format!("query($id: ID!) {{ product(id: $id) {{ {query} }} }}")
}

fn aliases(n: usize, field: &str) -> String {
    let body: String = (0..n).map(|i| format!("a{i}: {field} ")).collect();
    format!("{{ {body} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_get_graphql_errors_never_a_500_or_a_hang() {
    let stack = Stack::start().await;
    let (vendor_id, vendor) = stack.account(Role::Vendor).await;
    let (product, position) = stack.list(&vendor, "Beeswax candle", "home", 900, 5).await;
    let (_, buyer) = stack.account(Role::Buyer).await;
    let _ = position;
    stack.caught_up().await;

    let id = json!({ "id": product });
    let table: Vec<(&str, String, Value, Option<&str>, &str)> = vec![
        ("nesting past the depth limit", nested(4), id.clone(), None, "BAD_USER_INPUT"),
        ("a document nested thousands deep", format!("{{{}{}", "a{".repeat(5_000), "}".repeat(5_001)), json!({}), None, "BAD_USER_INPUT"),
        ("huge first", "{ products(first: 1000000) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("first past the maximum", "{ products(first: 101) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("negative first", "{ products(first: -1) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("first beyond 32 bits", "{ products(first: 99999999999) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("reviews first past the maximum", "query($id: ID!) { product(id: $id) { reviews(first: 500) { totalCount } } }".into(), id.clone(), None, "BAD_USER_INPUT"),
        ("orders first past the maximum", "{ me { orders(first: 1000) { totalCount } } }".into(), json!({}), Some(buyer.as_str()), "BAD_USER_INPUT"),
        ("1,000 aliases of a search", aliases(1_000, "products(first: 1) { totalCount }"), json!({}), None, "BAD_USER_INPUT"),
        ("1,000 aliases of categories", aliases(1_000, "categories { name }"), json!({}), None, "BAD_USER_INPUT"),
        ("a wide page of wide pages", "{ products(first: 100) { edges { node { reviews(first: 100) { edges { node { text product { title } } } } } } } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("an invalid search cursor", "{ products(after: \"not-a-cursor\") { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("a search cursor of another query", String::new(), json!({}), None, "BAD_USER_INPUT"),
        ("an invalid orders cursor", "{ me { orders(after: \"AAAA\") { totalCount } } }".into(), json!({}), Some(buyer.as_str()), "BAD_USER_INPUT"),
        ("an invalid reviews cursor", "query($id: ID!) { product(id: $id) { reviews(after: \"%%%\") { totalCount } } }".into(), id.clone(), None, "BAD_USER_INPUT"),
        ("a huge cursor", format!("{{ products(after: \"{}\") {{ totalCount }} }}", "A".repeat(30_000)), json!({}), None, "BAD_USER_INPUT"),
        ("a product id that is not a uuid", "{ product(id: \"42\") { title } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("an order id that is not a uuid", "{ order(id: \"../../etc/passwd\") { id } }".into(), json!({}), Some(buyer.as_str()), "BAD_USER_INPUT"),
        ("a vendor id that is not a uuid", "{ vendor(id: \"' or 1=1 --\") { name } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("a vendor filter id that is not a uuid", "{ products(filter: { vendorId: \"x\" }) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("an id of the wrong type", "query($id: ID!) { product(id: $id) { title } }".into(), json!({ "id": { "nested": true } }), None, "BAD_USER_INPUT"),
        ("an empty price range", "{ products(filter: { priceMinCents: 500, priceMaxCents: 100 }) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("a rating out of range", "{ products(filter: { minRating: 7.5 }) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("an unknown sort", "{ products(sort: CHEAPEST) { totalCount } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("an unknown field", "{ products { secret } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("a syntax error", "{ products { ".into(), json!({}), None, "BAD_USER_INPUT"),
        ("an empty document", "".into(), json!({}), None, "BAD_USER_INPUT"),
        ("a fragment cycle", "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("a mutation", "mutation { deleteEverything }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("a missing variable", "query($id: ID!) { product(id: $id) { title } }".into(), json!({}), None, "BAD_USER_INPUT"),
        ("directives by the hundred", format!("{{ categories {} {{ name }} }}", "@include(if: true) ".repeat(300)), json!({}), None, "BAD_USER_INPUT"),
    ];

    // A real cursor of one search, replayed on another.
    let page = stack.graphql("{ products(query: \"candle\", first: 1) { edges { cursor } } }", json!({}), None).await;
    let cursor = page["products"]["edges"][0]["cursor"].as_str().expect("a cursor").to_owned();

    for (name, query, variables, token, expected) in table {
        let query = if query.is_empty() {
            format!("{{ products(query: \"wax\", sort: PRICE_ASC, after: \"{cursor}\") {{ totalCount }} }}")
        } else {
            query
        };
        let started = Instant::now();
        let (status, body) = stack.graphql_raw(&query, variables, token, None).await;
        let took = started.elapsed();
        assert!(status < 500, "{name}: HTTP {status} {body}");
        let got = codes(&body);
        assert!(!got.is_empty(), "{name}: expected an error, got {body}");
        assert!(got.iter().all(|c| c == expected), "{name}: expected {expected}, got {got:?}: {body}");
        assert!(took < Duration::from_secs(5), "{name}: took {took:?}");
        let text = body.to_string();
        assert!(!text.contains("sqlx") && !text.contains("tantivy") && !text.contains("panicked"), "{name}: {text}");
    }

    // Transport-level abuse is answered in GraphQL shape too.
    let url = format!("{}/graphql", stack.base);
    let huge = json!({ "query": format!("{{ products(query: \"{}\") {{ totalCount }} }}", "x".repeat(200_000)) });
    let response = stack.client.post(&url).json(&huge).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    for raw in ["not json", "[{\"query\": \"{ categories { name } }\"}]", "{\"variables\": {}}", "{\"query\": 42}"] {
        let response =
            stack.client.post(&url).header("content-type", "application/json").body(raw).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert!(status == 400 || status == 200, "{raw}: {status} {body}");
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{raw}: {body}");
    }

    // And after all that, the API still answers.
    let data = stack
        .graphql("query($v: ID!) { vendor(id: $v) { products { totalCount } } }", json!({ "v": vendor_id }), None)
        .await;
    assert_eq!(data["vendor"]["products"]["totalCount"], 1);
    let _ = Uuid::nil();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_works_and_the_schema_has_the_contract_shape() {
    let stack = Stack::start().await;
    let data = stack
        .graphql(
            "query IntrospectionQuery {
               __schema {
                 queryType { name } subscriptionType { name }
                 types { ...FullType }
               }
             }
             fragment FullType on __Type {
               kind name
               fields(includeDeprecated: true) { name args { ...InputValue } type { ...TypeRef } }
               inputFields { ...InputValue }
               enumValues(includeDeprecated: true) { name }
             }
             fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
             fragment TypeRef on __Type {
               kind name
               ofType { kind name ofType { kind name ofType { kind name ofType { kind name
                 ofType { kind name ofType { kind name ofType { kind name } } } } } } }
             }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert_eq!(data["__schema"]["subscriptionType"]["name"], "Subscription");

    let sdl = stack.api.sdl();
    for needle in [
        "products(query: String, filter: ProductFilter, sort: ProductSort = RELEVANCE, first: Int = 20, after: String): ProductSearchResult!",
        "product(id: ID!): Product",
        "categories: [CategoryCount!]!",
        "me: Account",
        "order(id: ID!): Order",
        "vendor(id: ID!): Vendor",
        "orderUpdated(orderId: ID!): Order!",
        "input ProductFilter",
        "enum ProductSort",
        "totalCount: Int!",
        "facets: Facets!",
        "highlights: [Highlight!]!",
        "priceBuckets: [PriceBucket!]!",
        "rating: Rating!",
        "vendor: Vendor!",
        "reviews(first: Int, after: String): ReviewConnection!",
        "lines: [OrderLine!]!",
        "payment: Payment!",
        "delivery: Delivery",
        "history: [TrackingEvent!]!",
        "orders(first: Int, after: String): OrderConnection!",
    ] {
        assert!(sdl.contains(needle), "the schema lacks `{needle}`:\n{sdl}");
    }
}
