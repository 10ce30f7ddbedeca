//! `agora bench checkout`: buyers register, fill their carts and check out, through HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Latencies, Report, round1};
use crate::config::Settings;
use crate::startup::Roles;

const VENDORS: usize = 20;
const PRODUCTS_PER_VENDOR: usize = 50;

/// A running agora (command role) on an ephemeral port over the benchmark database.
pub struct BenchServer {
    pub base: String,
    pub client: reqwest::Client,
    index_dir: std::path::PathBuf,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = std::fs::remove_dir_all(&self.index_dir);
    }
}

impl BenchServer {
    pub async fn start(url: &str, roles: Roles) -> anyhow::Result<BenchServer> {
        crate::database::recreate_database(url).await?;
        let mut settings = Settings::for_database(url);
        settings.listen_addr = "127.0.0.1:0".parse()?;
        settings.db_pool_size = 40;
        // A fresh search index per run: one left by an earlier run (of another log) would
        // hold its products and its checkpoint.
        let index_dir = std::env::temp_dir().join(format!("agora-bench-index-{}", Uuid::now_v7().simple()));
        settings.index_dir = index_dir.clone();
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        let (shutdown, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            if let Err(error) = crate::startup::run_until(settings, roles, true, Some(address_tx), stop).await {
                eprintln!("bench server stopped: {error:#}");
            }
        });
        let address =
            tokio::time::timeout(Duration::from_secs(60), address_rx).await.context("bench server start")??;
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        Ok(BenchServer {
            base: format!("http://{address}"),
            client,
            index_dir,
            shutdown,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// Shut the server down and wait until it has let go of its connections, so the next
    /// workload neither shares the CPU with it nor runs out of database connections.
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Register and log in; the access token.
    pub async fn account(&self, role: &str) -> anyhow::Result<String> {
        let email = format!("{role}-{}@bench.example", Uuid::now_v7().simple());
        let password = "bench password";
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/accounts",
                None,
                Some(json!({ "email": email, "password": password, "name": "Bench", "role": role })),
                None,
            )
            .await?;
        anyhow::ensure!(status == 201, "register: {status} {body}");
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/sessions",
                None,
                Some(json!({ "email": email, "password": password })),
                None,
            )
            .await?;
        anyhow::ensure!(status == 200, "login: {status} {body}");
        Ok(body["token"].as_str().unwrap_or_default().to_owned())
    }

