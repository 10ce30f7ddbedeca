//! The GraphQL schema: one query root per bounded context, merged; the order subscription;
//! the limits every operation runs under.

pub mod accounts;
pub mod catalog;
pub mod deliveries;
mod depth;
pub mod orders;
pub mod reviews;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::dataloader::DataLoader;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Context, EmptyMutation, MergedObject, MergedSubscription, Response, Schema, ServerError, ServerResult, Variables,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use search::ProductIndex;

use crate::consistency::{Checkpoints, Consistency};
use crate::error::{Code, Error, graphql_error};
use crate::loaders::Loaders;
use crate::read_models::ReadModels;
use crate::updates::OrderUpdates;
use crate::viewer::Viewer;

/// The storefront schema.
pub type AgoraSchema = Schema<QueryRoot, EmptyMutation, SubscriptionRoot>;

/// Every query, one object per bounded context.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    catalog::CatalogQuery,
    accounts::AccountsQuery,
    orders::OrdersQuery,
    reviews::ReviewsQuery,
    webhooks::WebhooksQuery,
);

#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(orders::OrderSubscription);

/// What bounds every operation.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Highest total cost: 1 per field, connections cost their page size times their items.
    pub max_complexity: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest an operation may run (read-your-writes waiting included).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: 12, max_complexity: 2_500, max_body_bytes: 64 * 1024, timeout: Duration::from_secs(10) }
    }
}

/// Services every resolver shares (schema data).
pub struct Shared {
    pub read: ReadModels,
    pub index: ProductIndex,
    pub checkpoints: Checkpoints,
    pub updates: OrderUpdates,
}

/// The state of one request (or of one WebSocket connection): who asks, how consistent the
/// answer must be, and the request's DataLoader.
pub struct RequestContext {
    pub viewer: Viewer,
    pub consistency: Arc<Consistency>,
    pub loader: DataLoader<Loaders>,
}

impl RequestContext {
    pub fn new(read: ReadModels, viewer: Viewer, consistency: Consistency) -> Self {
        let consistency = Arc::new(consistency);
        Self { viewer, loader: Loaders::data_loader(read, consistency.clone()), consistency }
    }
}

pub(crate) fn request<'a>(ctx: &Context<'a>) -> Result<&'a RequestContext, Error> {
    ctx.data::<RequestContext>().map_err(|_| Error::Internal("no request context in the schema data".into()))
}

pub(crate) fn shared<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Shared>, Error> {
    ctx.data::<Arc<Shared>>().map_err(|_| Error::Internal("no shared services in the schema data".into()))
}

/// Build the schema over `shared` with `limits`. Introspection stays on (GraphiQL).
///
/// `guard`, when given, runs as an extension: the schema of subscriptions (WebSocket) needs
/// it. Queries and the HTTP endpoint run on a schema without extensions, through
/// [`Guard::run`]: with any extension registered, async-graphql sends every field of the
/// answer through the extension chain, about a fifth of a search page's CPU time.
pub fn build(shared: Arc<Shared>, limits: &Limits, guard: Option<Guard>) -> AgoraSchema {
    let builder = Schema::build(QueryRoot::default(), EmptyMutation, SubscriptionRoot::default())
        .data(shared)
        // The data depth limit is the guard's (introspection excluded); this is a backstop.
        .limit_depth(limits.max_depth.max(32))
        .limit_complexity(limits.max_complexity)
        // Parser and validator recursion: deeply nested hostile documents fail fast.
        .limit_recursive_depth(RECURSIVE_DEPTH)
        .limit_directives(16);
    match guard {
        Some(guard) => builder.extension(guard).finish(),
        None => builder.finish(),
    }
}

/// Selection nesting the parser and validator accept at all.
const RECURSIVE_DEPTH: usize = 64;

/// What every operation runs under: the data depth limit, the query timeout, an
/// `extensions.code` on every error, metrics; and a cache of parsed documents.
#[derive(Clone)]
pub struct Guard {
    timeout: Duration,
    max_depth: usize,
    documents: Arc<Documents>,
}

