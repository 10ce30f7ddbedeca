//! Typed domain events, one module per bounded context.
//!
//! Every event has a stable type name (`"order.placed"`) and a schema version. Stored JSON
//! written by an older schema version is rewritten by the [upcasters](crate::upcast) before it
//! is deserialised, so deciders and projections only ever see the current shape.

pub mod accounts;
pub mod catalog;
pub mod deliveries;
pub mod orders;
pub mod payments;
pub mod reviews;
pub mod webhooks;

mod any;

pub use any::MarketEvent;

/// Reading a stored event into a typed one failed. Names the place in the log, so an
/// operator can find (and, if need be, park) the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot decode event {event_type} (schema v{schema_version}) at {stream_id} version {stream_version}: {reason}"
)]
pub struct DecodeError {
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub reason: String,
}

/// A family of typed events (one per aggregate) that can be stored in and read from the log.
pub trait DomainEvent: Sized + Send + Sync + 'static {
    /// The stable type name of this event.
    fn event_type(&self) -> &'static str;
    /// The current schema version of an event type of this family.
    fn schema_version(event_type: &str) -> u32;
    /// Every type name of this family.
    fn event_types() -> &'static [&'static str];
    /// The event's JSON document.
    fn to_json(&self) -> String;
    /// Parse a stored event of this family; `Err` carries the reason in words.
    fn decode(event_type: &str, schema_version: u32, data: &str) -> Result<Self, String>;
}

/// Declares an event family: the enum, its type names and schema versions, and the
/// `DomainEvent` implementation (encoding, and decoding through the upcasters).
macro_rules! domain_events {
    (
        $(#[$meta:meta])*
        pub enum $family:ident {
            $( $type_name:literal v $version:literal => $variant:ident($payload:ty), )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $family {
            $( $variant($payload), )+
        }

        impl $crate::domain::DomainEvent for $family {
            fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => $type_name, )+ }
            }

            fn schema_version(event_type: &str) -> u32 {
                match event_type { $( $type_name => $version, )+ _ => 1 }
            }

            fn event_types() -> &'static [&'static str] {
                &[ $( $type_name, )+ ]
            }

            fn to_json(&self) -> String {
                let json = match self { $( Self::$variant(event) => serde_json::to_string(event), )+ };
                // Plain structs with string keys: serde_json cannot fail on them.
                json.expect("domain events serialise to JSON")
            }

            fn decode(event_type: &str, schema_version: u32, data: &str) -> Result<Self, String> {
                match event_type {
                    $( $type_name => {
                        $crate::upcast::decode_current::<$payload>(event_type, schema_version, $version, data)
                            .map(Self::$variant)
                    } )+
                    other => Err(format!("unknown event type {other:?} for {}", stringify!($family))),
                }
            }
        }

        $(
            impl From<$payload> for $family {
                fn from(event: $payload) -> Self {
                    Self::$variant(event)
                }
            }
        )+
    };
}
pub(crate) use domain_events;
