//! The whole read path on a throwaway PostgreSQL database: the real command API (data goes in
//! through it), the real projectors and process managers, the real search indexer, and the
//! GraphQL API under test, all on one random port.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use command::Context;
use command::accounts::handlers::{Registration, register};
use command::handling::Meta;
use command::payments::SandboxGateway;
use events::domain::accounts::Role;
use events::identity::TokenKeys;
use events::privacy::KeyVault;
use events::testing::TestDatabase;
use events::{EventStore, LogPosition, PgEventStore, PgStoreOptions};
use query::{QueryApi, QueryOptions, ReadModels};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

pub const SECRET: &[u8] = b"query test secret, thirty-two bytes or more";

/// What runs in the background.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run the process managers (payment, fulfilment, completion) from the start.
    pub reactors: bool,
    pub query: QueryOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self { reactors: true, query: QueryOptions::default() }
    }
}

pub struct Stack {
    pub base: String,
    pub client: reqwest::Client,
    pub store: PgEventStore,
    pub ctx: Arc<Context>,
    pub api: QueryApi,
    pub index: search::ProductIndex,
    shutdown: watch::Sender<bool>,
    reactors_started: std::sync::atomic::AtomicBool,
    /// The latest consistency token any command answered with.
    last_position: std::sync::Mutex<LogPosition>,
    // Last: dropped after everything that uses it.
    pub db: TestDatabase,
}

