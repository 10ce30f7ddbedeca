//! `Error`, the crate's one error type, and how it becomes a GraphQL error with a stable
//! `extensions.code`.
//!
//! Client errors keep their message; server-side failures are logged with their details and
//! reach the client only as "internal error" with code `INTERNAL`.

use std::sync::Arc;

use async_graphql::ErrorExtensions as _;
use events::LogPosition;

/// The machine-readable code of a GraphQL error (`extensions.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The field needs an access token, or the token sent is invalid or expired.
    Unauthenticated,
    /// The caller is known but may not see this.
    Forbidden,
    /// No such thing, or not one the caller may see (indistinguishable on purpose).
    NotFound,
    /// Arguments, cursors, ids, headers or the query itself are malformed or over a limit.
    BadUserInput,
    /// A `Consistency-Token` was sent and the read models did not reach it in time.
    StaleRead,
    /// The operation ran longer than the query timeout.
    Timeout,
    /// Something failed on the server; details are in the server log.
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::StaleRead => "STALE_READ",
            Code::Timeout => "TIMEOUT",
            Code::Internal => "INTERNAL",
        }
    }
}

/// Everything that can go wrong while answering a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadUserInput(String),
    /// The read model (or the search index) `read_model` is still behind `position`.
    #[error(
        "the {read_model} read model has not caught up with your last change yet (consistency token {position}); retry shortly"
    )]
    StaleRead { read_model: &'static str, position: LogPosition },
    #[error("read model query failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("product search failed: {0}")]
    Search(#[from] search::SearchError),
    #[error("event store failed: {0}")]
    Store(#[from] events::StoreError),
    /// A failure already described (e.g. by a DataLoader shared between fields).
    #[error("{0}")]
    Shared(Arc<Error>),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::BadUserInput(message.into())
    }

    /// The code clients see.
    pub fn code(&self) -> Code {
        match self {
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Forbidden(_) => Code::Forbidden,
            Error::NotFound(_) => Code::NotFound,
            Error::BadUserInput(_) => Code::BadUserInput,
            Error::StaleRead { .. } => Code::StaleRead,
            Error::Search(error) if error.is_client_error() => Code::BadUserInput,
            Error::Shared(inner) => inner.code(),
            Error::Database(_) | Error::Search(_) | Error::Store(_) | Error::Internal(_) => Code::Internal,
        }
    }

    /// The GraphQL error: the message for client errors, a fixed sentence for internal ones
    /// (whose details go to the log instead).
    pub fn to_graphql(&self) -> async_graphql::Error {
        let code = self.code();
        let message = match code {
            Code::Internal => {
                tracing::error!(error = %self, "graphql field failed");
                "internal error: the server could not answer this field; it has been logged".to_owned()
            }
            _ => self.to_string(),
        };
        let stale = match self {
            Error::StaleRead { read_model, position } => Some((*read_model, *position)),
            Error::Shared(inner) => match &**inner {
                Error::StaleRead { read_model, position } => Some((*read_model, *position)),
                _ => None,
            },
            _ => None,
        };
        async_graphql::Error::new(message).extend_with(|_, extensions| {
            extensions.set("code", code.as_str());
            if let Some((source, position)) = stale {
                extensions.set("readModel", source);
                extensions.set("consistencyToken", position.to_string());
            }
        })
    }
}

impl From<Error> for async_graphql::Error {
    fn from(error: Error) -> Self {
        error.to_graphql()
    }
}

impl From<Arc<Error>> for Error {
    fn from(error: Arc<Error>) -> Self {
        Error::Shared(error)
    }
}

/// The error of a DataLoader batch: shared by every field that waited on the batch.
#[derive(Debug, Clone)]
pub struct LoadError(pub Arc<Error>);

impl From<Error> for LoadError {
    fn from(error: Error) -> Self {
        Self(Arc::new(error))
    }
}

impl From<LoadError> for async_graphql::Error {
    fn from(error: LoadError) -> Self {
        error.0.to_graphql()
    }
}

impl From<LoadError> for Error {
    fn from(error: LoadError) -> Self {
        Error::Shared(error.0)
    }
}

/// A GraphQL error with a code and a message, for errors made outside resolvers (HTTP
/// layer, limits).
pub fn graphql_error(code: Code, message: impl Into<String>) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code.as_str());
    error.extensions = Some(extensions);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(error: &async_graphql::Error) -> String {
        let extensions = error.extensions.as_ref().expect("extensions");
        match extensions.get("code") {
            Some(async_graphql::Value::String(code)) => code.clone(),
            other => panic!("no code: {other:?}"),
        }
    }

    #[test]
    fn client_errors_keep_their_message_internal_ones_do_not() {
        let not_found = Error::NotFound("order").to_graphql();
        assert_eq!(not_found.message, "order not found");
        assert_eq!(code_of(&not_found), "NOT_FOUND");

        let internal = Error::Internal("connection to 10.0.0.3 refused, password=hunter2".into()).to_graphql();
        assert_eq!(code_of(&internal), "INTERNAL");
        assert!(!internal.message.contains("10.0.0.3") && !internal.message.contains("hunter2"));

        let cursor = Error::Search(search::SearchError::InvalidCursor).to_graphql();
        assert_eq!(code_of(&cursor), "BAD_USER_INPUT");

        let stale =
            Error::from(LoadError::from(Error::StaleRead { read_model: "orders", position: LogPosition::new(7, 9) }));
        let stale = stale.to_graphql();
        assert_eq!(code_of(&stale), "STALE_READ");
        let extensions = stale.extensions.expect("extensions");
        assert_eq!(extensions.get("consistencyToken"), Some(&async_graphql::Value::String("7.9".into())));
    }
}
