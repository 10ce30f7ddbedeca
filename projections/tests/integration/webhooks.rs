//! Webhooks against a real HTTP receiver on loopback: signatures verify, 500s are retried
//! with the attempts recorded in order, a failed delivery can be replayed, and a hanging
//! endpoint does not hold back another.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use events::integration::IntegrationEvent;
use hmac::{KeyInit, Mac};
use projections::integration::{WebhookOptions, WebhookOutbox, in_order, run_webhook_dispatcher};
use projections::{RunOptions, run_reactor};
use tokio::sync::watch;
use uuid::Uuid;

use super::market::{Market, eventually};
use super::support::Env;

#[derive(Default)]
struct Receiver {
    /// (path, headers, body) of every request answered.
    received: Mutex<Vec<(String, HeaderMap, String)>>,
    flaky_calls: AtomicUsize,
    down: AtomicBool,
}

async fn ok(State(r): State<Arc<Receiver>>, Path(name): Path<String>, headers: HeaderMap, body: String) -> StatusCode {
    r.received.lock().unwrap().push((name, headers, body));
    StatusCode::NO_CONTENT
}

async fn flaky(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    if r.flaky_calls.fetch_add(1, Ordering::SeqCst) < 2 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.received.lock().unwrap().push(("flaky".into(), headers, body));
    StatusCode::OK
}

async fn down(State(r): State<Arc<Receiver>>) -> StatusCode {
    if r.down.load(Ordering::SeqCst) { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

async fn hang() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(600)).await;
    StatusCode::OK
}

async fn start_receiver() -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver { down: AtomicBool::new(true), ..Default::default() });
    let app = Router::new()
        .route("/ok/{name}", post(ok))
        .route("/flaky", post(flaky))
        .route("/down", post(down))
        .route("/hang", post(hang))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, receiver)
}

/// Check `Agora-Signature: t=<ts>,v1=<hex>` the way a receiver would, independently of
/// Agora's code.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let Some(header) = headers.get("agora-signature").and_then(|v| v.to_str().ok()) else { return false };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == v1 && (chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap_or(0)).abs() < 300
}

async fn attempts(pool: &sqlx::PgPool, webhook: Uuid) -> Vec<(i32, Option<i32>)> {
    sqlx::query_as(
        "select a.attempt, a.status_code from integration.webhook_attempt a \
         join integration.webhook_delivery d using (delivery_id) where d.webhook_id = $1 order by a.attempt",
    )
    .bind(webhook)
    .fetch_all(pool)
    .await
    .expect("attempts")
}

