//! `POST /api/v1/products/{id}/reviews`, `POST /api/v1/reviews/{id}/moderation`.

use axum::extract::State;
use axum::response::Response;
use events::domain::accounts::Role;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::decider::Decision;
use super::handlers;
use crate::auth::require;
use crate::handling::Meta;
use crate::http::extract::{Auth, IdempotencyKey, Input, PathId, RequestId};
use crate::http::{ApiError, AppState, CommandResponse, Problem, idempotency, respond};
use crate::values::{Rating, Reason, ReviewText, Validator};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(submit_review)).routes(routes!(moderate_review))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// 1 to 5.
    pub rating: i64,
    pub text: String,
}

/// Review a product I received (buyers; one review per product; visible once approved).
#[utoipa::path(post, path = "/api/v1/products/{id}/reviews", tag = "reviews", request_body = ReviewRequest,
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 201, description = "Submitted for moderation", body = CommandResponse),
        (status = 403, description = "`not_purchased`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_reviewed`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn submit_review(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(product_id): PathId,
    key: IdempotencyKey,
    input: Input<ReviewRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Buyer])?;
    let mut v = Validator::default();
    let rating = v.check("rating", Rating::parse(input.value.rating));
    let text = v.check("text", ReviewText::parse(&input.value.text));
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let (Some(rating), Some(text)) = (rating, text) else { return Err(ApiError::field("body", "is invalid")) };
    let meta = Meta::new(Some(caller), request_id);
    let route = format!("POST /api/v1/products/{product_id}/reviews");
    let scope = idempotency::scope(key.0, Some(&caller), &route, &input.digest);
    crate::idempotent!(&state, scope, |idem| handlers::submit(
        &state.ctx, caller, product_id, rating, text, &meta, idem
    )
    .await)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerationRequest {
    /// `approve` or `reject`.
    pub decision: String,
    /// Required when rejecting.
    pub reason: Option<String>,
}

/// Approve or reject a review (admins; once).
#[utoipa::path(post, path = "/api/v1/reviews/{id}/moderation", tag = "reviews", request_body = ModerationRequest,
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Review id")),
    responses(
        (status = 200, description = "Moderated", body = CommandResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_moderated`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn moderate_review(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    PathId(review_id): PathId,
    input: Input<ModerationRequest>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Admin])?;
    let mut v = Validator::default();
    let decision = match (input.value.decision.as_str(), input.value.reason.as_deref()) {
        ("approve", _) => Some(Decision::Approve),
        ("reject", Some(reason)) => {
            v.check("reason", Reason::parse(reason)).map(|r| Decision::Reject { reason: r.into_string() })
        }
        ("reject", None) => {
            v.fail("reason", "is required when rejecting a review");
            None
        }
        _ => {
            v.fail("decision", "must be approve or reject");
            None
        }
    };
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let Some(decision) = decision else { return Err(ApiError::field("body", "is invalid")) };
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::moderate(&state.ctx, caller, review_id, decision, &meta).await?, false))
}
