//! `application/problem+json` (RFC 9457) errors with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::CommandError;
use crate::values::FieldError;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:agora:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// A sentence for a person.
    pub detail: String,
    /// Stable, for programs: `validation_failed`, `out_of_stock`, `conflict`, `not_found`,
    /// `forbidden`, `unauthorized`, `idempotency_mismatch`, ...
    pub code: String,
    /// Field-level messages, for `validation_failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An HTTP error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds, for 503.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), errors: Vec::new(), retry_after: None }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{} {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code: "validation_failed", detail, errors, retry_after: None }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError { field: field.to_owned(), message: message.into() }])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service cannot reach its database right now; nothing was changed, try again shortly",
        );
        error.retry_after = Some(2);
        error
    }

    fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:agora:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // For the command metrics (outcome label), read by `http::count_commands`.
        response.extensions_mut().insert(ProblemCode(self.code));
        response
    }
}

/// The `code` of a problem response, carried as a response extension.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Invalid(errors) => ApiError::validation(errors),
            CommandError::Refused(refusal) => ApiError::new(
                StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::CONFLICT),
                refusal.code,
                refusal.message,
            ),
            CommandError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the data changed while your request was processed, too many times in a row; try again",
            ),
            CommandError::IdempotencyKeyTaken => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "a request with this idempotency key is still being processed; try again shortly",
            ),
            CommandError::Unavailable(source) => {
                tracing::warn!(error = %source, "command failed: database unavailable");
                ApiError::unavailable()
            }
            CommandError::Internal(detail) => {
                tracing::error!(error = %detail, "command failed with an internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}
