//! The catalogue: search with facets, highlights, filters, sorts and cursors; vendor pages.

use std::collections::HashSet;

use events::domain::accounts::Role;
use serde_json::{Value, json};

use crate::support::{Stack, codes};

const SEARCH: &str = "query($q: String, $filter: ProductFilter, $sort: ProductSort, $first: Int, $after: String) {
  products(query: $q, filter: $filter, sort: $sort, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id title category priceCents inStock vendor { name } } highlights { field text html matches } }
    facets { categories { value count } brands { value count } priceBuckets { minCents maxCents count } }
  }
}";

fn titles(data: &Value) -> Vec<String> {
    data["products"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_pages_through_results_with_facets_highlights_filters_and_sorts() {
    let stack = Stack::start().await;
    let (vendor_id, vendor) = stack.named_account(Role::Vendor, "Oakwood Studio").await;
    let catalogue = [
        ("Oak dining table", "furniture", 45_000, 3),
        ("Oak coffee table", "furniture", 22_000, 0),
        ("Oak bookshelf", "furniture", 18_000, 7),
        ("Oak cutting board", "kitchen", 3_500, 12),
        ("Walnut cutting board", "kitchen", 4_200, 9),
        ("Oak wall clock", "decor", 6_900, 2),
        ("Pine bench", "furniture", 9_900, 4),
    ];
    let mut last = String::new();
    for (title, category, price, stock) in catalogue {
        last = stack.list(&vendor, title, category, price, stock).await.1;
    }

    let data = stack.graphql_after(SEARCH, json!({ "q": "oak", "first": 2 }), None, &last).await;
    let products = &data["products"];
    assert_eq!(products["totalCount"], 5);
    assert_eq!(products["pageInfo"]["hasNextPage"], true);
    assert_eq!(products["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(products["pageInfo"]["endCursor"], products["edges"][1]["cursor"]);
    assert_eq!(products["edges"][0]["node"]["vendor"]["name"], "Oakwood Studio");
    let highlight = &products["edges"][0]["highlights"][0];
    assert_eq!(highlight["field"], "title");
    assert_eq!(highlight["matches"], json!(["Oak"]));
    assert!(highlight["html"].as_str().unwrap().contains("<mark>Oak</mark>"), "{highlight}");
    let facets = &products["facets"];
    assert_eq!(
        facets["categories"],
        json!([{ "value": "furniture", "count": 3 }, { "value": "decor", "count": 1 }, { "value": "kitchen", "count": 1 }])
    );
    assert_eq!(facets["brands"], json!([{ "value": "Acme", "count": 5 }]));
    let buckets: i64 = facets["priceBuckets"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(buckets, 5);

    // Walk every page with the cursors: each product once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = stack.graphql(SEARCH, json!({ "q": "oak", "first": 2, "after": after }), None).await;
        seen.extend(titles(&page));
        if page["products"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["products"]["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5, "{seen:?}");

    let cheap_first = stack
        .graphql(SEARCH, json!({ "q": "oak", "filter": { "categories": ["furniture"] }, "sort": "PRICE_ASC" }), None)
        .await;
    assert_eq!(titles(&cheap_first), ["Oak bookshelf", "Oak coffee table", "Oak dining table"]);
    let in_stock = stack
        .graphql(
            SEARCH,
            json!({ "filter": { "inStock": true, "priceMaxCents": 10_000, "vendorId": vendor_id }, "sort": "PRICE_DESC" }),
            None,
        )
        .await;
    assert_eq!(titles(&in_stock), ["Pine bench", "Oak wall clock", "Walnut cutting board", "Oak cutting board"]);
    // A typo still finds the product.
    let typo = stack.graphql(SEARCH, json!({ "q": "bokshelf " }), None).await;
    assert_eq!(titles(&typo), ["Oak bookshelf"]);

    // The vendor's own list, newest first, paged by cursor.
    let vendor_page =
        "query($v: ID!, $after: String) { vendor(id: $v) { productCount products(first: 4, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { title } } } } }";
    let first = stack.graphql(vendor_page, json!({ "v": vendor_id }), None).await;
    assert_eq!(first["vendor"]["productCount"], 7);
    let page1: Vec<&str> = first["vendor"]["products"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(page1, ["Pine bench", "Oak wall clock", "Walnut cutting board", "Oak cutting board"]);
    let after = first["vendor"]["products"]["pageInfo"]["endCursor"].clone();
    let second = stack.graphql(vendor_page, json!({ "v": vendor_id, "after": after }), None).await;
    assert_eq!(second["vendor"]["products"]["edges"].as_array().unwrap().len(), 3);
    assert_eq!(second["vendor"]["products"]["pageInfo"]["hasNextPage"], false);
    // A vendor-products cursor is not a search cursor.
    let (_, body) = stack.graphql_raw(SEARCH, json!({ "after": after }), None, None).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");

    let data = stack.graphql("{ categories { name productCount } }", json!({}), None).await;
    assert_eq!(
        data["categories"],
        json!([
            { "name": "decor", "productCount": 1 },
            { "name": "furniture", "productCount": 4 },
            { "name": "kitchen", "productCount": 2 }
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_delisted_product_is_not_found() {
    let stack = Stack::start().await;
    let (_, vendor) = stack.account(Role::Vendor).await;
    let (product, _) = stack.list(&vendor, "Stoneware teapot", "kitchen", 3_100, 4).await;
    let (status, body) =
        stack.command("DELETE", &format!("/api/v1/products/{product}"), Some(&vendor), json!({})).await;
    assert!(status == 200, "delist: {status} {body}");
    let position = body["position"].as_str().unwrap().to_owned();
    let query = "query($id: ID!) { product(id: $id) { title } }";
    let (_, body) = stack.graphql_raw(query, json!({ "id": product }), None, Some(&position)).await;
    assert_eq!(codes(&body), ["NOT_FOUND"], "{body}");
    let (_, body) = stack.graphql_raw(query, json!({ "id": uuid::Uuid::now_v7() }), None, None).await;
    assert_eq!(codes(&body), ["NOT_FOUND"], "{body}");
    let data = stack.graphql_after("{ products(query: \"teapot\") { totalCount } }", json!({}), None, &position).await;
    assert_eq!(data["products"]["totalCount"], 0);
}
