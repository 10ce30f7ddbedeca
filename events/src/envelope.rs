//! The event envelope: what is appended (`NewEvent`) and what is read back (`RecordedEvent`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{DecodeError, DomainEvent};
use crate::position::LogPosition;

/// The name of a stream: `<category>-<id>`, e.g. `order-0190f3c2-...`.
///
/// The category is what projections filter on; the id is usually the aggregate's UUID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// `category` must not contain '-': the first '-' separates category from id.
    pub fn new(category: &str, id: impl fmt::Display) -> Self {
        debug_assert!(!category.contains('-'), "stream category {category:?} contains '-'");
        Self(format!("{category}-{id}"))
    }

    /// A stream name as stored; used when reading names back from the log.
    pub fn from_raw(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(self.0.as_str(), |(category, _)| category)
    }

    /// The part after the category, parsed as a UUID when it is one.
    pub fn uuid(&self) -> Option<Uuid> {
        self.0.split_once('-').and_then(|(_, id)| Uuid::parse_str(id).ok())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who did it and why: carried with every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventMetadata {
    /// Shared by every event that one user action caused, across sagas.
    pub correlation_id: Option<Uuid>,
    /// The command or event that directly caused this event.
    pub causation_id: Option<Uuid>,
    /// The account (or `system:<process>`) that issued the command.
    pub actor: Option<String>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique forever: appending an id that already exists appends nothing.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// The event's JSON document.
    pub data: String,
    pub metadata: EventMetadata,
}

impl NewEvent {
    /// A typed domain event with a fresh UUID v7 id.
    pub fn from_domain<E: DomainEvent>(event: &E, metadata: EventMetadata) -> Self {
        Self::from_domain_with_id(Uuid::now_v7(), event, metadata)
    }

    /// A typed domain event with a chosen id: process managers derive ids from the event
    /// that triggered them, so a replayed step appends nothing new.
    pub fn from_domain_with_id<E: DomainEvent>(event_id: Uuid, event: &E, metadata: EventMetadata) -> Self {
        Self {
            event_id,
            event_type: event.event_type().to_owned(),
            schema_version: E::schema_version(event.event_type()),
            data: event.to_json(),
            metadata,
        }
    }
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: LogPosition,
    pub event_id: Uuid,
    pub stream_id: StreamId,
    /// 1 for the first event of a stream, then 2, 3, ... without gaps.
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub data: String,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Decode into a typed domain event, upcasting older schema versions first.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        E::decode(&self.event_type, self.schema_version, &self.data).map_err(|reason| DecodeError {
            stream_id: self.stream_id.to_string(),
            stream_version: self.stream_version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_has_category_and_uuid() {
        let id = Uuid::now_v7();
        let stream = StreamId::new("order", id);
        assert_eq!(stream.category(), "order");
        assert_eq!(stream.uuid(), Some(id));
        assert_eq!(stream.as_str(), format!("order-{id}"));
        assert_eq!(StreamId::from_raw("plain").category(), "plain");
        assert_eq!(StreamId::from_raw("plain").uuid(), None);
    }
}
