//! The command API: the routes of every bounded context merged into one axum router, with
//! problem+json errors, idempotency keys, consistency tokens and the OpenAPI description.

pub mod extract;
pub mod idempotency;
pub mod problem;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::handling::{Accepted, Context};
pub use problem::{ApiError, Problem};

/// Largest request body accepted (bigger ones get 413 `payload_too_large`).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<Context>,
}

/// The response of every accepted command: the id of what it created or changed, and the
/// consistency token to send to the query side for read-your-writes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandResponse {
    pub id: String,
    /// Consistency token: also in the `Consistency-Token` response header.
    pub position: String,
}

/// `Accepted` as a response: status, JSON body with `position`, `Consistency-Token` header.
pub fn respond(accepted: Accepted, replayed: bool) -> Response {
    let token = accepted.position.to_string();
    let mut body = accepted.body;
    body.insert("position".into(), Value::String(token.clone()));
    let status = StatusCode::from_u16(accepted.status).unwrap_or(StatusCode::OK);
    let mut response = (status, axum::Json(Value::Object(body))).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&token) {
        headers.insert("consistency-token", value);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Every route of the command API, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(base_openapi())
        .merge(crate::accounts::http::routes())
        .merge(crate::catalog::http::routes())
        .merge(crate::orders::http::routes())
        .merge(crate::deliveries::http::routes())
        .merge(crate::reviews::http::routes())
        .merge(crate::webhooks::http::routes())
}

/// The command API as an axum router (state applied), plus the OpenAPI document it serves.
pub fn router(ctx: Arc<Context>) -> (Router, OpenApi) {
    let (router, openapi) = routes().split_for_parts();
    let spec = Arc::new(openapi.clone());
    let router = router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        )
        .layer(axum::middleware::from_fn(count_commands))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .with_state(AppState { ctx });
    (router, openapi)
}

/// `agora_commands_total{command, outcome}` and `agora_command_duration_seconds{command}`:
/// the command is the route (`POST /api/v1/checkout`), the outcome `accepted`, `replayed`
/// (an idempotent replay) or the problem code of a refusal (`out_of_stock`, `conflict`, ...).
async fn count_commands(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(request).await;
    }
    let command = format!("{method} {}", matched.as_ref().map(|m| m.as_str()).unwrap_or("unmatched"));
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let outcome = match response.extensions().get::<problem::ProblemCode>() {
        Some(code) => code.0,
        None if response.headers().contains_key("idempotent-replayed") => "replayed",
        None if response.status().is_success() => "accepted",
        None => "error",
    };
    metrics::counter!("agora_commands_total", "command" => command.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("agora_command_duration_seconds", "command" => command).record(started.elapsed().as_secs_f64());
    response
}

/// A problem+json 404 for paths that do not exist (mounted as the fallback by the binary).
pub async fn not_found() -> ApiError {
    ApiError::not_found("there is nothing at this path; see /api/v1/openapi.json")
}

fn base_openapi() -> OpenApi {
    let mut openapi = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Agora command API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Every change to the marketplace. Writes answer with an id and a consistency token \
                     (`position`, also the `Consistency-Token` header); errors are application/problem+json \
                     with a stable `code`. POSTs accept an `Idempotency-Key` header (required for checkout).",
                ))
                .build(),
        )
        .build();
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    openapi
}
