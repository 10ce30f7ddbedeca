//! Running the real `agora` binary against a throwaway PostgreSQL database.
#![allow(dead_code)] // each test binary uses a part of it

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

pub const JWT_SECRET: &str = "an end-to-end test secret of enough bytes";

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database name of its own (created by the first `agora` that connects) and a scratch
/// directory; both removed on drop.
pub struct Deployment {
    pub database: String,
    pub dir: PathBuf,
}

impl Deployment {
    pub fn new() -> Self {
        let database = format!("agora_e2e_{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&database);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self { database, dir }
    }

    pub fn database_url(&self) -> String {
        format!("{}/{}", server_url(), self.database)
    }

    fn command(&self, args: &[&str], index: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
        command
            .args(args)
            .env("DATABASE_URL", self.database_url())
            .env("INDEX_DIR", self.dir.join(index))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "warn")
            .env_remove("READ_DATABASE_URL")
            // Outside services only where a test asks for them.
            .env_remove("NATS_URL")
            .env_remove("SMTP_URL");
        command
    }

    /// Run a tool to completion (`agora migrate`, `agora status --json`, ...).
    pub fn tool(&self, args: &[&str]) -> Output {
        self.command(args, "index").output().expect("run the agora binary")
    }

    /// `tool` with extra environment variables.
    pub fn tool_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, "index").envs(env.iter().copied()).output().expect("run the agora binary")
    }

    /// Start a long-running role (`serve --no-demo`, `command`, `query`, `project`); `index`
    /// names its INDEX_DIR under the scratch directory.
    pub fn start(&self, args: &[&str], index: &str) -> Agora {
        self.start_with(args, index, &[])
    }

    /// `start` with extra environment variables.
    pub fn start_with(&self, args: &[&str], index: &str, env: &[(&str, &str)]) -> Agora {
        let mut command = self.command(args, index);
        command.envs(env.iter().copied());
        let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("run agora");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("is running on ") {
                    let _ = tx.send(line[at + "is running on ".len()..].trim().to_owned());
                } else if std::env::var_os("AGORA_TEST_LOGS").is_some() {
                    eprintln!("{line}");
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(60)).expect("agora starts within 60 s");
        Agora { child, base }
    }

    /// `agora status --json`.
    pub fn status(&self) -> Value {
        let output = self.tool(&["status", "--json"]);
        assert!(output.status.success(), "agora status: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("status is JSON")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let name = self.database.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{}/postgres", server_url())).await {
                    let sql = format!("drop database if exists {name} with (force)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

/// A running `agora` process, killed on drop.
pub struct Agora {
    pub child: Child,
    pub base: String,
}

impl Agora {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs, connections just drop.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "agora did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agora {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client of the command API and GraphQL.
pub struct Client {
    pub http: reqwest::Client,
}

impl Client {
    pub fn new() -> Self {
        Self { http: reqwest::Client::new() }
    }

    /// Register an account and log in: its token.
    pub async fn account(&self, agora: &Agora, role: &str, name: &str) -> String {
        let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
        let registered = self
            .http
            .post(agora.url("/api/v1/accounts"))
            .json(&json!({ "email": email, "password": "correct horse battery", "name": name, "role": role }))
            .send()
            .await
            .expect("register");
        assert_eq!(registered.status(), 201);
        let session: Value = self
            .http
            .post(agora.url("/api/v1/sessions"))
            .json(&json!({ "email": email, "password": "correct horse battery" }))
            .send()
            .await
            .expect("log in")
            .json()
            .await
            .expect("session JSON");
        session["token"].as_str().expect("token").to_owned()
    }

    /// POST a command; (status, body, consistency token).
    pub async fn post(&self, agora: &Agora, path: &str, token: &str, body: Value) -> (u16, Value, String) {
        let response = self
            .http
            .post(agora.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await
            .expect("command");
        let status = response.status().as_u16();
        let consistency =
            response.headers().get("consistency-token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (status, response.json().await.unwrap_or(Value::Null), consistency)
    }

    /// List a product: its id and the consistency token.
    pub async fn list(&self, agora: &Agora, token: &str, title: &str, stock: i64) -> (String, String) {
        let (status, body, consistency) = self
            .post(
                agora,
                "/api/v1/products",
                token,
                json!({ "title": title, "description": "Hand made, sold by the piece.", "category": "ceramics",
                        "brand": "Kiln & Co", "price_cents": 6_400, "currency": "EUR", "stock": stock }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["id"].as_str().expect("product id").to_owned(), consistency)
    }

    /// Put one product in the cart and check out with a sandbox card: the order id and the
    /// consistency token.
    pub async fn buy(&self, agora: &Agora, token: &str, product: &str, quantity: u32) -> (String, String) {
        let cart = self
            .http
            .put(agora.url(&format!("/api/v1/cart/items/{product}")))
            .bearer_auth(token)
            .json(&json!({ "quantity": quantity }))
            .send()
            .await
            .expect("cart");
        assert_eq!(cart.status(), 200);
        let body = json!({
            "shipping_address": { "name": "Ada Buyer", "line1": "1 Rue de la Paix", "city": "Paris",
                                  "postal_code": "75002", "country": "FR" },
            "payment_token": "tok_visa"
        });
        let (status, body, consistency) = self.post(agora, "/api/v1/checkout", token, body).await;
        assert_eq!(status, 201, "{body}");
        (body["id"].as_str().expect("order id").to_owned(), consistency)
    }

    /// A GraphQL operation; the whole answer (`data` and `errors`).
    pub async fn graphql(&self, agora: &Agora, query: &str, token: Option<&str>, consistency: Option<&str>) -> Value {
        let mut request = self.http.post(agora.url("/graphql")).json(&json!({ "query": query }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(consistency) = consistency {
            request = request.header("consistency-token", consistency);
        }
        request.send().await.expect("graphql").json().await.expect("graphql JSON")
    }
}

/// Poll `check` until it holds, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) if Instant::now() >= deadline => panic!("{what}: not within {within:?}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A `nats-server` with JetStream on a free port and its own storage, stopped on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (install the nats-server package)");
        Broker { child, port, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