/// Logs in tests only with `TEST_LOG` set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Stack {
        init_logs();
        let db = TestDatabase::create_with_pool_size(10).await;
        events::postgres::migrate(db.pool()).await.expect("event store migrations");
        projections::migrate(db.pool()).await.expect("projections migrations");
        let store = PgEventStore::new(db.pool().clone(), PgStoreOptions::default());
        let vault = KeyVault::new(db.pool().clone());
        let tokens = TokenKeys::new(SECRET, chrono::Duration::hours(1));
        let mut ctx =
            Context::new(Arc::new(store.clone()), vault.clone(), tokens.clone(), Arc::new(SandboxGateway::new()));
        ctx.attempts = 30;
        let ctx = Arc::new(ctx);
        let (shutdown, stop) = watch::channel(false);

        let shared_store: Arc<dyn EventStore> = Arc::new(store.clone());
        let run = fast_run_options();
        tokio::spawn(projections::run_projectors(
            db.pool().clone(),
            shared_store.clone(),
            projections::all_projections(vault.clone()),
            run.clone(),
            stop.clone(),
        ));
        let index = search::ProductIndex::in_memory().expect("index");
        let mut stopped = stop.clone();
        tokio::spawn(search::run(shared_store.clone(), index.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));

        let read = ReadModels::connect_lazy(db.url(), 4).expect("read pool");
        let api = QueryApi::new(read, index.clone(), shared_store, tokens, options.query.clone());
        let (commands, _) = command::http::router(ctx.clone());
        let router = commands.merge(query::router(api.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let stack = Stack {
            base,
            client: reqwest::Client::new(),
            store,
            ctx,
            api,
            index,
            shutdown,
            reactors_started: std::sync::atomic::AtomicBool::new(false),
            last_position: std::sync::Mutex::new(LogPosition::START),
            db,
        };
        if options.reactors {
            stack.start_reactors();
        }
        stack.projectors_running().await;
        stack
    }

    /// Wait until every projection has its live generation (the projectors are up).
    async fn projectors_running(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let live: i64 =
                sqlx::query_scalar("select count(*) from projection.checkpoint where live and kind = 'projection'")
                    .fetch_one(self.db.pool())
                    .await
                    .expect("checkpoints");
            if live >= 5 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "projectors did not start within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Start the process managers (payment, fulfilment, completion), once.
    pub fn start_reactors(&self) {
        if self.reactors_started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let store: Arc<dyn EventStore> = Arc::new(self.store.clone());
        for reactor in command::reactors(&self.ctx) {
            tokio::spawn(projections::run_reactor(
                self.db.pool().clone(),
                store.clone(),
                reactor,
                fast_run_options(),
                self.shutdown.subscribe(),
            ));
        }
    }

    /// Stop every projector, reactor and the indexer (they finish their batch first).
    pub async fn stop_background(&self) {
        let _ = self.shutdown.send(true);
        // Leaders release their locks as they stop; give them a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // --- command API ---------------------------------------------------------------------

    pub async fn command(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if path == "/api/v1/checkout" {
            request = request.header("idempotency-key", Uuid::now_v7().to_string());
        }
        let response = request.send().await.expect("command request");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        if let Some(position) = body["position"].as_str().and_then(|p| p.parse::<LogPosition>().ok()) {
            let mut last = self.last_position.lock().unwrap();
            *last = (*last).max(position);
        }
        (status, body)
    }

    #[track_caller]
    fn accepted(status: u16, body: &Value, what: &str) -> (Uuid, String) {
        assert!(status == 200 || status == 201, "{what}: {status} {body}");
        let id = body["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).unwrap_or_else(Uuid::nil);
        let position = body["position"].as_str().unwrap_or_default().to_owned();
        (id, position)
    }

    /// A new account of `role` (buyers and vendors register over HTTP, staff through the
    /// handler) and its token.
    pub async fn account(&self, role: Role) -> (Uuid, String) {
        self.named_account(role, "Test Person").await
    }

    pub async fn named_account(&self, role: Role, name: &str) -> (Uuid, String) {
        let email = format!("{}-{}@example.com", role.as_str(), Uuid::now_v7().simple());
        let password = "correct horse battery";
        match role {
            Role::Buyer | Role::Vendor => {
                let (status, body) = self
                    .command(
                        "POST",
                        "/api/v1/accounts",
                        None,
                        json!({ "email": email, "password": password, "name": name, "role": role.as_str() }),
                    )
                    .await;
                Self::accepted(status, &body, "register");
            }
            Role::Carrier | Role::Admin => {
                let registration = Registration {
                    email: command::values::Email::parse(&email).expect("email"),
                    password: command::values::Password::parse(password).expect("password"),
                    name: command::values::PersonName::parse(name).expect("name"),
                    role,
                };
                register(&self.ctx, registration, &Meta::new(None, Uuid::now_v7()), None).await.expect("staff account");
            }
        }
        let (status, body) =
            self.command("POST", "/api/v1/sessions", None, json!({ "email": email, "password": password })).await;
        assert_eq!(status, 200, "login: {body}");
        let id = Uuid::parse_str(body["account_id"].as_str().expect("account id")).expect("uuid");
        (id, body["token"].as_str().expect("token").to_owned())
    }

    /// List a product; its id and the consistency token.
    pub async fn list(
        &self,
        vendor: &str,
        title: &str,
        category: &str,
        price_cents: i64,
        stock: i64,
    ) -> (Uuid, String) {
        let (status, body) = self
            .command(
                "POST",
                "/api/v1/products",
                Some(vendor),
                json!({
                    "title": title, "description": format!("{title}: a fine product for the test catalogue."),
                    "category": category, "brand": "Acme", "price_cents": price_cents, "currency": "EUR", "stock": stock
                }),
            )
            .await;
        Self::accepted(status, &body, "list product")
    }

    /// Put `items` (product, quantity) in the buyer's cart and check out; the order id and
    /// the consistency token of the checkout.
    pub async fn order(&self, buyer: &str, items: &[(Uuid, i64)]) -> (Uuid, String) {
        for (product, quantity) in items {
            let (status, body) = self
                .command("PUT", &format!("/api/v1/cart/items/{product}"), Some(buyer), json!({ "quantity": quantity }))
                .await;
            assert_eq!(status, 200, "cart: {body}");
        }
        let (status, body) = self
            .command(
                "POST",
                "/api/v1/checkout",
                Some(buyer),
                json!({
                    "shipping_address": { "name": "Ada Buyer", "line1": "1 Rue de la Paix", "city": "Paris", "postal_code": "75002", "country": "FR" },
                    "payment_token": "tok_visa"
                }),
            )
            .await;
        Self::accepted(status, &body, "checkout")
    }

    /// A carrier's tracking event on the order's delivery; the consistency token.
    pub async fn track(&self, carrier: &str, order: Uuid, status: &str, location: &str) -> String {
        let delivery = command::deliveries::handlers::delivery_id_for(order);
        let (code, body) = self
            .command(
                "POST",
                &format!("/api/v1/deliveries/{delivery}/tracking"),
                Some(carrier),
                json!({ "status": status, "location": location, "occurred_at": Utc::now().to_rfc3339() }),
            )
            .await;
        Self::accepted(code, &body, "tracking").1
    }

    // --- GraphQL -------------------------------------------------------------------------

    /// POST an operation; the HTTP status and the JSON body.
    pub async fn graphql_raw(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
        consistency: Option<&str>,
    ) -> (u16, Value) {
        let mut request =
            self.client.post(format!("{}/graphql", self.base)).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(consistency) = consistency {
            request = request.header("consistency-token", consistency);
        }
        let response = request.send().await.expect("graphql request");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("graphql answers JSON"))
    }

    /// POST an operation that must succeed; its `data`.
    #[track_caller]
    pub fn ok(response: (u16, Value)) -> Value {
        let (status, body) = response;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        Self::ok(self.graphql_raw(query, variables, token, None).await)
    }

    /// `graphql` with a consistency token.
    pub async fn graphql_after(&self, query: &str, variables: Value, token: Option<&str>, position: &str) -> Value {
        Self::ok(self.graphql_raw(query, variables, token, Some(position)).await)
    }

    /// Poll an operation until `done` holds on its data (read models are eventually
    /// consistent; this is for waiting on process managers).
    pub async fn eventually(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.graphql_raw(query, variables.clone(), token, None).await;
            if done(&body["data"]) {
                return body["data"].clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "condition not reached within 30 s; last answer {body}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Wait until every read model and the index have applied the whole log as it is now
    /// (at least up to every command this test sent).
    pub async fn caught_up(&self) -> LogPosition {
        let sent = *self.last_position.lock().unwrap();
        let head = self.store.head().await.expect("head").max(sent);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let positions =
                query::consistency::read_positions(self.api.read_models().pool()).await.expect("checkpoints");
            let behind: Vec<query::Source> = query::Source::ALL
                .into_iter()
                .filter(|s| match s {
                    query::Source::SearchIndex => self.index.checkpoint() < head,
                    other => positions.get(*other).is_none_or(|p| p < head),
                })
                .collect();
            if behind.is_empty() {
                return head;
            }
            assert!(tokio::time::Instant::now() < deadline, "{behind:?} did not reach {head} within 30 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The `extensions.code` of each error of a response.
pub fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>").to_owned()).collect())
        .unwrap_or_default()
}

/// Projector options for tests: quick standby retries and backoff.
pub fn fast_run_options() -> projections::RunOptions {
    projections::RunOptions {
        standby_retry: Duration::from_millis(100),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        ..projections::RunOptions::default()
    }
}
