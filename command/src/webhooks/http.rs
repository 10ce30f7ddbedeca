//! `POST /api/v1/webhooks`, `POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/replay`.

use axum::extract::State;
use axum::response::Response;
use events::domain::accounts::Role;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::handlers;
use crate::auth::require;
use crate::handling::Meta;
use crate::http::extract::{Auth, Input, PathIds, RequestId};
use crate::http::{ApiError, AppState, CommandResponse, Problem, respond};
use crate::values::{EventTypes, Validator, WebhookSecret, WebhookUrl};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register_webhook)).routes(routes!(replay_delivery))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Absolute http(s) URL that receives `POST`s of integration events.
    pub url: String,
    /// Key of the `Agora-Signature` HMAC (16 to 256 visible ASCII characters). Not readable
    /// afterwards.
    pub secret: String,
    /// Integration event types to receive, e.g. `["order.placed", "delivery.status_changed"]`.
    pub event_types: Vec<String>,
}

/// Register a webhook endpoint (admins). Every later integration event of the listed types is
/// POSTed to it, signed: `Agora-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">`; non-2xx answers are retried with exponential backoff.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = CommandResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    input: Input<WebhookRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Admin])?;
    let mut v = Validator::default();
    let url = v.check("url", WebhookUrl::parse(&input.value.url));
    let secret = v.check("secret", WebhookSecret::parse(&input.value.secret));
    let event_types = v.check("event_types", EventTypes::parse(&input.value.event_types));
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let (Some(url), Some(secret), Some(event_types)) = (url, secret, event_types) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::register(&state.ctx, caller, url, event_types, secret, &meta).await?, false))
}

/// Attempt a delivery again (admins): a fresh round of attempts, starting now. The answer's
/// `id` is the delivery id; its state shows in GraphQL (`webhookDelivery`).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Webhook id"),
           ("delivery_id" = uuid::Uuid, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "Queued again", body = CommandResponse),
        (status = 400, description = "`invalid_id`", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay_delivery(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathIds(webhook_id, delivery_id): PathIds,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Admin])?;
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::replay(&state.ctx, caller, webhook_id, delivery_id, &meta).await?, false))
}
