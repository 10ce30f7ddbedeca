//! The operator tools of the `agora` binary against running processes: `seed` (through the
//! command path), `status --json`, `rebuild --all` while a query process keeps serving, and
//! `park` / `unpark`.

mod common;

use std::time::Duration;

use common::{Broker, Client, Deployment, eventually};
use serde_json::Value;

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn projection<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["projections"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_status_rebuild_and_park_work_beside_live_processes() {
    let deployment = Deployment::new();
    let seeded = stdout(&deployment.tool(&["seed", "--products", "40", "--accounts", "6", "--orders", "8"]));
    assert!(seeded.contains("40 products"), "{seeded}");
    assert!(seeded.contains("8 orders (0 refused"), "{seeded}");

    // Nothing projects yet: status shows the lag.
    let status = deployment.status();
    assert!(status["search"].is_null(), "{status}");

    // The projector publishes integration events to a broker of this test's own.
    let broker = Broker::start();
    let nats_url = broker.url();
    let _projector = deployment.start_with(
        &["project"],
        "unused",
        &[("NATS_URL", &nats_url), ("NATS_STREAM", "OPS"), ("NATS_SUBJECT_PREFIX", "ops")],
    );
    // The query process serves from INDEX_DIR "index", the directory the tools use.
    let query = deployment.start(&["query"], "index");
    let client = Client::new();
    let head = status["head"].as_str().unwrap().to_owned();
    let count = || async {
        let answer = client.graphql(&query, "{ products { totalCount } }", None, Some(&head)).await;
        answer["data"]["products"]["totalCount"].as_u64()
    };
    assert_eq!(count().await, Some(40));
    eventually(Duration::from_secs(30), "every projection and process manager catches up", || async {
        let status = deployment.status();
        let behind: Vec<&Value> =
            status["projections"].as_array().unwrap().iter().filter(|p| p["lag_events"] != 0).collect();
        // 5 read models, 3 process managers, the reservations reaper, the webhook outbox, the
        // notifier and the relay.
        if behind.is_empty() && status["projections"].as_array().unwrap().len() == 12 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    })
    .await;

    for name in ["integration_relay", "webhook_outbox", "notifications"] {
        assert_eq!(projection(&deployment.status(), name)["kind"], "reactor");
    }
    // Every product listing (and the orders' events) reached the broker, once.
    let js = async_nats::jetstream::new(async_nats::connect(nats_url.as_str()).await.expect("nats"));
    let mut stream = js.get_stream("OPS").await.expect("the relay created its stream");
    let published = stream.info().await.expect("stream info").state.messages;
    assert!(published >= 40 + 8, "{published} integration events published");

    // Rebuild everything while the projector and the query process run.
    let before = deployment.status();
    let rebuilt = stdout(&deployment.tool(&["rebuild", "--all"]));
    assert!(rebuilt.contains("rebuilt catalog"), "{rebuilt}");
    assert!(rebuilt.contains("rebuilt search"), "{rebuilt}");
    let after = deployment.status();
    for name in ["catalog", "accounts", "orders", "deliveries", "reviews"] {
        let (old, new) = (&projection(&before, name)["live_generation"], &projection(&after, name)["live_generation"]);
        assert_eq!(new.as_i64(), old.as_i64().map(|g| g + 1), "{name}: {old} -> {new}");
    }
    assert_eq!(after["search"]["products"], 40, "{after}");
    assert!(after["search"]["generation"].as_u64() >= Some(2), "{after}");
    // The query process switched to the new generations and still sees every product.
    eventually(Duration::from_secs(10), "the query process serves the rebuilt index", || async {
        match count().await {
            Some(40) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Unknown names and events are refused with a sentence, not a stack trace.
    let unknown = deployment.tool(&["rebuild", "nonsense"]);
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(message.contains("no projection named \"nonsense\"") && message.contains("catalog"), "{message}");
    let missing = deployment.tool(&["park", "reviews", &uuid::Uuid::nil().to_string(), "--reason", "test"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not in the log"));

    // Park a real event for one projection, see it in status, unpark it.
    let event_id: uuid::Uuid = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&deployment.database_url()).await.unwrap();
        sqlx::query_scalar("select event_id from event_store.event order by position limit 1")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let parked = stdout(&deployment.tool(&["park", "reviews", &event_id.to_string(), "--reason", "bad data"]));
    assert!(parked.contains("parked"), "{parked}");
    let status = deployment.status();
    assert_eq!(projection(&status, "reviews")["parked"][0]["reason"], "bad data", "{status}");
    let table = stdout(&deployment.tool(&["status"]));
    assert!(table.contains("1 parked"), "{table}");
    let unparked = stdout(&deployment.tool(&["unpark", "reviews", &event_id.to_string()]));
    assert!(unparked.contains("unparked"), "{unparked}");
    assert_eq!(projection(&deployment.status(), "reviews")["parked"], serde_json::json!([]));
}
