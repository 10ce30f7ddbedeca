#![doc = include_str!("../README.md")]

/// `QueryApi`: the schema with its services; executing one operation.
pub mod api;
/// Read-your-writes: consistency tokens, the checkpoint poller, per-request waiting.
pub mod consistency;
/// `Error` and the `extensions.code` of GraphQL errors.
pub mod error;
/// The axum routes: `/graphql` (POST operations, GET GraphiQL) and `/graphql/ws`.
pub mod http;
/// DataLoaders: one statement per relation and batch, never one per item.
pub mod loaders;
/// Page sizes, keyset cursors, `PageInfo`, id parsing.
pub mod pagination;
/// SQL over the `read_model` views, one module per bounded context.
pub mod read_models;
/// Readiness: how far each read model and the search index lag behind the log.
pub mod readiness;
/// The GraphQL schema: one query root per bounded context, the subscription, limits.
pub mod schema;
/// Announcements of changed orders, from the log, for subscriptions.
pub mod updates;
/// The caller (bearer token) and the access rules.
pub mod viewer;

pub use api::{QueryApi, QueryOptions};
pub use consistency::Source;
pub use error::{Code, Error};
pub use http::router;
pub use read_models::ReadModels;
pub use schema::{AgoraSchema, Limits};
pub use viewer::Viewer;

pub type Result<T, E = Error> = std::result::Result<T, E>;
