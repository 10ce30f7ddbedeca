//! The HTTP side: `POST /graphql` (operations), `GET /graphql` (GraphiQL), `/graphql/ws`
//! (subscriptions over graphql-transport-ws). A thin route over [`QueryApi`].

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Router;
use axum::body::Body;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::api::QueryApi;
use crate::error::{Code, graphql_error};

/// The header that asks for read-your-writes.
pub const CONSISTENCY_TOKEN: &str = "consistency-token";

/// The GraphQL routes of a query process.
pub fn router(api: QueryApi) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(subscriptions))
        .with_state(api)
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A GraphQL-shaped error answer for a request that never reached the schema.
fn refused(status: StatusCode, message: impl Into<String>) -> Response {
    let response = async_graphql::Response::from_errors(vec![graphql_error(Code::BadUserInput, message)]);
    (status, axum::Json(response)).into_response()
}

async fn graphql(State(api): State<QueryApi>, headers: HeaderMap, body: Body) -> Response {
    let limit = api.options().limits.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes (or could not be read)"),
            );
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(error) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("the body must be a JSON GraphQL request {{\"query\": ..., \"variables\": ...}}: {error}"),
            );
        }
    };
    let response = api
        .execute(request, header_str(&headers, header::AUTHORIZATION), header_str(&headers, CONSISTENCY_TOKEN))
        .await;
    axum::Json(response).into_response()
}

async fn graphiql() -> Html<&'static str> {
    Html(GRAPHIQL)
}

async fn subscriptions(
    State(api): State<QueryApi>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let authorization = header_str(&headers, header::AUTHORIZATION).map(str::to_owned);
    // A subscription message is an operation: the same size limit as a POST body.
    let limit = api.options().limits.max_body_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let schema = api.schema().clone();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(
                    move |payload| async move { api.connection_data(authorization.as_deref(), &payload) },
                )
                .serve()
        })
        .into_response()
}

/// GraphiQL from a CDN, pointed at this server's endpoints (subscriptions included).
const GRAPHIQL: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Agora GraphiQL</title>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
</head>
<body style="margin: 0">
  <div id="graphiql" style="height: 100vh"></div>
  <script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphql-ws@5/umd/graphql-ws.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
  <script>
    const ws = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql/ws';
    const fetcher = GraphiQL.createFetcher({ url: '/graphql', wsClient: graphqlWs.createClient({ url: ws }) });
    ReactDOM.createRoot(document.getElementById('graphiql'))
      .render(React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true }));
  </script>
</body>
</html>
"#;
