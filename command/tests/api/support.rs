//! A real command API on a random port over a throwaway PostgreSQL database, plus a small
//! driver that runs the process managers over the log (the projections crate owns the real
//! runtime; these tests check the reactions themselves).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use command::Context;
use command::accounts::handlers::{Registration, register};
use command::handling::Meta;
use command::payments::SandboxGateway;
use events::domain::accounts::Role;
use events::identity::TokenKeys;
use events::privacy::KeyVault;
use events::reactor::{ReactionError, Reactor};
use events::testing::TestDatabase;
use events::{EventStore, LogPosition, PgEventStore, PgStoreOptions};
use serde_json::{Value, json};
use uuid::Uuid;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: PgEventStore,
    pub ctx: Arc<Context>,
    pub gateway: Arc<SandboxGateway>,
    pub db: Arc<TestDatabase>,
    reactors: Vec<Arc<dyn Reactor>>,
    processed: tokio::sync::Mutex<(LogPosition, i64)>,
}

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> Uuid {
        self.body["id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .unwrap_or_else(|| panic!("no id in {}", self.body))
    }

    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected response: {}", self.body);
        self
    }

    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!((self.status, self.code()), (status, code), "unexpected response: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "a sentence for a person: {}", self.body);
        self
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(PgStoreOptions::default()).await
    }

    /// A store without atomic multi-stream appends (`MULTI_STREAM_APPENDS=off`): checkout
    /// takes the reserve path, with holds that expire after `hold`.
    pub async fn spawn_reserving(hold: Duration) -> TestApp {
        let options = PgStoreOptions { atomic_multi_stream: false, ..Default::default() };
        Self::spawn_configured(options, |ctx| ctx.checkout_hold = hold).await
    }

    pub async fn spawn_with(options: PgStoreOptions) -> TestApp {
        Self::spawn_configured(options, |_| {}).await
    }

    pub async fn spawn_configured(options: PgStoreOptions, configure: impl FnOnce(&mut Context)) -> TestApp {
        let db = TestDatabase::create_with_pool_size(12).await;
        events::postgres::migrate(db.pool()).await.expect("migrate");
        Self::start(Arc::new(db), options, configure).await
    }

    /// A second command process over the same database: its own store handle and its own
    /// cache of aggregate states, the same token keys (so the same tokens work on both).
    pub async fn beside(&self) -> TestApp {
        Self::start(self.db.clone(), PgStoreOptions::default(), |ctx| ctx.attempts = 30).await
    }

    async fn start(db: Arc<TestDatabase>, options: PgStoreOptions, configure: impl FnOnce(&mut Context)) -> TestApp {
        let store = PgEventStore::new(db.pool().clone(), options);
        let gateway = Arc::new(SandboxGateway::new());
        let tokens = TokenKeys::new(b"test secret, thirty-two bytes or more", chrono::Duration::hours(1));
        let mut ctx = Context::new(Arc::new(store.clone()), KeyVault::new(db.pool().clone()), tokens, gateway.clone());
        ctx.attempts = 30;
        configure(&mut ctx);
        let ctx = Arc::new(ctx);
        let (router, _) = command::http::router(ctx.clone());
        let router = router.fallback(command::http::not_found);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        let reactors = command::reactors(&ctx);
        TestApp {
            base,
            client: reqwest::Client::new(),
            store,
            ctx,
            gateway,
            db,
            reactors,
            processed: tokio::sync::Mutex::new((LogPosition::START, 0)),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Response { status, headers, body }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send("POST", path, token, Some(body), &[]).await
    }

    /// A raw request, for malformed bodies and headers.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base)).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response { status, headers, body }
    }

    /// Register over HTTP (buyers, vendors) or through the handler (carriers, admins), then
    /// log in. Returns the account id and its token.
    pub async fn account(&self, role: Role) -> (Uuid, String) {
        let email = format!("{}-{}@example.com", role.as_str(), Uuid::now_v7().simple());
        let password = "correct horse battery";
        match role {
            Role::Buyer | Role::Vendor => {
                self.post(
                    "/api/v1/accounts",
                    None,
                    json!({ "email": email, "password": password, "name": "Test Person", "role": role.as_str() }),
                )
                .await
                .expect(201);
            }
            Role::Carrier | Role::Admin => {
                let registration = Registration {
                    email: command::values::Email::parse(&email).expect("email"),
                    password: command::values::Password::parse(password).expect("password"),
                    name: command::values::PersonName::parse("Staff Member").expect("name"),
                    role,
                };
                register(&self.ctx, registration, &Meta::new(None, Uuid::now_v7()), None).await.expect("staff account");
            }
        }
        let session = self.post("/api/v1/sessions", None, json!({ "email": email, "password": password })).await;
        session.expect(200);
        let token = session.body["token"].as_str().expect("token").to_owned();
        let id = Uuid::parse_str(session.body["account_id"].as_str().expect("account id")).expect("uuid");
        (id, token)
    }

    /// A product listed by a new vendor.
    pub async fn product(&self, stock: i64, price_cents: i64) -> (Uuid, String) {
        let (_, vendor) = self.account(Role::Vendor).await;
        let id = self.list_product(&vendor, stock, price_cents).await;
        (id, vendor)
    }

    pub async fn list_product(&self, vendor: &str, stock: i64, price_cents: i64) -> Uuid {
        let listed = self
            .post(
                "/api/v1/products",
                Some(vendor),
                json!({
                    "title": "Oak standing desk", "description": "Solid oak, height adjustable.",
                    "category": "furniture", "brand": "Acme", "price_cents": price_cents,
                    "currency": "EUR", "stock": stock
                }),
            )
            .await;
        listed.expect(201);
        listed.id()
    }

    pub async fn add_to_cart(&self, buyer: &str, product: Uuid, quantity: i64) -> Response {
        self.send(
            "PUT",
            &format!("/api/v1/cart/items/{product}"),
            Some(buyer),
            Some(json!({ "quantity": quantity })),
            &[],
        )
        .await
    }

    pub fn checkout_body(token: &str) -> Value {
        json!({
            "shipping_address": { "name": "Ada Buyer", "line1": "1 Rue de la Paix", "city": "Paris", "postal_code": "75002", "country": "FR" },
            "payment_token": token
        })
    }

    pub async fn checkout(&self, buyer: &str, payment_token: &str) -> Response {
        let key = Uuid::now_v7().to_string();
        self.send(
            "POST",
            "/api/v1/checkout",
            Some(buyer),
            Some(Self::checkout_body(payment_token)),
            &[("idempotency-key", &key)],
        )
        .await
    }

    /// Run every process manager over the log until nothing new happens (each wanted
    /// event once, transient failures retried), as the projections runtime would.
    pub async fn run_processes(&self) {
        let mut guard = self.processed.lock().await;
        let (position, seen) = &mut *guard;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "process managers did not settle in 30 s");
            let events = self.store.read_all(*position, 500).await.expect("read_all");
            if events.is_empty() {
                // Settled once every committed event has been seen: log readers may lag behind
                // commits while other transactions run on the server (invariant 4).
                if *seen >= self.event_count().await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            *seen += events.len() as i64;
            for event in &events {
                for reactor in &self.reactors {
                    if !reactor.wants(&event.event_type) {
                        continue;
                    }
                    let mut attempts = 0;
                    loop {
                        match reactor.react(event).await {
                            Ok(()) => break,
                            Err(ReactionError::Retry(reason)) if attempts < 20 => {
                                attempts += 1;
                                tracing::debug!(%reason, "retrying reaction");
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(error) => {
                                panic!("{} failed on {} {}: {error}", reactor.name(), event.event_type, event.stream_id)
                            }
                        }
                    }
                }
                *position = event.position;
            }
        }
    }

    /// Every event of a stream, decoded.
    pub async fn stream<E: events::DomainEvent>(&self, stream: &events::StreamId) -> Vec<E> {
        self.store
            .read_stream(stream, 1)
            .await
            .expect("read")
            .iter()
            .map(|e| e.decode::<E>().expect("decode"))
            .collect()
    }

    /// The distinct commit transactions of every event a checkout caused (its order's
    /// correlation id): 1 when it was one atomic append, one per step otherwise.
    pub async fn checkout_transactions(&self, order_id: Uuid) -> std::collections::HashSet<i64> {
        sqlx::query_scalar(
            "select transaction_id from event_store.event where correlation_id = (select correlation_id from event_store.event where stream_id = $1)",
        )
        .bind(format!("order-{order_id}"))
        .fetch_all(self.db.pool())
        .await
        .expect("checkout transactions")
        .into_iter()
        .collect()
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from event_store.event").fetch_one(self.db.pool()).await.expect("count")
    }
}

/// For each `async fn name(app: TestApp)`, a module `name` with two tests: `atomic` (the
/// default store) and `in_steps` (no atomic multi-stream appends, 1 s checkout holds).
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn atomic() {
                    super::$name($crate::support::TestApp::spawn().await).await;
                }

                #[tokio::test]
                async fn in_steps() {
                    let app = $crate::support::TestApp::spawn_reserving(std::time::Duration::from_secs(1)).await;
                    super::$name(app).await;
                }
            }
        )+
    };
}
pub(crate) use on_both_stores;
