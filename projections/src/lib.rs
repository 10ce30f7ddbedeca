#![doc = include_str!("../README.md")]

/// One batch: fenced checkpoint, apply, advance, commit.
mod batch;
/// `agora bench rebuild`: timing a rebuild of every read model over a generated history.
pub mod bench;
/// SQL over the bookkeeping tables (`projection.checkpoint`, parked events, failures).
pub mod checkpoint;
/// The crate's error type.
mod error;
/// The event feed of a projector: subscription read ahead into a channel, in batches.
mod feed;
/// Generation schemas `rm_<projection>_g<N>` and the `read_model` views.
pub mod generation;
/// A deterministic, realistic marketplace history, appended through the event store.
pub mod history;
/// Integration events to NATS JetStream, webhooks and notifications (reactors and their
/// senders).
pub mod integration;
/// Leadership through advisory locks on dedicated connections.
pub mod leader;
/// The `Projection` trait and name rules.
pub mod projection;
/// The live projector loop.
mod projector;
/// The reactor (process manager) runtime.
mod reactor;
/// The PostgreSQL read models: catalog, accounts, orders, deliveries, reviews.
pub mod read_models;
/// Shadow build and atomic swap.
pub mod rebuild;
/// Options, leadership loop, backoff and shutdown shared by projectors and reactors.
mod runtime;
/// Status for operators, and parking events.
pub mod status;
/// Metrics of projectors and reactors.
mod telemetry;

pub use error::Error;
pub use generation::{drop_all, ensure_live, ensure_reactor};
pub use history::{HistoryConfig, HistoryProgress, HistorySummary, generate_history};
pub use projection::{EventFilter, Projection, SharedProjection};
pub use projector::{run_projector, run_projectors};
pub use reactor::run_reactor;
pub use read_models::all_projections;
pub use rebuild::{Progress, RebuildOptions, RebuildSummary, RebuiltProjection, rebuild};
pub use runtime::RunOptions;
pub use status::{ParkedEvent, Status, park, status, unpark};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The migrations of schema `projection` (checkpoints, parked events, failures) and of the
/// empty `read_model` schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    // Each crate keeps its own migration history, so version numbers never collide.
    migrator.dangerous_set_table_name("projections_migrations");
    migrator
}

/// Apply the projections migrations.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<()> {
    migrator().run(pool).await?;
    Ok(())
}
