//! The JetStream relay: broker down first (nothing lost, lag and failure visible), then up
//! (everything arrives once, in log order), then a replay from the start (de-duplicated by
//! the broker).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use events::integration::IntegrationEvent;
use projections::integration::{NatsRelay, RelayConfig, in_order};
use projections::{RunOptions, run_reactor};
use tokio::sync::watch;

use super::market::{Market, eventually};
use super::support::{Env, checkpoint};

/// A `nats-server` with JetStream on its own port and storage, stopped when dropped.
struct Broker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start(port: u16) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (install the nats-server package)");
        Broker { child, _dir: dir }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn options() -> RunOptions {
    in_order(RunOptions {
        batch_size: 64,
        standby_retry: Duration::from_millis(200),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..RunOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_waits_for_the_broker_then_publishes_everything_once_in_order() {
    let env = Env::new().await;
    let mut market = Market::new(&env.store, &env.vault);
    let expected = market.story().await;

    let port = free_port();
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let mut config = RelayConfig::new(format!("nats://127.0.0.1:{port}"));
    config.stream = format!("T{}", &suffix[20..]);
    config.subject_prefix = format!("t{}", &suffix[20..]);
    config.timeout = Duration::from_secs(1);
    let (stop, shutdown) = watch::channel(false);
    let relay = Arc::new(NatsRelay::new(config.clone()));
    let task = tokio::spawn(run_reactor(env.pool().clone(), env.store(), relay, options(), shutdown));

    // Nothing listens: the relay retries, stays at the start, and says why.
    let failure = eventually(Duration::from_secs(20), "a recorded failure", || async {
        let status = projections::status(env.pool(), &env.store, &[]).await.expect("status");
        let relay = status.projections.into_iter().find(|p| p.name == "integration_relay")?;
        relay.error.filter(|e| e.attempts >= 2).map(|e| (e, relay.lag_events, relay.kind))
    })
    .await;
    assert!(failure.0.error.contains("cannot connect to NATS"), "{}", failure.0.error);
    assert!(failure.1 > 0, "lag is visible");
    assert_eq!(failure.2, "reactor");
    assert!(checkpoint(env.pool(), "integration_relay").await < Some(market.last));

    // The broker comes up on that port: everything arrives.
    let _broker = Broker::start(port);
    let head = market.last;
    eventually(Duration::from_secs(60), "the relay catches up", || async {
        (checkpoint(env.pool(), "integration_relay").await >= Some(head)).then_some(())
    })
    .await;
    let status = projections::status(env.pool(), &env.store, &[]).await.expect("status");
    let relay_status = status.projections.iter().find(|p| p.name == "integration_relay").expect("relay in status");
    assert!(relay_status.error.is_none(), "failure cleared once past it");
    assert_eq!(relay_status.lag_events, 0);

    let client = async_nats::connect(format!("127.0.0.1:{port}")).await.expect("connect");
    let js = jetstream::new(client);
    let stream = js.get_stream(&config.stream).await.expect("the relay created the stream");
    let messages = read_all(&stream).await;
    let types: Vec<String> = messages.iter().map(|(_, e)| e.event_type.clone()).collect();
    assert_eq!(types, expected, "every integration event, in log order, internal ones left out");
    let ids: HashSet<_> = messages.iter().map(|(_, e)| e.id).collect();
    assert_eq!(ids.len(), messages.len(), "no duplicates");
    for (subject, event) in &messages {
        assert_eq!(subject, &format!("{}.{}", config.subject_prefix, event.event_type));
    }
    let placed = messages.iter().find(|(_, e)| e.event_type == "order.placed").expect("order placed");
    let json = placed.1.to_json();
    assert!(!json.contains("Secret Lane") && !json.contains("shipping"), "no personal data: {json}");

    // Replay from the start (a lost checkpoint): the broker drops every re-published message
    // by its Nats-Msg-Id; only the new event is added.
    sqlx::query(
        "update projection.checkpoint set commit_position = 0, prepare_position = 0 where projection = 'integration_relay'",
    )
    .execute(env.pool())
    .await
    .expect("reset");
    market.reprice(uuid::Uuid::now_v7(), 100).await;
    market.visible().await;
    let head = market.last;
    eventually(Duration::from_secs(60), "the relay catches up again", || async {
        (checkpoint(env.pool(), "integration_relay").await >= Some(head)).then_some(())
    })
    .await;
    let again = read_all(&stream).await;
    assert_eq!(again.len(), expected.len() + 1, "re-published events were de-duplicated");
    assert_eq!(again.last().map(|(_, e)| e.event_type.as_str()), Some("product.price_changed"));

    stop.send(true).expect("stop");
    task.await.expect("join").expect("relay");
}

async fn read_all(stream: &jetstream::stream::Stream) -> Vec<(String, IntegrationEvent)> {
    let mut info = stream.clone();
    let count = info.info().await.expect("stream info").state.messages;
    let mut out = Vec::new();
    for seq in 1..=count {
        let message = stream.get_raw_message(seq).await.expect("message");
        let event: IntegrationEvent = serde_json::from_slice(&message.payload).expect("integration event JSON");
        let id = message.headers.get("Nats-Msg-Id").map(|v| v.to_string());
        assert_eq!(id, Some(event.id.to_string()), "message id is the event id");
        out.push((message.subject.to_string(), event));
    }
    out
}
