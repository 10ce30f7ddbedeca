#![doc = include_str!("../README.md")]

/// Accounts: registration, sessions, profile, erasure.
pub mod accounts;
/// Aggregate states this process already knows (read or written), by stream.
pub mod aggregates;
/// Passwords and role checks (tokens are `events::identity`).
pub mod auth;
/// Catalogue: products, prices, stock.
pub mod catalog;
/// The `Decider` trait and its given / when / then test harness.
pub mod decider;
/// Deliveries and the fulfilment process.
pub mod deliveries;
/// `CommandError` and the refusals domain errors turn into.
pub mod error;
/// Load -> decide -> append, with retries; the handlers' `Context`.
pub mod handling;
/// The axum command API: routes, extractors, problem+json, idempotency, OpenAPI.
pub mod http;
/// Carts, checkout, orders and the completion process.
pub mod orders;
/// Payments: gateway, decider, payment process.
pub mod payments;
/// Reviews and moderation.
pub mod reviews;
/// Validated values built from HTTP input.
pub mod values;
/// Webhook endpoints: registration and replays.
pub mod webhooks;

pub use error::{CommandError, Result};
pub use handling::{Accepted, Context, Meta};

/// The process managers the projections runtime should run for this side.
pub fn reactors(ctx: &Context) -> Vec<std::sync::Arc<dyn events::reactor::Reactor>> {
    vec![
        std::sync::Arc::new(payments::handlers::PaymentProcess::new(ctx.clone())),
        std::sync::Arc::new(deliveries::handlers::FulfilmentProcess { ctx: ctx.clone() }),
        std::sync::Arc::new(orders::reactions::CompletionProcess { ctx: ctx.clone() }),
        std::sync::Arc::new(orders::reservations::ReservationsProcess { ctx: ctx.clone() }),
    ]
}
