//! `POST /api/v1/deliveries/{id}/tracking`.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use events::domain::accounts::Role;
use events::domain::deliveries::TrackingStatus;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::handlers::{self, Tracking};
use crate::auth::require;
use crate::handling::Meta;
use crate::http::extract::{Auth, IdempotencyKey, Input, PathId, RequestId};
use crate::http::{ApiError, AppState, CommandResponse, Problem, idempotency};
use crate::values::{Location, Validator};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(track))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingRequest {
    /// `picked_up`, `in_transit`, `out_for_delivery`, `delivered`, `failed_attempt` or `returned`.
    pub status: String,
    pub location: String,
    /// When it happened (RFC 3339); not in the future.
    pub occurred_at: String,
}

/// Record a tracking event (carriers). The first carrier to report takes the delivery; no
/// updates after `delivered` or `returned`.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/tracking", tag = "deliveries", request_body = TrackingRequest,
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Delivery id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 200, description = "Recorded", body = CommandResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`delivery_finished`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn track(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(delivery_id): PathId,
    key: IdempotencyKey,
    input: Input<TrackingRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Carrier, Role::Admin])?;
    let now = state.ctx.now();
    let mut v = Validator::default();
    let status = v.check(
        "status",
        TrackingStatus::parse(&input.value.status).ok_or_else(|| {
            "must be one of picked_up, in_transit, out_for_delivery, delivered, failed_attempt, returned".to_owned()
        }),
    );
    let location = v.check("location", Location::parse(&input.value.location));
    let occurred_at = v.check(
        "occurred_at",
        DateTime::parse_from_rfc3339(input.value.occurred_at.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "must be a date-time such as 2026-11-22T10:00:00Z".to_owned())
            .and_then(
                |t| if t > now + Duration::minutes(5) { Err("must not be in the future".to_owned()) } else { Ok(t) },
            ),
    );
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let (Some(status), Some(location), Some(occurred_at)) = (status, location, occurred_at) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let meta = Meta::new(Some(caller), request_id);
    let route = format!("POST /api/v1/deliveries/{delivery_id}/tracking");
    let scope = idempotency::scope(key.0, Some(&caller), &route, &input.digest);
    let tracking = Tracking { status, location, occurred_at };
    crate::idempotent!(&state, scope, |idem| handlers::track(&state.ctx, caller, delivery_id, tracking, &meta, idem)
        .await)
}