impl Guard {
    pub fn new(limits: &Limits) -> Self {
        Self { timeout: limits.timeout, max_depth: limits.max_depth, documents: Arc::default() }
    }

    /// Run `request` on `schema` (built without the guard extension) under the guard.
    pub async fn run(&self, schema: &AgoraSchema, mut request: async_graphql::Request) -> Response {
        let parsed = match self.documents.get(&request.query) {
            Some(document) => Ok(document),
            None => async_graphql::parser::parse_query(&request.query)
                .map_err(Into::into)
                .and_then(|document| self.checked(&request.query, document)),
        };
        match parsed {
            Ok(document) => request.set_parsed_query(document),
            Err(error) => return self.finish(Instant::now(), Response::from_errors(vec![error])),
        }
        self.limited(schema.execute(request)).await
    }

    /// `operation` within the timeout, with codes and metrics.
    async fn limited(&self, operation: impl std::future::Future<Output = Response>) -> Response {
        let started = Instant::now();
        let response = match tokio::time::timeout(self.timeout, operation).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(timeout_ms = self.timeout.as_millis() as u64, "graphql operation timed out");
                Response::from_errors(vec![graphql_error(
                    Code::Timeout,
                    format!("the operation took longer than {} ms and was stopped", self.timeout.as_millis()),
                )])
            }
        };
        self.finish(started, response)
    }

    fn finish(&self, started: Instant, response: Response) -> Response {
        let response = with_codes(response);
        let outcome = if response.errors.is_empty() {
            "ok"
        } else if response.data == async_graphql::Value::Null {
            "refused"
        } else {
            "partial"
        };
        metrics::counter!("agora_graphql_requests_total", "outcome" => outcome).increment(1);
        metrics::histogram!("agora_graphql_request_duration_seconds").record(started.elapsed().as_secs_f64());
        response
    }

    /// `document`, just parsed from `query`, if its data depth is within the limit; then
    /// it is cached (only documents that passed the check are).
    fn checked(&self, query: &str, document: ExecutableDocument) -> ServerResult<ExecutableDocument> {
        let depth = depth::data_depth(&document, RECURSIVE_DEPTH);
        if depth > self.max_depth {
            return Err(graphql_error(
                Code::BadUserInput,
                format!("the query nests {depth} levels deep; at most {} are allowed", self.max_depth),
            ));
        }
        self.documents.put(query, &document);
        Ok(document)
    }
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension(self.clone()))
    }
}

/// The guard as an extension, for the subscription schema.
struct GuardExtension(Guard);

/// Parsed documents by query text: a storefront sends the same few operations over and
/// over (with different variables), and parsing is a noticeable part of a cheap request.
#[derive(Default)]
struct Documents {
    parsed: std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>,
}

impl Documents {
    /// Documents kept at most (then the cache starts over): bounds memory against clients
    /// that send ever-new query texts.
    const CAPACITY: usize = 256;
    /// Longer texts are parsed every time.
    const MAX_TEXT: usize = 8 * 1024;

    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        self.parsed.lock().ok()?.get(query).cloned()
    }

    fn put(&self, query: &str, document: &ExecutableDocument) {
        if query.len() > Self::MAX_TEXT {
            return;
        }
        if let Ok(mut parsed) = self.parsed.lock() {
            if parsed.len() >= Self::CAPACITY {
                parsed.clear();
            }
            parsed.insert(query.to_owned(), document.clone());
        }
    }
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        self.0.limited(next.run(ctx)).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.0.documents.get(query) {
            return Ok(document);
        }
        let document = next.run(ctx, query, variables).await?;
        self.0.checked(query, document)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

/// Give every error a code. Every error a resolver makes has one (`crate::Error`); the
/// others come from async-graphql itself checking the request — syntax, validation,
/// limits, variables and argument values — and are the client's.
fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        add_code(error);
    }
    response
}

fn add_code(error: &mut ServerError) {
    let has_code = error.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    tracing::debug!(message = %error.message, path = ?error.path, "request refused by the graphql engine");
    error.extensions.get_or_insert_with(Default::default).set("code", Code::BadUserInput.as_str());
}
