#![doc = include_str!("../README.md")]

/// Typed domain events per bounded context, and `MarketEvent` over all of them.
pub mod domain;
/// Event envelope: `NewEvent`, `RecordedEvent`, `StreamId`, metadata.
pub mod envelope;
/// Who is acting: access-token claims, issued by the command side, verified by both sides.
pub mod identity;
/// Ids derived from other ids, for idempotent process steps.
pub mod ids;
/// Public integration events (broker, webhooks): a stable, versioned schema mapped from
/// domain events, without personal data.
pub mod integration;
/// The KurrentDB (EventStoreDB) store: feature `kurrentdb`.
#[cfg(feature = "kurrentdb")]
pub mod kurrent;
/// `LogPosition`: the place of an event in the global log; the consistency token.
pub mod position;
/// The PostgreSQL event store.
pub mod postgres;
/// Sealed personal data: per-account keys, seal / open / erase.
pub mod privacy;
/// Process managers: the `Reactor` trait the projections runtime drives.
pub mod reactor;
/// The `EventStore` trait, append requests and results, `StoreError`.
pub mod store;
/// Rewriting stored JSON of older schema versions.
pub mod upcast;

/// Throwaway databases and the store contract suite, for tests of this and other crates.
#[cfg(feature = "testing")]
pub mod testing;

pub use domain::{DecodeError, DomainEvent, MarketEvent};
pub use envelope::{EventMetadata, NewEvent, RecordedEvent, StreamId};
#[cfg(feature = "kurrentdb")]
pub use kurrent::KurrentStore;
pub use position::{InvalidLogPosition, LogPosition};
pub use postgres::{PgEventStore, PgStoreOptions};
pub use store::{
    AppendRequest, Appended, AppendedEvent, Capabilities, EventStore, EventStream, ExpectedVersion, IdempotencyRecord,
    StoreError, StoredResponse, StreamAppend,
};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
