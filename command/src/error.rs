//! `CommandError`: why a command was not carried out, with the HTTP status and the stable
//! `code` clients switch on.

use events::StoreError;

use crate::values::{FieldError, Invalid};

/// A refusal by the domain: the rule that said no, for a person and for a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

/// Domain errors say which refusal they are.
pub trait Refuse {
    fn refusal(&self) -> Refusal;
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Fields failed validation (422 `validation_failed`).
    #[error("validation failed")]
    Invalid(Vec<FieldError>),
    /// A business rule refused the command.
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// Still conflicting after the bounded retries (409 `conflict`).
    #[error("the data changed concurrently too many times, try again")]
    Conflict,
    /// The idempotency key was used by a concurrent request that is still being stored.
    #[error("a request with this idempotency key is in progress")]
    IdempotencyKeyTaken,
    /// The store is unreachable: nothing was written; retry (503).
    #[error("service temporarily unavailable")]
    Unavailable(#[source] StoreError),
    /// A bug or an unexpected backend failure (500; details go to the log only).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    pub fn refused(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        CommandError::Refused(Refusal { status, code, message: message.into() })
    }

    pub fn not_found(what: &str) -> Self {
        Self::refused(404, "not_found", format!("{what} was not found"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::refused(403, "forbidden", message)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        CommandError::Internal(error.to_string())
    }
}

impl From<Invalid> for CommandError {
    fn from(invalid: Invalid) -> Self {
        CommandError::Invalid(invalid.0)
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => CommandError::Conflict,
            StoreError::IdempotencyKeyTaken { .. } => CommandError::IdempotencyKeyTaken,
            error if error.is_retryable() => CommandError::Unavailable(error),
            other => CommandError::Internal(other.to_string()),
        }
    }
}

impl From<events::DecodeError> for CommandError {
    fn from(error: events::DecodeError) -> Self {
        CommandError::Internal(error.to_string())
    }
}

impl From<events::privacy::PrivacyError> for CommandError {
    fn from(error: events::privacy::PrivacyError) -> Self {
        match error {
            events::privacy::PrivacyError::NoKey(_) => {
                Self::refused(410, "account_closed", "this account was closed and its personal data erased")
            }
            events::privacy::PrivacyError::Database(db) => {
                CommandError::Unavailable(StoreError::Unavailable(Box::new(db)))
            }
            other => CommandError::Internal(other.to_string()),
        }
    }
}

/// A domain refusal as a command error.
pub fn refused(error: impl Refuse) -> CommandError {
    CommandError::Refused(error.refusal())
}

pub type Result<T, E = CommandError> = std::result::Result<T, E>;
