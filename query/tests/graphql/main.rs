//! The GraphQL API end to end: data goes in through the real command API, the real
//! projectors and indexer build the read models, and the API is asked over real HTTP (and
//! WebSocket for subscriptions).

mod auth;
mod catalog;
mod consistency;
mod hostile;
mod operations;
mod readiness;
mod subscriptions;
mod support;
mod webhooks;