    /// 20 vendors x 50 products with deep stock; the product ids.
    pub async fn catalogue(&self) -> anyhow::Result<Vec<String>> {
        let mut products = Vec::with_capacity(VENDORS * PRODUCTS_PER_VENDOR);
        for v in 0..VENDORS {
            let vendor = self.account("vendor").await?;
            for p in 0..PRODUCTS_PER_VENDOR {
                let body = json!({
                    "title": format!("Bench product {v}-{p}"), "description": "A product for the checkout benchmark.",
                    "category": "bench", "brand": format!("Brand {v}"), "price_cents": 500 + p as i64 * 10,
                    "currency": "EUR", "stock": 1_000_000
                });
                let (status, body) =
                    self.call(reqwest::Method::POST, "/api/v1/products", Some(&vendor), Some(body), None).await?;
                anyhow::ensure!(status == 201, "list product: {status} {body}");
                products.push(body["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        Ok(products)
    }
}

/// Run `clients` buyers for `seconds`, each repeatedly adding 1-3 items and checking out.
pub async fn checkout(url: &str, clients: &[usize], seconds: u64, report: &Report) -> anyhow::Result<()> {
    let server = Arc::new(BenchServer::start(url, Roles::COMMAND).await?);
    let products = Arc::new(server.catalogue().await?);
    for &clients in clients {
        let clients = clients.max(1);
        let mut buyers = Vec::with_capacity(clients);
        for _ in 0..clients {
            buyers.push(server.account("buyer").await?);
        }
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (n, buyer) in buyers.into_iter().enumerate() {
            let (server, products) = (server.clone(), products.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
                let mut latencies = Vec::new();
                let mut refused = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..rng.random_range(1..=3) {
                        let product = &products[rng.random_range(0..products.len())];
                        let path = format!("/api/v1/cart/items/{product}");
                        let (status, body) =
                            server.call(reqwest::Method::PUT, &path, Some(&buyer), Some(json!({ "quantity": rng.random_range(1..=2) })), None).await?;
                        anyhow::ensure!(status == 200, "cart: {status} {body}");
                    }
                    let key = Uuid::now_v7().to_string();
                    let body = json!({
                        "shipping_address": { "name": "Bench Buyer", "line1": "1 Main Street", "city": "Lyon", "postal_code": "69001", "country": "FR" },
                        "payment_token": "tok_visa"
                    });
                    let t = Instant::now();
                    let (status, body) = server.call(reqwest::Method::POST, "/api/v1/checkout", Some(&buyer), Some(body), Some(&key)).await?;
                    match status {
                        201 => latencies.push(t.elapsed()),
                        409 => refused += 1,
                        _ => anyhow::bail!("checkout: {status} {body}"),
                    }
                }
                anyhow::Ok((latencies, refused))
            }));
        }
        let mut all = Vec::new();
        let mut refused = 0;
        for task in tasks {
            let (latencies, r) = task.await??;
            all.extend(latencies);
            refused += r;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let accepted = all.len();
        let latencies = Latencies::new(all);
        let rate = accepted as f64 / elapsed;
        let mut figures = json!({
            "workload": "checkout", "clients": clients, "checkouts": accepted, "refused": refused,
            "seconds": round1(elapsed), "checkouts_per_s": round1(rate),
        });
        if let Some(object) = figures.as_object_mut() {
            object.extend(latencies.figures());
        }
        report.line(
            format!(
                "checkout buyers={clients:<3} accepted={accepted} refused={refused} in {elapsed:.1} s: {rate:.0} checkouts/s, p50 {:.2} ms, p99 {:.2} ms",
                latencies.percentile_ms(50.0),
                latencies.percentile_ms(99.0)
            ),
            figures,
        );
    }
    server.stop().await;
    visibility_lag(url, seconds, report).await
}

// --- Visibility lag: checkout response -> order visible through GraphQL ------------------

/// Buyers checking out one after the other while the lag is measured.
const LAG_BUYERS: usize = 8;

const ORDER_QUERY: &str = "query($id: ID!) { order(id: $id) { id status } }";

/// With every role in one process (on a database of its own, `<bench database>_lag`):
/// each buyer checks out, then reads the order through GraphQL — alternately with the
/// checkout's `Consistency-Token` (one request that waits server-side) and without it
/// (polled every millisecond until found). The time from the checkout response to the
/// order's answer, p50 / p99 per way.
pub async fn visibility_lag(url: &str, seconds: u64, report: &Report) -> anyhow::Result<()> {
    let mut lag_url = url::Url::parse(url).context("benchmark database URL")?;
    let name = format!("{}_lag", lag_url.path().trim_start_matches('/'));
    lag_url.set_path(&format!("/{name}"));
    let server = Arc::new(BenchServer::start(lag_url.as_str(), Roles::ALL).await?);
    let products = Arc::new(server.catalogue().await?);
    let mut buyers = Vec::with_capacity(LAG_BUYERS);
    for _ in 0..LAG_BUYERS {
        buyers.push(server.account("buyer").await?);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds.max(2));
    let mut tasks = Vec::new();
    for (n, buyer) in buyers.into_iter().enumerate() {
        let (server, products) = (server.clone(), products.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1_000 + n as u64);
            let (mut with_token, mut without_token) = (Vec::new(), Vec::new());
            let mut use_token = n % 2 == 0;
            while Instant::now() < deadline {
                let product = &products[rng.random_range(0..products.len())];
                let path = format!("/api/v1/cart/items/{product}");
                let (status, body) =
                    server.call(reqwest::Method::PUT, &path, Some(&buyer), Some(json!({ "quantity": 1 })), None).await?;
                anyhow::ensure!(status == 200, "cart: {status} {body}");
                let checkout = json!({
                    "shipping_address": { "name": "Bench Buyer", "line1": "1 Main Street", "city": "Lyon", "postal_code": "69001", "country": "FR" },
                    "payment_token": "tok_visa"
                });
                let key = Uuid::now_v7().to_string();
                let (status, body) =
                    server.call(reqwest::Method::POST, "/api/v1/checkout", Some(&buyer), Some(checkout), Some(&key)).await?;
                anyhow::ensure!(status == 201, "checkout: {status} {body}");
                let answered = Instant::now();
                let (order, position) = (body["id"].clone(), body["position"].as_str().unwrap_or_default().to_owned());
                loop {
                    let mut request = server
                        .client
                        .post(format!("{}/graphql", server.base))
                        .bearer_auth(&buyer)
                        .json(&json!({ "query": ORDER_QUERY, "variables": { "id": order } }));
                    if use_token {
                        request = request.header("consistency-token", &position);
                    }
                    let answer: Value = request.send().await?.json().await?;
                    if !answer["data"]["order"].is_null() {
                        break;
                    }
                    anyhow::ensure!(answered.elapsed() < Duration::from_secs(30), "order never visible: {answer}");
                    if !use_token {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                let lag = answered.elapsed();
                if use_token { with_token.push(lag) } else { without_token.push(lag) }
                use_token = !use_token;
            }
            anyhow::Ok((with_token, without_token))
        }));
    }
    let (mut with_token, mut without_token) = (Vec::new(), Vec::new());
    for task in tasks {
        let (w, wo) = task.await??;
        with_token.extend(w);
        without_token.extend(wo);
    }
    server.stop().await;
    for (token, lags) in [(true, with_token), (false, without_token)] {
        let orders = lags.len();
        let latencies = Latencies::new(lags);
        let mut figures = json!({
            "workload": "checkout", "phase": "visible_through_graphql", "consistency_token": token,
            "buyers": LAG_BUYERS, "orders": orders,
        });
        if let Some(object) = figures.as_object_mut() {
            object.extend(latencies.figures());
        }
        report.line(
            format!(
                "checkout lag     {:<19} {orders} orders: checkout response -> order through GraphQL p50 {:.2} ms, p99 {:.2} ms",
                if token { "with the token" } else { "polling, no token" },
                latencies.percentile_ms(50.0),
                latencies.percentile_ms(99.0)
            ),
            figures,
        );
    }
    Ok(())
}
