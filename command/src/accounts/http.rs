//! `POST /api/v1/accounts`, `POST /api/v1/sessions`, `PATCH|DELETE /api/v1/accounts/me`.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use events::domain::accounts::Role;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::handlers::{self, ProfileChanges, Registration};
use crate::handling::Meta;
use crate::http::extract::{Auth, IdempotencyKey, Input, RequestId};
use crate::http::{ApiError, AppState, CommandResponse, Problem, idempotency, respond};
use crate::values::{Email, Password, PersonName, Validator};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register)).routes(routes!(login)).routes(routes!(change_profile, close_account))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub name: String,
    /// `buyer` or `vendor` (carriers and admins are created by an operator).
    pub role: String,
}

impl RegisterRequest {
    fn parse(&self) -> Result<Registration, ApiError> {
        let mut v = Validator::default();
        let email = v.check("email", Email::parse(&self.email));
        let password = v.check("password", Password::parse(&self.password));
        let name = v.check("name", PersonName::parse(&self.name));
        let role = v.check(
            "role",
            match self.role.as_str() {
                "buyer" => Ok(Role::Buyer),
                "vendor" => Ok(Role::Vendor),
                _ => Err("must be buyer or vendor".to_owned()),
            },
        );
        v.finish().map_err(|e| ApiError::validation(e.0))?;
        match (email, password, name, role) {
            (Some(email), Some(password), Some(name), Some(role)) => Ok(Registration { email, password, name, role }),
            _ => Err(ApiError::field("body", "is invalid")),
        }
    }
}

/// Register a buyer or vendor account.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = RegisterRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 201, description = "Account created", body = CommandResponse),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    key: IdempotencyKey,
    input: Input<RegisterRequest>,
) -> Result<Response, ApiError> {
    let registration = input.value.parse()?;
    let meta = Meta::new(None, request_id);
    let scope = idempotency::scope(key.0, None, "POST /api/v1/accounts", &input.digest);
    crate::idempotent!(&state, scope, |idem| handlers::register(&state.ctx, registration, &meta, idem).await)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub account_id: uuid::Uuid,
    pub role: String,
}

/// Log in: exchange email and password for an access token.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "accounts", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = SessionResponse),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn login(State(state): State<AppState>, input: Input<LoginRequest>) -> Result<Json<SessionResponse>, ApiError> {
    let mut v = Validator::default();
    let email = v.check("email", Email::parse(&input.value.email));
    if input.value.password.is_empty() {
        v.fail("password", "must not be empty");
    }
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let Some(email) = email else { return Err(ApiError::field("email", "is invalid")) };
    let session = handlers::login(&state.ctx, &email, input.value.password).await?;
    Ok(Json(SessionResponse {
        token: session.token,
        expires_at: session.expires_at,
        account_id: session.account_id,
        role: session.role.as_str().to_owned(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

/// Change my name, email and/or password.
#[utoipa::path(patch, path = "/api/v1/accounts/me", tag = "accounts", request_body = ProfileRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = CommandResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`account_closed`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn change_profile(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
    input: Input<ProfileRequest>,
) -> Result<Response, ApiError> {
    let request = input.value;
    let mut v = Validator::default();
    let name = v.check_opt("name", request.name.as_deref(), PersonName::parse);
    let email = v.check_opt("email", request.email.as_deref(), Email::parse);
    let password = v.check_opt("password", request.password.as_deref(), Password::parse);
    v.finish().map_err(|e| ApiError::validation(e.0))?;
    let changes = ProfileChanges { name: name.flatten(), email: email.flatten(), password: password.flatten() };
    if changes.name.is_none() && changes.email.is_none() && changes.password.is_none() {
        return Err(ApiError::field("body", "name, email or password: give at least one"));
    }
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::change_profile(&state.ctx, &caller, changes, &meta).await?, false))
}

/// Close my account and erase my personal data.
#[utoipa::path(delete, path = "/api/v1/accounts/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "Closed and erased", body = CommandResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn close_account(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RequestId(request_id): RequestId,
) -> Result<Response, ApiError> {
    let meta = Meta::new(Some(caller), request_id);
    Ok(respond(handlers::erase(&state.ctx, &caller, &meta).await?, false))
}
