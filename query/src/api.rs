//! `QueryApi`: the schema with its services, and one operation's execution (caller from the
//! token, read-your-writes from the consistency token).

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Data, Request, Response};
use events::EventStore;
use events::identity::TokenKeys;
use search::ProductIndex;

use crate::consistency::{Checkpoints, Consistency, parse_token};
use crate::error::Code;
use crate::read_models::ReadModels;
use crate::schema::{AgoraSchema, Guard, Limits, RequestContext, Shared};
use crate::updates::OrderUpdates;
use crate::viewer::Viewer;

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The longest a request with a `Consistency-Token` waits for the read models.
    pub consistency_wait: Duration,
    pub limits: Limits,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self { consistency_wait: Duration::from_secs(2), limits: Limits::default() }
    }
}

/// The GraphQL API of a query process. Cheap to clone.
#[derive(Clone)]
pub struct QueryApi {
    /// With the guard as an extension: subscriptions.
    schema: AgoraSchema,
    /// Without extensions: queries, run under `guard`.
    queries: AgoraSchema,
    guard: Guard,
    shared: Arc<Shared>,
    tokens: TokenKeys,
    options: Arc<QueryOptions>,
}

impl QueryApi {
    /// The API over `read` (read models), `index` (this process's search index, kept current
    /// by its indexer) and `store` (the log, followed for subscriptions). Starts the
    /// checkpoint poller: call inside a tokio runtime.
    pub fn new(
        read: ReadModels,
        index: ProductIndex,
        store: Arc<dyn EventStore>,
        tokens: TokenKeys,
        options: QueryOptions,
    ) -> Self {
        let shared = Arc::new(Shared {
            checkpoints: Checkpoints::new(read.pool().clone(), index.clone()),
            read,
            index,
            updates: OrderUpdates::new(store),
        });
        // One guard (and cache of parsed documents) for both schemas.
        let guard = Guard::new(&options.limits);
        let schema = crate::schema::build(shared.clone(), &options.limits, Some(guard.clone()));
        let queries = crate::schema::build(shared.clone(), &options.limits, None);
        Self { schema, queries, guard, shared, tokens, options: Arc::new(options) }
    }

    /// The schema of subscriptions (the guard runs as its extension).
    pub fn schema(&self) -> &AgoraSchema {
        &self.schema
    }

    pub fn options(&self) -> &QueryOptions {
        &self.options
    }

    pub fn read_models(&self) -> &ReadModels {
        &self.shared.read
    }

    pub fn index(&self) -> &ProductIndex {
        &self.shared.index
    }

    pub fn checkpoints(&self) -> &Checkpoints {
        &self.shared.checkpoints
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }

    /// The caller an `Authorization` header names.
    pub fn viewer(&self, authorization: Option<&str>) -> Viewer {
        Viewer::from_authorization(&self.tokens, authorization)
    }

    /// The per-request state for `viewer`, waiting for `token` (if any) when reading.
    pub fn request_context(&self, viewer: Viewer, token: Option<events::LogPosition>) -> RequestContext {
        let consistency = Consistency::new(self.shared.checkpoints.clone(), token, self.options.consistency_wait);
        RequestContext::new(self.shared.read.clone(), viewer, consistency)
    }

    /// Run one operation for the caller of `authorization`, with read-your-writes when a
    /// `consistency_token` is given.
    pub async fn execute(
        &self,
        request: Request,
        authorization: Option<&str>,
        consistency_token: Option<&str>,
    ) -> Response {
        let token = match consistency_token.map(parse_token).transpose() {
            Ok(token) => token,
            Err(error) => {
                return Response::from_errors(vec![crate::error::graphql_error(Code::BadUserInput, error.to_string())]);
            }
        };
        let context = self.request_context(self.viewer(authorization), token);
        self.guard.run(&self.queries, request.data(context)).await
    }

    /// The data of a WebSocket connection, from the `Authorization` header of the upgrade
    /// request or the `connection_init` payload (`{"Authorization": "Bearer .."}` or
    /// `{"token": ".."}`, optionally `{"consistencyToken": ".."}`).
    pub fn connection_data(
        &self,
        header: Option<&str>,
        payload: &serde_json::Value,
    ) -> Result<Data, async_graphql::Error> {
        let field = |names: &[&str]| names.iter().find_map(|n| payload.get(*n).and_then(|v| v.as_str()));
        let authorization = match (field(&["Authorization", "authorization"]), field(&["token"])) {
            (Some(authorization), _) => Some(authorization.to_owned()),
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => header.map(str::to_owned),
        };
        let viewer = self.viewer(authorization.as_deref());
        if let Viewer::Refused(reason) = &viewer {
            return Err(async_graphql::Error::new(reason.to_string()));
        }
        let token = match field(&["consistencyToken", "Consistency-Token"]) {
            Some(text) => Some(parse_token(text).map_err(|e| async_graphql::Error::new(e.to_string()))?),
            None => None,
        };
        let mut data = Data::default();
        data.insert(self.request_context(viewer, token));
        Ok(data)
    }

    /// End every subscription (server shutdown).
    pub fn shutdown(&self) {
        self.shared.updates.shutdown();
    }
}
