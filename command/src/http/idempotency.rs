//! `Idempotency-Key`: the same key with the same request returns the first response and
//! appends nothing; the same key with another request is a 422. The record is stored in the
//! same transaction as the command's events (see `handling::append_accepted`).

use axum::http::StatusCode;
use axum::response::Response;
use events::StoredResponse;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use super::{AppState, respond};
use crate::auth::Caller;
use crate::error::CommandError;
use crate::handling::{Accepted, Idempotency};

/// The key scoped to the caller and route (so two users' keys never meet), and the digest of
/// route + body that tells a retry from a different request.
pub fn scope(key: Option<String>, caller: Option<&Caller>, route: &str, body_digest: &str) -> Option<Idempotency> {
    let key = key?;
    let owner = caller.map_or_else(|| "anonymous".to_owned(), |c| c.account_id.to_string());
    let request_hash: String =
        Sha256::digest(format!("{route}\n{body_digest}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Some(Idempotency { key: format!("{owner}:{route}:{key}"), request_hash })
}

fn replay(stored: StoredResponse, idempotency: &Idempotency) -> Result<Response, ApiError> {
    if stored.request_hash != idempotency.request_hash {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_mismatch",
            "this Idempotency-Key was already used for a different request; use a new key for a new request",
        ));
    }
    let body = match stored.response_body {
        Value::Object(body) => body,
        _ => Default::default(),
    };
    Ok(respond(Accepted { status: stored.response_status, body, position: stored.position }, true))
}

/// The stored response when this key was already used (or a 422 for another request).
pub async fn replayed(state: &AppState, idempotency: Option<&Idempotency>) -> Result<Option<Response>, ApiError> {
    let Some(idempotency) = idempotency else { return Ok(None) };
    match state.ctx.store.idempotent_response(&idempotency.key).await.map_err(CommandError::from)? {
        Some(stored) => replay(stored, idempotency).map(Some),
        None => Ok(None),
    }
}

/// The response to a command run under an optional idempotency key: a concurrent request
/// that stored the same key first is answered as it was.
pub async fn finish(
    state: &AppState,
    idempotency: Option<&Idempotency>,
    result: Result<Accepted, CommandError>,
) -> Result<Response, ApiError> {
    match (result, idempotency) {
        (Ok(accepted), _) => Ok(respond(accepted, false)),
        (Err(error @ CommandError::IdempotencyKeyTaken), Some(idempotency)) => {
            stored_or(state, idempotency, error).await
        }
        (Err(error), _) => Err(error.into()),
    }
}

/// The response stored under the key, if there is one; otherwise `error`.
async fn stored_or(state: &AppState, idempotency: &Idempotency, error: CommandError) -> Result<Response, ApiError> {
    match state.ctx.store.idempotent_response(&idempotency.key).await.map_err(CommandError::from)? {
        Some(stored) => replay(stored, idempotency),
        None => Err(error.into()),
    }
}

/// The response to a command that ran without looking its key up first ([`run_then_look_up`]).
/// Any refusal or conflict under a key may be the echo of an earlier run with that key (a
/// retried checkout finds its cart already empty), so the stored response, if there is one,
/// answers instead. A new decision under a used key cannot land: its append stores the key
/// too and fails with `IdempotencyKeyTaken`, which is answered the same way.
pub async fn finish_unchecked(
    state: &AppState,
    idempotency: Option<&Idempotency>,
    result: Result<Accepted, CommandError>,
) -> Result<Response, ApiError> {
    match (result, idempotency) {
        (Ok(accepted), _) => Ok(respond(accepted, false)),
        (
            Err(error @ (CommandError::Refused(_) | CommandError::Conflict | CommandError::IdempotencyKeyTaken)),
            Some(key),
        ) => stored_or(state, key, error).await,
        (Err(error), _) => Err(error.into()),
    }
}

/// Run a command under an optional idempotency key:
/// `idempotent!(&state, scope, |idem| handler(..., idem).await)`.
#[macro_export]
macro_rules! idempotent {
    ($state:expr, $scope:expr, |$idem:ident| $command:expr) => {{
        let scope = $scope;
        match $crate::http::idempotency::replayed($state, scope.as_ref()).await {
            Err(error) => Err(error),
            Ok(Some(replayed)) => Ok(replayed),
            Ok(None) => {
                let $idem = scope.as_ref();
                let result = $command;
                $crate::http::idempotency::finish($state, scope.as_ref(), result).await
            }
        }
    }};
}

/// `idempotent!` without the lookup before the command, for commands whose every effect is
/// their one append (which stores the key atomically): a first request, by far the most
/// common, then costs no extra round trip; a replay is recognised after the command ran
/// (see [`finish_unchecked`]).
#[macro_export]
macro_rules! run_then_look_up {
    ($state:expr, $scope:expr, |$idem:ident| $command:expr) => {{
        let scope = $scope;
        let $idem = scope.as_ref();
        let result = $command;
        $crate::http::idempotency::finish_unchecked($state, scope.as_ref(), result).await
    }};
}
