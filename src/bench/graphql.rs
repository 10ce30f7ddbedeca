//! `agora bench graphql`: the storefront mix through HTTP — search with facets, product page
//! with reviews, my orders with delivery history — at each client count, over a realistic
//! catalogue (`search::catalog`, appended to the log directly: fast) with orders,
//! deliveries and reviews made through the command API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::search::catalog::{CatalogGenerator, query_workload};
use ::search::{ProductQuery, SortOrder};
use anyhow::Context as _;
use events::domain::accounts::Role;
use events::domain::catalog::{PRODUCT_CATEGORY, ProductEvent, ProductListed};
use events::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogPosition, NewEvent, PgEventStore, PgStoreOptions,
    StreamId,
};
use futures_util::{StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::checkout::BenchServer;
use super::{Latencies, Report, round1};
use crate::config::Settings;
use crate::startup::Roles;

const CATALOGUE_SEED: u64 = 20_260_601;
const WORKLOAD_SEED: u64 = 11;
const VENDORS: usize = 40;
const BUYERS: usize = 64;
const ORDERS_PER_BUYER: usize = 2;
/// Products per append request (one stream each) while loading the log.
const APPEND_BATCH: usize = 1_000;

const SEARCH_PAGE: &str = "query Search($query: String, $filter: ProductFilter, $sort: ProductSort) {
  products(query: $query, filter: $filter, sort: $sort, first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    facets { categories { value count } brands { value count } priceBuckets { minCents maxCents count } }
    edges { cursor highlights { field html }
      node { id title priceCents currency inStock rating { average count } vendor { id name } } }
  }
}";

const PRODUCT_PAGE: &str = "query Product($id: ID!) {
  product(id: $id) { id title description category brand priceCents currency stock inStock
    rating { average count } vendor { id name productCount }
    reviews(first: 10) { totalCount edges { node { rating text submittedAt } } } }
}";

const MY_ORDERS: &str = "query MyOrders {
  me { name orders(first: 10) { edges { node { id status placedAt totalCents currency
    lines { title quantity unitPriceCents } payment { state }
    delivery { status carrier location history { status location occurredAt } } } } } }
}";

/// The pages of the mix, and the mix itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Search,
    Product,
    MyOrders,
    /// 60 % searches, 25 % product pages, 15 % order pages.
    Mix,
}

impl Page {
    fn name(self) -> &'static str {
        match self {
            Page::Search => "search_with_facets",
            Page::Product => "product_with_reviews",
            Page::MyOrders => "my_orders_with_deliveries",
            Page::Mix => "storefront_mix",
        }
    }
}

/// Prepared request bodies.
struct Requests {
    searches: Vec<String>,
    products: Vec<String>,
    orders: String,
    buyers: Vec<String>,
}

pub async fn graphql(
    url: &str,
    products: usize,
    clients: &[usize],
    seconds: u64,
    report: &Report,
) -> anyhow::Result<()> {
    let server = Arc::new(BenchServer::start(url, Roles::ALL).await?);
    let started = Instant::now();
    let prepared = Arc::new(prepare(&server, url, products).await?);
    tracing::info!(seconds = started.elapsed().as_secs(), "storefront data ready");
    // Warm-up, untimed: caches, prepared statements, connections.
    run(&server, &prepared, Page::Mix, 8, Duration::from_secs(2)).await?;

    for &clients in clients {
        for page in [Page::Search, Page::Product, Page::MyOrders, Page::Mix] {
            let outcome = run(&server, &prepared, page, clients.max(1), Duration::from_secs(seconds)).await?;
            let rate = outcome.requests as f64 / outcome.seconds;
            let mut figures = json!({
                "workload": "graphql", "page": page.name(), "clients": clients, "products": products,
                "requests": outcome.requests, "errors": outcome.errors, "seconds": round1(outcome.seconds),
                "requests_per_s": rate.round(),
            });
            if let Some(object) = figures.as_object_mut() {
                object.extend(outcome.latencies.figures());
            }
            report.line(
                format!(
                    "graphql  {:<26} clients={clients:<3} {} requests ({} errors) in {:.1} s: {rate:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                    page.name(),
                    outcome.requests,
                    outcome.errors,
                    outcome.seconds,
                    outcome.latencies.percentile_ms(50.0),
                    outcome.latencies.percentile_ms(99.0)
                ),
                figures,
            );
        }
    }
    server.stop().await;
    Ok(())
}

