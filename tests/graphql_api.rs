//! The `agora serve` binary end to end: the query role is wired in (GraphQL and GraphiQL on
//! `/graphql`, read-your-writes with the `Consistency-Token` of a command response, the
//! read-model lag in `/readyz`), on a throwaway PostgreSQL database.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[tokio::test]
async fn serve_answers_graphql_with_read_your_writes() {
    let deployment = common::Deployment::new();
    let served = deployment.start(&["serve", "--no-demo"], "index");
    let client = reqwest::Client::new();
    let url = |path: &str| served.url(path);

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

    // Metrics: commands by route and outcome, GraphQL operations, pools, projections.
    let refused =
        client.post(url("/api/v1/products")).bearer_auth(token).json(&json!({ "title": "" })).send().await.unwrap();
    assert_eq!(refused.status(), 422);
    let metrics = client.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    for expected in [
        r#"agora_commands_total{command="POST /api/v1/products",outcome="accepted"} 1"#,
        r#"agora_commands_total{command="POST /api/v1/products",outcome="validation_failed"} 1"#,
        r#"agora_db_pool_connections{pool="event_store",state="idle"}"#,
        r#"agora_db_pool_max_connections{pool="main"}"#,
        "agora_graphql_requests_total",
        "agora_projection_checkpoint",
        "agora_http_requests_total",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from /metrics:\n{metrics}");
    }
}
