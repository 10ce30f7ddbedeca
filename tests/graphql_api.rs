//! The `agora serve` binary end to end: the query role is wired in (GraphQL and GraphiQL on
//! `/graphql`, read-your-writes with the `Consistency-Token` of a command response, the
//! read-model lag in `/readyz`), on a throwaway PostgreSQL database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of its own, dropped at the end; the running binary, killed at the end.
struct Served {
    child: Child,
    base: String,
    database: String,
    index_dir: std::path::PathBuf,
}

impl Served {
    async fn start() -> Served {
        let database = format!("agora_e2e_{}", uuid::Uuid::new_v4().simple());
        let index_dir = std::env::temp_dir().join(&database);
        let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["serve", "--no-demo"])
            .env("DATABASE_URL", format!("{}/{database}", server_url()))
            .env("INDEX_DIR", &index_dir)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("JWT_SECRET", "an end-to-end test secret of enough bytes")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run the agora binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("is running on ") {
                    let _ = tx.send(line[at + "is running on ".len()..].trim().to_owned());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(60)).expect("agora serve starts within 60 s");
        Served { child, base, database, index_dir }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.index_dir);
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

#[tokio::test]
async fn serve_answers_graphql_with_read_your_writes() {
    let served = Served::start().await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", served.base);

    let graphiql = client.get(url("/graphql")).send().await.unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await.unwrap().contains("graphiql"));

    let email = format!("vendor-{}@example.com", uuid::Uuid::now_v7().simple());
    let registered = client
        .post(url("/api/v1/accounts"))
        .json(&json!({ "email": email, "password": "correct horse battery", "name": "Kiln & Co", "role": "vendor" }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let session: Value = client
        .post(url("/api/v1/sessions"))
        .json(&json!({ "email": email, "password": "correct horse battery" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().expect("token");
    let listed = client
        .post(url("/api/v1/products"))
        .bearer_auth(token)
        .json(&json!({ "title": "Raku tea bowl", "description": "Hand thrown, smoke fired.", "category": "ceramics",
                       "brand": "Kiln & Co", "price_cents": 6_400, "currency": "EUR", "stock": 4 }))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 201);
    let consistency = listed.headers()["consistency-token"].to_str().unwrap().to_owned();

    let answer: Value = client
        .post(url("/graphql"))
        .header("consistency-token", &consistency)
        .bearer_auth(token)
        .json(
            &json!({ "query": "{ products(query: \"raku bowl\") { totalCount edges { node { title vendor { name } } } }
                                  me { name role } categories { name productCount } }" }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(answer["data"]["products"]["totalCount"], 1);
    assert_eq!(answer["data"]["products"]["edges"][0]["node"]["vendor"]["name"], "Kiln & Co");
    assert_eq!(answer["data"]["me"], json!({ "name": "Kiln & Co", "role": "VENDOR" }));
    assert_eq!(answer["data"]["categories"], json!([{ "name": "ceramics", "productCount": 1 }]));

    // Ready once every read model and the index keep up with the log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client.get(url("/readyz")).send().await.unwrap();
        if ready.status() == 200 {
            break;
        }
        let body = ready.text().await.unwrap_or_default();
        assert!(Instant::now() < deadline, "not ready within 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
