//! Extractors that turn every bad input into a problem+json 4xx, never a 500.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AppState;
use super::problem::ApiError;
use crate::auth::{Caller, TokenError};

/// A JSON request body, parsed, with the digest of its bytes (for idempotency keys).
pub struct Input<T> {
    pub value: T,
    pub digest: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Input<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the request body as JSON with the header Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read")
            }
        })?;
        let digest = hex(&Sha256::digest(&bytes));
        let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the request body is not valid JSON: {inner}"),
                )
            } else {
                let field = if path == "." { "body".to_owned() } else { path };
                ApiError::field(&field, without_position(&inner.to_string()))
            }
        })?;
        Ok(Input { value, digest })
    }
}

/// serde_json's messages end with " at line 1 column 42": useful for syntax errors only.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The authenticated caller; 401 when the token is missing, forged or expired.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match MaybeAuth::from_request_parts(parts, state).await?.0 {
            Some(caller) => Ok(Auth(caller)),
            None => Err(ApiError::unauthorized(
                "this needs an access token: send Authorization: Bearer <token> from POST /api/v1/sessions",
            )),
        }
    }
}

/// The caller, if the request carries a token (a bad token is still a 401).
pub struct MaybeAuth(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(MaybeAuth(None)) };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be: Bearer <token>"))?;
        match state.ctx.tokens.verify(token) {
            Ok(caller) => Ok(MaybeAuth(Some(caller))),
            Err(TokenError::Expired) => Err(ApiError::unauthorized("the access token has expired; log in again")),
            Err(TokenError::Invalid) => Err(ApiError::unauthorized("the access token is not valid")),
        }
    }
}

/// The `Idempotency-Key` header, if any.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyKey(None)) };
        let key = value.to_str().ok().map(str::trim).unwrap_or("");
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters, such as a UUID",
            ));
        }
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// The request id (from `X-Request-Id`, else a new one): the correlation id of the events the
/// request causes.
pub struct RequestId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|text| Uuid::parse_str(text).unwrap_or_else(|_| events::ids::derived("request", &[text.as_bytes()])))
            .unwrap_or_else(Uuid::now_v7);
        Ok(RequestId(id))
    }
}

/// A UUID path segment; anything else is a 400 naming the parameter.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "the path needs an id"))?;
        Uuid::parse_str(&raw).map(PathId).map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{raw:?} is not an id: ids are UUIDs"))
        })
    }
}

/// Two UUID path segments (`/webhooks/{id}/deliveries/{delivery_id}`); anything else is a 400.
pub struct PathIds(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path((a, b)) = axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "the path needs two ids"))?;
        let parse = |raw: &str| {
            Uuid::parse_str(raw).map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{raw:?} is not an id: ids are UUIDs"))
            })
        };
        Ok(PathIds(parse(&a)?, parse(&b)?))
    }
}