async fn delivery(pool: &sqlx::PgPool, webhook: Uuid) -> (Uuid, String, i32) {
    sqlx::query_as("select delivery_id, state, attempts from integration.webhook_delivery where webhook_id = $1")
        .bind(webhook)
        .fetch_one(pool)
        .await
        .expect("one delivery")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_recorded_replayable_and_isolated() {
    let env = Env::new().await;
    let (base, receiver) = start_receiver().await;
    let mut market = Market::new(&env.store, &env.vault);
    let all: Vec<&str> = events::integration::EVENT_TYPES.to_vec();
    let hanging = market.webhook(&format!("{base}/hang"), "hang-secret", &all).await;
    let _ok = market.webhook(&format!("{base}/ok/a"), "ok-secret", &all).await;
    let flaky = market.webhook(&format!("{base}/flaky"), "flaky-secret", &["order.placed"]).await;
    let failing = market.webhook(&format!("{base}/down"), "down-secret", &["order.confirmed"]).await;
    // https is spoken (rustls): against this plain-HTTP receiver the handshake fails.
    let tls = market
        .webhook(&format!("{}/ok/tls", base.replace("http://", "https://")), "tls-secret", &["review.approved"])
        .await;
    let expected = market.story().await;

    let (stop, shutdown) = watch::channel(false);
    let run = in_order(RunOptions {
        standby_retry: Duration::from_millis(200),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..RunOptions::default()
    });
    let outbox = Arc::new(WebhookOutbox::new(env.pool().clone()));
    let reactor = tokio::spawn(run_reactor(env.pool().clone(), env.store(), outbox, run, shutdown.clone()));
    let options = WebhookOptions {
        max_attempts: 3,
        backoff: Duration::from_millis(100),
        timeout: Duration::from_secs(120),
        concurrency: 16,
        per_endpoint: 2,
        poll: Duration::from_millis(50),
    };
    let dispatcher =
        tokio::spawn(run_webhook_dispatcher(env.pool().clone(), env.vault.clone(), options, shutdown.clone()));

    // Every event reaches the good endpoint while the hanging one holds its requests open.
    let received = eventually(Duration::from_secs(30), "all deliveries to /ok", || async {
        let got: Vec<_> = receiver.received.lock().unwrap().iter().filter(|r| r.0 == "a").cloned().collect();
        (got.len() >= expected.len()).then_some(got)
    })
    .await;
    assert_eq!(received.len(), expected.len(), "each event delivered once");
    let mut types: Vec<String> = Vec::new();
    for (_, headers, body) in &received {
        assert!(verify("ok-secret", headers, body), "signature verifies: {headers:?}");
        assert!(!verify("another-secret", headers, body), "and only with the endpoint's secret");
        let event: IntegrationEvent = serde_json::from_str(body).expect("integration event");
        assert_eq!(headers["agora-event-id"].to_str().unwrap(), event.id.to_string());
        assert_eq!(headers["agora-event-type"].to_str().unwrap(), event.event_type);
        types.push(event.event_type);
    }
    types.sort();
    let mut want: Vec<String> = expected.iter().map(|t| (*t).to_owned()).collect();
    want.sort();
    assert_eq!(types, want);
    let hung: i64 = sqlx::query_scalar(
        "select count(*) from integration.webhook_delivery where webhook_id = $1 and state = 'pending'",
    )
    .bind(hanging)
    .fetch_one(env.pool())
    .await
    .unwrap();
    assert_eq!(hung, expected.len() as i64, "the hanging endpoint's deliveries are still waiting");

    // 500, 500, then 200: three attempts recorded in order, delivered once.
    eventually(Duration::from_secs(20), "the flaky endpoint gets its delivery", || async {
        (delivery(env.pool(), flaky).await.1 == "delivered").then_some(())
    })
    .await;
    assert_eq!(attempts(env.pool(), flaky).await, vec![(1, Some(500)), (2, Some(500)), (3, Some(200))]);
    let flaky_got = receiver.received.lock().unwrap().iter().filter(|r| r.0 == "flaky").count();
    assert_eq!(flaky_got, 1);

    // Always 500: failed after max_attempts; replayed once the endpoint works again.
    let (failed_id, state, tries) = eventually(Duration::from_secs(20), "the failing delivery gives up", || async {
        let d = delivery(env.pool(), failing).await;
        (d.1 == "failed").then_some(d)
    })
    .await;
    assert_eq!((state.as_str(), tries), ("failed", 3));
    receiver.down.store(false, Ordering::SeqCst);
    market.replay(failing, failed_id).await;
    market.visible().await;
    eventually(Duration::from_secs(20), "the replayed delivery succeeds", || async {
        (delivery(env.pool(), failing).await.1 == "delivered").then_some(())
    })
    .await;
    assert_eq!(
        attempts(env.pool(), failing).await,
        vec![(1, Some(500)), (2, Some(500)), (3, Some(500)), (4, Some(200))]
    );

    let tls_error = eventually(Duration::from_secs(20), "the https endpoint is attempted", || async {
        sqlx::query_scalar::<_, Option<String>>(
            "select a.error from integration.webhook_attempt a join integration.webhook_delivery d using (delivery_id) \
             where d.webhook_id = $1 and a.attempt = 1",
        )
        .bind(tls)
        .fetch_optional(env.pool())
        .await
        .expect("attempts")
        .flatten()
    })
    .await;
    assert!(tls_error.contains("TLS handshake"), "a TLS handshake was tried: {tls_error}");

    stop.send(true).unwrap();
    reactor.await.unwrap().unwrap();
    // The dispatcher would wait for the hanging requests' timeout: stop it here.
    dispatcher.abort();
}

/// An https endpoint whose certificate no public authority signed is refused: TLS is spoken
/// and the certificate is verified (against the webpki roots), not merely accepted.
#[tokio::test]
async fn https_endpoints_must_present_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string(), "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    eventually(Duration::from_secs(10), "the TLS server listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
    let client = projections::integration::http::WebhookClient::new(Duration::from_secs(5));
    let error = client.post(&format!("https://127.0.0.1:{port}/hook"), &[], "{}".into()).await.unwrap_err();
    let _ = server.kill();
    let _ = server.wait();
    let text = error.to_string();
    assert!(text.contains("TLS handshake") && text.contains("invalid peer certificate"), "{text}");
}