/// Register and log in; the account id and its token.
async fn account(server: &BenchServer, role: &str, n: usize) -> anyhow::Result<(Uuid, String)> {
    let email = format!("{role}-{n}-{}@bench.example", Uuid::now_v7().simple());
    let password = "bench password";
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v1/accounts",
            None,
            Some(json!({ "email": email, "password": password, "name": format!("Bench {role} {n}"), "role": role })),
            None,
        )
        .await?;
    anyhow::ensure!(status == 201, "register: {status} {body}");
    login(server, &email, password).await
}

async fn login(server: &BenchServer, email: &str, password: &str) -> anyhow::Result<(Uuid, String)> {
    let (status, body) = server
        .call(Method::POST, "/api/v1/sessions", None, Some(json!({ "email": email, "password": password })), None)
        .await?;
    anyhow::ensure!(status == 200, "login: {status} {body}");
    let id = body["account_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).context("account id")?;
    Ok((id, body["token"].as_str().unwrap_or_default().to_owned()))
}

/// A carrier or an admin: registered through the command handler (staff are not
/// self-registered), then logged in over HTTP.
async fn staff(server: &BenchServer, url: &str, role: Role) -> anyhow::Result<String> {
    let email = format!("{}-{}@bench.example", role.as_str(), Uuid::now_v7().simple());
    let password = "bench staff password";
    let services = crate::startup::services(&Settings::for_database(url), &[0u8; 32]).await?;
    let registration = command::accounts::handlers::Registration {
        email: command::values::Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?,
        password: command::values::Password::parse(password).map_err(|e| anyhow::anyhow!("{e}"))?,
        name: command::values::PersonName::parse("Bench Staff").map_err(|e| anyhow::anyhow!("{e}"))?,
        role,
    };
    command::accounts::handlers::register(
        &services.ctx,
        registration,
        &command::handling::Meta::new(None, Uuid::now_v7()),
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("staff account: {e}"))?;
    services.pool.close().await;
    Ok(login(server, &email, password).await?.1)
}

/// A command that must be accepted, retried while the process managers have not got there
/// yet (a delivery not opened, a purchase not delivered); its consistency token.
async fn accepted(
    server: &BenchServer,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<LogPosition> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let key = Uuid::now_v7().to_string();
        let (status, answer) = server.call(method.clone(), path, Some(token), Some(body.clone()), Some(&key)).await?;
        if status == 200 || status == 201 {
            return answer["position"].as_str().and_then(|p| p.parse().ok()).context("a consistency token");
        }
        anyhow::ensure!(Instant::now() < deadline, "{path}: {status} {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Vendors, the catalogue, buyers with orders, deliveries with tracking, approved reviews;
/// then wait until every read model and the index show all of it.
async fn prepare(server: &BenchServer, url: &str, count: usize) -> anyhow::Result<Requests> {
    let mut vendors = Vec::with_capacity(VENDORS);
    for n in 0..VENDORS {
        vendors.push(account(server, "vendor", n).await?.0);
    }

    tracing::info!(products = count, "appending the catalogue to the log");
    let mut generator = CatalogGenerator::new(CATALOGUE_SEED);
    let mut rng = rand::rngs::StdRng::seed_from_u64(CATALOGUE_SEED);
    let catalogue: Vec<ProductListed> = (0..count)
        .map(|_| {
            let draft = generator.next_product();
            let id = generator.id();
            draft.into_listed(id, vendors[rng.random_range(0..vendors.len())])
        })
        .collect();
    let mut last = append_catalogue(url, &catalogue).await?;

    tracing::info!(buyers = BUYERS, "buyers check out, carriers deliver, buyers review");
    let in_stock: Vec<&ProductListed> = catalogue.iter().filter(|p| p.stock >= 10).take(2_000).collect();
    anyhow::ensure!(!in_stock.is_empty(), "no product in stock");
    let carrier = staff(server, url, Role::Carrier).await?;
    let admin = staff(server, url, Role::Admin).await?;
    let mut buyers = Vec::with_capacity(BUYERS);
    let mut reviewed = Vec::new();
    let checkout = json!({
        "shipping_address": { "name": "Bench Buyer", "line1": "1 Main Street", "city": "Lyon", "postal_code": "69001", "country": "FR" },
        "payment_token": "tok_visa"
    });
    for n in 0..BUYERS {
        let (_, token) = account(server, "buyer", n).await?;
        for o in 0..ORDERS_PER_BUYER {
            let products: Vec<Uuid> = (0..rng.random_range(1..=3))
                .map(|_| in_stock[rng.random_range(0..in_stock.len())].product_id)
                .collect();
            for product in &products {
                let path = format!("/api/v1/cart/items/{product}");
                accepted(server, Method::PUT, &path, &token, json!({ "quantity": 1 })).await?;
            }
            let (status, body) = server
                .call(
                    Method::POST,
                    "/api/v1/checkout",
                    Some(&token),
                    Some(checkout.clone()),
                    Some(&Uuid::now_v7().to_string()),
                )
                .await?;
            anyhow::ensure!(status == 201, "checkout: {status} {body}");
            let order = body["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).context("order id")?;
            let delivery = command::deliveries::handlers::delivery_id_for(order);
            let path = format!("/api/v1/deliveries/{delivery}/tracking");
            let steps: &[(&str, &str)] = if o == 0 {
                &[("picked_up", "Lyon depot"), ("in_transit", "Paris hub"), ("delivered", "Front door")]
            } else {
                &[("picked_up", "Lyon depot"), ("in_transit", "Paris hub")]
            };
            for (status, location) in steps {
                let body =
                    json!({ "status": status, "location": location, "occurred_at": chrono::Utc::now().to_rfc3339() });
                last = last.max(accepted(server, Method::POST, &path, &carrier, body).await?);
            }
            if o == 0 {
                let product = products[0];
                let path = format!("/api/v1/products/{product}/reviews");
                let body = json!({ "rating": rng.random_range(3..=5), "text": "Does what it says, well made, arrived quickly." });
                last = last.max(accepted(server, Method::POST, &path, &token, body).await?);
                reviewed.push(product);
            }
        }
        buyers.push(token);
    }
    // Approve every pending review through the moderation queue.
    let queue = run_graphql(
        server,
        "{ moderationQueue(first: 100) { edges { node { id } } } }",
        json!({}),
        Some(&admin),
        Some(last),
    )
    .await?;
    let pending: Vec<String> = queue["data"]["moderationQueue"]["edges"]
        .as_array()
        .map(|edges| edges.iter().filter_map(|e| e["node"]["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    for review in pending {
        let path = format!("/api/v1/reviews/{review}/moderation");
        last = last.max(
            accepted(server, Method::POST, &path, &admin, json!({ "decision": "approve", "reason": "bench" })).await?,
        );
    }

    tracing::info!("waiting for the read models and the index");
    let everything = "query($id: ID!) { products(first: 1) { totalCount } categories { name }
        product(id: $id) { reviews(first: 1) { totalCount } }
        me { orders(first: 1) { edges { node { delivery { history { status } } } } } } }";
    let answer = run_graphql(server, everything, json!({ "id": reviewed[0] }), Some(&buyers[0]), Some(last)).await?;
    anyhow::ensure!(
        answer["data"]["products"]["totalCount"].as_u64() == Some(count as u64),
        "the index holds {} products, not {count}",
        answer["data"]["products"]["totalCount"]
    );

    let sample: Vec<ProductListed> = catalogue.iter().step_by((count / 4_000).max(1)).cloned().collect();
    let searches = query_workload(WORKLOAD_SEED, &sample, 1_000)
        .into_iter()
        .map(|q| json!({ "query": SEARCH_PAGE, "variables": search_variables(&q.query) }).to_string())
        .collect();
    // Product pages: the reviewed products and as many others.
    let mut pages: Vec<Uuid> = reviewed.clone();
    pages.extend(
        catalogue.iter().step_by((count / reviewed.len().max(1)).max(1)).take(reviewed.len()).map(|p| p.product_id),
    );
    let products =
        pages.iter().map(|id| json!({ "query": PRODUCT_PAGE, "variables": { "id": id } }).to_string()).collect();
    let orders = json!({ "query": MY_ORDERS }).to_string();
    Ok(Requests { searches, products, orders, buyers })
}

fn search_variables(query: &ProductQuery) -> Value {
    let f = &query.filter;
    let mut filter = serde_json::Map::new();
    if !f.categories.is_empty() {
        filter.insert("categories".into(), json!(f.categories));
    }
    if !f.brands.is_empty() {
        filter.insert("brands".into(), json!(f.brands));
    }
    if let Some(v) = f.vendor_id {
        filter.insert("vendorId".into(), json!(v));
    }
    if let Some(v) = f.price_min_cents {
        filter.insert("priceMinCents".into(), json!(v));
    }
    if let Some(v) = f.price_max_cents {
        filter.insert("priceMaxCents".into(), json!(v));
    }
    if let Some(v) = f.in_stock {
        filter.insert("inStock".into(), json!(v));
    }
    if let Some(v) = f.min_rating {
        filter.insert("minRating".into(), json!(v));
    }
    let sort = match query.sort {
        SortOrder::Relevance => "RELEVANCE",
        SortOrder::PriceAsc => "PRICE_ASC",
        SortOrder::PriceDesc => "PRICE_DESC",
        SortOrder::Newest => "NEWEST",
        SortOrder::Rating => "RATING",
    };
    json!({ "query": query.text, "filter": Value::Object(filter), "sort": sort })
}

/// Every product as a `product.listed` event of its own stream, many streams per append.
async fn append_catalogue(url: &str, catalogue: &[ProductListed]) -> anyhow::Result<LogPosition> {
    let pool = crate::database::connect(url, 4).await?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), PgStoreOptions::default()));
    let requests: Vec<AppendRequest> = catalogue
        .chunks(APPEND_BATCH)
        .map(|chunk| {
            chunk.iter().fold(AppendRequest::new(), |request, product| {
                request.stream(
                    StreamId::new(PRODUCT_CATEGORY, product.product_id),
                    ExpectedVersion::NoStream,
                    vec![NewEvent::from_domain(&ProductEvent::from(product.clone()), EventMetadata::default())],
                )
            })
        })
        .collect();
    let last = futures_util::stream::iter(requests)
        .map(|request| {
            let store = store.clone();
            async move { store.append(request).await }
        })
        .buffer_unordered(2)
        .try_fold(LogPosition::START, |last, appended| async move { Ok(last.max(appended.position())) })
        .await?;
    pool.close().await;
    Ok(last)
}

/// One GraphQL operation with a consistency token, retried while the read models are
/// still catching up (`STALE_READ`).
async fn run_graphql(
    server: &BenchServer,
    query: &str,
    variables: Value,
    token: Option<&str>,
    after: Option<LogPosition>,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let mut request = server
            .client
            .post(format!("{}/graphql", server.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(after) = after {
            request = request.header("consistency-token", after.to_string());
        }
        let answer: Value = request.send().await?.json().await?;
        let stale = answer["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["extensions"]["code"] == "STALE_READ"));
        if !stale {
            anyhow::ensure!(answer.get("errors").is_none(), "{answer}");
            return Ok(answer);
        }
        anyhow::ensure!(Instant::now() < deadline, "read models did not catch up: {answer}");
    }
}

struct Outcome {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies: Latencies,
}

/// `clients` connections sending `page` requests back to back for `duration`.
async fn run(
    server: &Arc<BenchServer>,
    requests: &Arc<Requests>,
    page: Page,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let (server, requests, errors) = (server.clone(), requests.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(client as u64);
            let buyer = &requests.buyers[client % requests.buyers.len()];
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let pick = match page {
                    Page::Mix => match rng.random_range(0..100) {
                        0..60 => Page::Search,
                        60..85 => Page::Product,
                        _ => Page::MyOrders,
                    },
                    other => other,
                };
                let (body, token) = match pick {
                    Page::Search => (&requests.searches[rng.random_range(0..requests.searches.len())], None),
                    Page::Product => (&requests.products[rng.random_range(0..requests.products.len())], None),
                    _ => (&requests.orders, Some(buyer)),
                };
                let mut request = server
                    .client
                    .post(format!("{}/graphql", server.base))
                    .header("content-type", "application/json")
                    .body(body.clone());
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let t = Instant::now();
                let response = request.send().await?;
                let ok = response.status().is_success();
                let bytes = response.bytes().await?;
                latencies.push(t.elapsed());
                // An answer with errors counts as an error (it is cheap to spot: no parse).
                if !ok || memchr_errors(&bytes) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Outcome {
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        latencies: Latencies::new(all),
    })
}

fn memchr_errors(body: &[u8]) -> bool {
    body.windows(9).any(|w| w == b"\"errors\":")
}
