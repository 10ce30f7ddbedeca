//! Operations endpoints shared by every role (`/healthz`, `/readyz`, `/metrics`) and the HTTP
//! layers around everything: request ids, tracing spans, request metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// One readiness check: a name and an async probe that says what is wrong, if anything.
pub type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

#[derive(Clone)]
pub struct Ops {
    pub metrics: PrometheusHandle,
    pub checks: Vec<(&'static str, Check)>,
    /// Connection pools, sampled on every scrape.
    pub pools: Vec<(&'static str, PoolGauge)>,
}

/// Reads a pool's usage: connections in use, idle, at most.
pub type PoolGauge = Arc<dyn Fn() -> events::postgres::PoolUsage + Send + Sync>;

fn render(ops: &Ops) -> String {
    for (pool, usage) in &ops.pools {
        let usage = usage();
        metrics::gauge!("agora_db_pool_connections", "pool" => *pool, "state" => "in_use").set(usage.in_use as f64);
        metrics::gauge!("agora_db_pool_connections", "pool" => *pool, "state" => "idle").set(usage.idle as f64);
        metrics::gauge!("agora_db_pool_max_connections", "pool" => *pool).set(usage.max as f64);
    }
    ops.metrics.render()
}

pub fn routes(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(|State(ops): State<Ops>| async move { render(&ops) }))
        .with_state(ops)
}

async fn ready(State(ops): State<Ops>) -> Response {
    let mut failing = serde_json::Map::new();
    for (name, check) in &ops.checks {
        let outcome = tokio::time::timeout(Duration::from_secs(2), check()).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                failing.insert((*name).into(), reason.into());
            }
            Err(_) => {
                failing.insert((*name).into(), "no answer within 2 s".into());
            }
        }
    }
    if failing.is_empty() {
        (StatusCode::OK, axum::Json(json!({ "status": "ready" }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "not ready", "failing": failing })))
            .into_response()
    }
}

/// Request id (accepted from `X-Request-Id` or generated, echoed back), a tracing span per
/// request with method, matched route and request id, and request count / latency metrics
/// by route and status.
pub fn layers(router: Router) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    router
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request.extensions().get::<MatchedPath>().map_or(request.uri().path(), |p| p.as_str());
            let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", method = %request.method(), route, request_id)
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("agora_http_requests_total", &labels).increment(1);
    metrics::histogram!("agora_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}
